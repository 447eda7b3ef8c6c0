import SprofSymbols

extension Profile {
    /// The profile with its functions' names made again from their linkage names where the
    /// source kept only the name a view showed: a pprof file keeps, as pprof does, that name in
    /// `name` and the linkage (mangled) name in `system_name`. For each function whose linkage
    /// name the demangler (the symbolizer's) reads, the full demangled name becomes its
    /// ``Profile/Function/fullName`` and, where the simplified Swift demangler is there, the short
    /// form its ``Profile/Function/name``: the facts a recording's model holds, from which the views
    /// make their names (``Profile/FunctionNames``) again, full ones (`sprof report --full-names
    /// FILE.pb.gz`) or short ones unique over several profiles (`sprof diff`). It lives here
    /// rather than beside ``Profile/FunctionNames`` because the demangler (SprofSymbols) sits
    /// above the model.
    ///
    /// A function whose full name already differs from its name (the model of a recording), or
    /// whose system name is empty or not mangled, is left as it is.
    public func withNamesFromSystemNames() -> Profile {
        var result = self
        for i in result.functions.indices {
            let f = result.functions[i]
            guard f.fullName == f.name, !f.systemName.isEmpty, f.systemName != f.name else { continue }
            let names = Demangler.names(of: f.systemName)
            if let full = names.fullName {
                result.functions[i].name = names.name
                result.functions[i].fullName = full
            } else if names.name != f.systemName {
                result.functions[i].fullName = names.name
            }
        }
        return result
    }
}
