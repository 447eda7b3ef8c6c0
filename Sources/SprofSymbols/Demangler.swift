internal import CSprof

/// Turns Swift and C++ linkage names into readable ones.
///
/// Stateless and safe to call from any thread; ``Symbolizer`` caches results per symbol, so the
/// (slow) runtime demanglers run once per distinct name.
public enum Demangler {
    /// Demangled form of `name` when it looks like a Swift (`$s`, `$S`, `_$s`, `_$S`, `_T0`, `$e`,
    /// `_$e`) or Itanium C++ (`_Z`) mangled name and the demangler accepts it; otherwise `name`.
    public static func demangle(_ name: String) -> String {
        if isSwiftMangled(name) {
            return name.withCString { ptr -> String in
                guard let out = csprof_swift_demangle(ptr, strlen(ptr)) else { return name }
                defer { free(out) }
                let result = String(cString: out)
                return result.isEmpty ? name : result
            }
        }
        if name.hasPrefix("_Z") {
            return name.withCString { ptr -> String in
                guard let out = csprof_cxx_demangle(ptr) else { return name }
                defer { free(out) }
                return String(cString: out)
            }
        }
        return name
    }

    /// Only these prefixes go to the Swift runtime: it would otherwise "demangle" plain C names
    /// that happen to be valid old-style manglings.
    static func isSwiftMangled(_ name: String) -> Bool {
        for prefix in ["$s", "$S", "_$s", "_$S", "_T0", "$e", "_$e"] where name.hasPrefix(prefix) {
            return true
        }
        return false
    }
}
