import SprofSymbols

extension Profile {
    /// The profile with every function's full name made from its linkage name where the source
    /// kept only the display name: a pprof file keeps, as pprof does, the name views show in
    /// `name` and the linkage (mangled) name in `system_name`, so the full demangled name of a
    /// saved profile's Swift function is made here, when a view asks for full names
    /// (`sprof report --full-names FILE.pb.gz`), by the demangler the symbolizer uses.
    ///
    /// A function whose ``Profile/Function/fullName`` already differs from its name, or whose
    /// system name is empty or not mangled, is left as it is.
    public func withFullNamesFromSystemNames() -> Profile {
        var result = self
        for i in result.functions.indices {
            let f = result.functions[i]
            guard f.fullName == f.name, !f.systemName.isEmpty, f.systemName != f.name else { continue }
            let full = Demangler.demangle(f.systemName)
            if full != f.systemName { result.functions[i].fullName = full }
        }
        return result
    }
}
