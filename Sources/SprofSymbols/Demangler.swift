#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// Turns Swift, C++ and Rust linkage names into readable ones. Every name sprof shows goes
/// through ``names(of:fullNames:)``, whatever its source (`.symtab`, `.dynsym`, a DWARF linkage
/// name, a JIT map), so that one function reads the same everywhere.
///
/// - Swift (`$s`, `$S`, `_$s`, `_$S`, `_T0`, `$e`, `_$e`): the full form from the runtime's
///   `swift_demangle` (libswiftCore); the short form, which views show by default, from the
///   toolchain's `libswiftDemangle.so` (`swift_demangle_getSimplifiedDemangledName`, what
///   `swift demangle --simplified` prints: `MatchingEngine.sweepBestAsk(book:takerId:remaining:)`),
///   loaded at run time. Without it the full form is shown.
/// - C++ (`_Z`) and Rust (legacy `_ZN…17h<hash>E` and v0 `_R`): libiberty's `cplus_demangle`,
///   the demangler of c++filt and gdb; Rust names lose their hash. libstdc++'s `__cxa_demangle`
///   is tried when libiberty declines.
///
/// Stateless and safe to call from any thread; ``Symbolizer`` caches results per symbol, so the
/// demanglers run once per distinct name.
public enum Demangler {
    /// The names of one linkage name: `name` to display, and `fullName` when `name` is a
    /// shortened form of it (Swift). A name that is not mangled, or that no demangler accepts,
    /// comes back unchanged with a nil `fullName`.
    public static func names(of raw: String, fullNames: Bool = false) -> (name: String, fullName: String?) {
        if isSwiftMangled(raw) {
            let full = swiftFull(raw) ?? raw
            guard !fullNames, full != raw, let short = swiftSimplified(raw), !short.isEmpty, short != full else {
                return (full, nil)
            }
            return (short, full)
        }
        if raw.hasPrefix("_Z") || raw.hasPrefix("_R") {
            return (cxxOrRust(raw) ?? raw, nil)
        }
        return (raw, nil)
    }

    /// The full demangled form of `name` (``names(of:fullNames:)`` with full names), or `name`.
    public static func demangle(_ name: String) -> String {
        names(of: name, fullNames: true).name
    }

    /// Whether the toolchain's simplified Swift demangler could be loaded (short Swift names).
    public static var hasSimplifiedSwiftNames: Bool { simplifiedSwift != nil }

    /// Only these prefixes go to the Swift runtime: it would otherwise "demangle" plain C names
    /// that happen to be valid old-style manglings.
    static func isSwiftMangled(_ name: String) -> Bool {
        for prefix in ["$s", "$S", "_$s", "_$S", "_T0", "$e", "_$e"] where name.hasPrefix(prefix) {
            return true
        }
        return false
    }

    private static func swiftFull(_ raw: String) -> String? {
        raw.withCString { ptr -> String? in
            guard let out = csprof_swift_demangle(ptr, strlen(ptr)) else { return nil }
            defer { free(out) }
            let result = String(cString: out)
            return result.isEmpty ? nil : result
        }
    }

    private static func swiftSimplified(_ raw: String) -> String? {
        guard let simplify = simplifiedSwift else { return nil }
        return raw.withCString { ptr -> String? in
            var capacity = 512
            while capacity <= 1 << 20 {
                var buffer = [CChar](repeating: 0, count: capacity)
                let length = buffer.withUnsafeMutableBufferPointer { simplify(ptr, $0.baseAddress, capacity) }
                if length == 0 { return nil }
                // The length returned is the whole name's: a longer one was cut to fit.
                if length < capacity { return String(cString: buffer) }
                capacity = length + 1
            }
            return nil
        }
    }

    private static func cxxOrRust(_ raw: String) -> String? {
        raw.withCString { ptr -> String? in
            if let out = csprof_iberty_demangle(ptr) {
                defer { free(out) }
                return String(cString: out)
            }
            guard raw.hasPrefix("_Z"), let out = csprof_cxx_demangle(ptr) else { return nil }
            defer { free(out) }
            return String(cString: out)
        }
    }

    private typealias SimplifiedFunction = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int

    /// `swift_demangle_getSimplifiedDemangledName` from libswiftDemangle.so: found on the library
    /// path, else next to the toolchain whose libswiftCore this process runs with
    /// (`<toolchain>/usr/lib/swift/linux/libswiftCore.so` → `<toolchain>/usr/lib/libswiftDemangle.so`).
    /// Nil when neither exists (a machine with only the runtime): full names are shown then.
    private static let simplifiedSwift: SimplifiedFunction? = {
        var candidates = ["libswiftDemangle.so"]
        // The runtime this process runs with, from its own mappings (dladdr needs _GNU_SOURCE).
        if let maps = readTextFile("/proc/self/maps"),
           let line = maps.split(separator: "\n").first(where: { $0.hasSuffix("/libswiftCore.so") }),
           let slash = line.firstIndex(of: "/") {
            var dir = String(line[slash...])
            for _ in 0..<3 { if let last = dir.lastIndex(of: "/") { dir = String(dir[..<last]) } }
            candidates.append(dir + "/libswiftDemangle.so")
        }
        for candidate in candidates {
            guard let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) else { continue }
            if let symbol = dlsym(handle, "swift_demangle_getSimplifiedDemangledName") {
                return unsafeBitCast(symbol, to: SimplifiedFunction.self)
            }
            dlclose(handle)
        }
        return nil
    }()
}
