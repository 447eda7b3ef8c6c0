/// Which of a function's names a view shows.
public enum NameStyle: String, Sendable, Hashable, CaseIterable {
    /// The short name (``Profile/Function/name``, what `swift demangle --simplified` prints for a
    /// Swift function), made unique within the view: short names that different functions share
    /// get their specializations' type arguments, else their full names (see
    /// ``Profile/FunctionNames``). The default of every view.
    case short
    /// The full demangled name (``Profile/Function/fullName``): `sprof report --full-names`.
    case full
    /// The linkage (mangled) name as the binary spells it (``Profile/Function/systemName``), or the
    /// full name when the source did not keep one.
    case system
}

extension Profile {
    /// The names one view gives a profile's functions: the one place where a function's name
    /// for display is made. The model keeps facts (each function's short, full and linkage names,
    /// which may coincide or collide); a view makes its names once, from the whole profile (or
    /// from several profiles it shows together, as `sprof diff` does), and reads them by function
    /// index. pprof files keep the short names of this rule in `name` and the linkage names in
    /// `system_name`. Every name is cleaned for text (``NameCleaning``).
    ///
    /// The collision rule (``NameStyle/short``): a short name that two functions with different
    /// full names share would merge them in every table and flame graph. Swift specializations of
    /// one generic share a short name (`specialized Array.append(_:)` for every element type):
    /// they are told apart by their type arguments (`specialized Array.append(_:) <Order>`) when
    /// that separates the whole group; otherwise every function of the group shows its full name.
    public struct FunctionNames: Sendable, Equatable {
        /// The style the names were made in.
        public let style: NameStyle
        private let names: [String]

        /// The names of `profile`'s functions in `style`.
        public init(_ profile: Profile, style: NameStyle = .short) {
            self = Self.shared([profile], style: style)[0]
        }

        /// Every name cleaned (``NameCleaning``): a name read from a file reaches the terminal,
        /// a table's row and an artifact file as the folded view of the same profile shows it.
        private init(style: NameStyle, names: [String]) {
            self.style = style
            self.names = names.map { NameCleaning.cleaned($0, foldedSeparator: false) }
        }

        /// The name of function `index` (an index into ``Profile/functions``).
        public subscript(index: Int) -> String { names[index] }

        /// One table of names per profile, made together: functions of different profiles that
        /// share a short name are told apart in all of them, and one function gets the same name
        /// in each (a comparison of two profiles matches functions by these names).
        public static func shared(_ profiles: [Profile], style: NameStyle = .short) -> [FunctionNames] {
            switch style {
            case .full:
                return profiles.map { FunctionNames(style: style, names: $0.functions.map(\.fullName)) }
            case .system:
                return profiles.map { FunctionNames(style: style, names: $0.functions.map { $0.systemName.isEmpty ? $0.fullName : $0.systemName }) }
            case .short:
                let resolved = uniqueShortNames(profiles.map(\.functions))
                return profiles.map { p in
                    FunctionNames(style: style, names: resolved.isEmpty ? p.functions.map(\.name)
                                    : p.functions.map { resolved[NamePair(name: $0.name, fullName: $0.fullName)] ?? $0.name })
                }
            }
        }

        private struct NamePair: Hashable {
            var name: String
            var fullName: String
        }

        /// The short names that must change to stay unique, by (short, full) name: empty when no
        /// two functions with different full names share a short one (most profiles).
        private static func uniqueShortNames(_ tables: [[Function]]) -> [NamePair: String] {
            // Every view makes its names, so the common case (no short name shared) costs one
            // lookup of each short name: full names are hashed only for shared short names.
            var sharers: [String: Int] = [:]
            for functions in tables {
                for f in functions where f.fullName != f.name { sharers[f.name, default: 0] += 1 }
            }
            guard !sharers.isEmpty else { return [:] }
            // A short name also collides with a function whose only name is that short name.
            for functions in tables {
                for f in functions where f.fullName == f.name {
                    if let n = sharers[f.name] { sharers[f.name] = n + 1 }
                }
            }
            guard sharers.values.contains(where: { $0 > 1 }) else { return [:] }
            var fullNamesByShort: [String: Set<String>] = [:]
            for functions in tables {
                for f in functions where sharers[f.name, default: 0] > 1 {
                    fullNamesByShort[f.name, default: []].insert(f.fullName)
                }
            }
            var colliding: Set<NamePair> = []
            for functions in tables {
                for f in functions {
                    guard let fulls = fullNamesByShort[f.name], fulls.count > 1 else { continue }
                    colliding.insert(NamePair(name: f.name, fullName: f.fullName))
                }
            }
            var fullsByCandidate: [String: Set<String>] = [:]
            var candidates: [NamePair: String] = [:]
            for pair in colliding {
                if let arguments = specializationArguments(pair.fullName) {
                    let candidate = pair.name + " " + arguments
                    candidates[pair] = candidate
                    fullsByCandidate[candidate, default: []].insert(pair.fullName)
                }
            }
            var groupSeparates: [String: Bool] = [:]
            for pair in colliding {
                let separates = candidates[pair].map { fullsByCandidate[$0]!.count == 1 } ?? false
                groupSeparates[pair.name] = (groupSeparates[pair.name] ?? true) && separates
            }
            var resolved: [NamePair: String] = [:]
            for pair in colliding {
                resolved[pair] = groupSeparates[pair.name] == true ? candidates[pair]! : pair.fullName
            }
            return resolved
        }

        /// What tells one Swift specialization from another of the same function, from its full
        /// name's chain of specializations: `<RestingOrder, Int>` for `generic specialization
        /// <app.RestingOrder, Swift.Int> of …` (module and outer-type qualifiers dropped, as the short
        /// names drop them); `<Exploded, Exploded> <Dead>` for `function signature specialization
        /// <Arg[0] = Exploded, Arg[1] = Exploded> of function signature specialization <Arg[2] =
        /// Dead> of …` (the swift-demangle spelling of what was done to the arguments). nil for a
        /// name that is not a specialization.
        static func specializationArguments(_ fullName: String) -> String? {
            var rest = Substring(fullName)
            var parts: [String] = []
            while true {
                let generic = rest.hasPrefix("generic specialization <")
                let signature = rest.hasPrefix("function signature specialization <")
                guard generic || signature else { break }
                rest = rest.drop { $0 != "<" }.dropFirst()
                var depth = 1
                var inner = ""
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if c == "<" { depth += 1 } else if c == ">" { depth -= 1; if depth == 0 { break } }
                    inner.append(c)
                }
                guard depth == 0, !inner.isEmpty else { return nil }
                parts.append("<" + (generic ? shortTypes(inner) : argumentChanges(inner)) + ">")
                guard rest.hasPrefix(" of ") else { break }
                rest = rest.dropFirst(4)
            }
            return parts.isEmpty ? nil : parts.joined(separator: " ")
        }

        /// `qsl_bench.RestingOrder, Swift.Int` → `RestingOrder, Int`: the last component of every
        /// dotted identifier run.
        private static func shortTypes(_ inner: String) -> String {
            var out = ""
            var word = ""
            for c in inner {
                if c.isLetter || c.isNumber || c == "_" {
                    word.append(c)
                } else if c == ".", !word.isEmpty {
                    word = ""
                } else {
                    out += word
                    word = ""
                    out.append(c)
                }
            }
            return out + word
        }

        /// `Arg[0] = Exploded, Arg[2] = Dead` → `Exploded, Dead`.
        private static func argumentChanges(_ inner: String) -> String {
            inner.split(separator: ", Arg[").map { part in
                part.firstRange(of: "] = ").map { String(part[$0.upperBound...]) } ?? String(part)
            }.joined(separator: ", ")
        }
    }

    /// The names a view gives this profile's functions (``FunctionNames``): made once per view.
    public func functionNames(_ style: NameStyle = .short) -> FunctionNames {
        FunctionNames(self, style: style)
    }
}
