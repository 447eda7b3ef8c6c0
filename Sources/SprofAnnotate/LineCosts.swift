import SprofProfile

/// Self and total cost of one source line of one function.
public struct LineCost: Sendable, Hashable {
    /// The source file as the profile names it (from DWARF); empty when unknown.
    public var file: String
    /// The line; 0 when unknown.
    public var line: Int
    /// Value of samples whose innermost frame is this line of this function (pprof's "flat").
    public var selfValue: Int64
    /// Value of samples with this line of this function anywhere on the stack, once per sample (pprof's "cum").
    public var totalValue: Int64
}

/// Self and total cost of one sampled address whose code belongs to a function (the function is
/// the location's outermost line: the physical function, not one inlined into it).
public struct AddressCost: Sendable, Hashable {
    /// Index into ``Profile/mappings``; nil when the address was outside every mapping.
    public var mapping: Int?
    /// The process address as recorded (the sampled instruction for self, a return address for callers).
    public var address: UInt64
    /// Value of samples taken at this address.
    public var selfValue: Int64
    /// Value of samples with this address anywhere on the stack, once per sample.
    public var totalValue: Int64
}

/// A function's costs by line and by address, as `sprof annotate` shows them.
public struct FunctionCosts: Sendable {
    /// The function's display name (all profile functions of that name are merged, as `pprof -list` does).
    public var name: String
    /// One entry per (file, line) the function's frames name, sorted by file then line.
    public var lines: [LineCost]
    /// One entry per (mapping, address) of the function's own code, sorted by mapping then address.
    public var addresses: [AddressCost]
    /// Indices into ``Profile/mappings`` of every location naming the function, its own code's
    /// and its callers' where it was inlined, ascending: the files whose build-ids date the lines.
    public var mappings: [Int]
    /// Value of samples whose innermost frame is the function.
    public var selfValue: Int64
    /// Value of samples with the function anywhere on the stack, once per sample.
    public var totalValue: Int64
}

extension Profile {
    /// Per-line and per-address costs of every function whose name (or full name) `matches`,
    /// ordered by total value, largest first (then by name). Inlined code counts for the
    /// inlined function at its own lines and for its caller at the call site's line, as pprof's
    /// `-list` attributes it. Functions are named, grouped and matched by the short names the
    /// views show (``Profile/FunctionNames``): `matches` sees each function with that name as its
    /// ``Profile/Function/name``.
    /// - Parameter valueIndex: which ``sampleTypes`` entry to sum.
    public func functionCosts(valueIndex: Int = 0, matching matches: (Function) -> Bool) -> [FunctionCosts] {
        let shown = functionNames()
        let matching = functions.indices.map { i in
            var f = functions[i]
            f.name = shown[i]
            return matches(f)
        }
        struct LineKey: Hashable { var name: String; var file: String; var line: Int }
        struct AddressKey: Hashable { var name: String; var mapping: Int?; var address: UInt64 }
        var lineSelf: [LineKey: Int64] = [:], lineTotal: [LineKey: Int64] = [:]
        var addressSelf: [AddressKey: Int64] = [:], addressTotal: [AddressKey: Int64] = [:]
        var functionSelf: [String: Int64] = [:], functionTotal: [String: Int64] = [:]
        var mappings: [String: Set<Int>] = [:]
        for sample in samples {
            let value = sample.values[valueIndex]
            guard value != 0 else { continue }
            var seenLines = Set<LineKey>(), seenAddresses = Set<AddressKey>(), seenNames = Set<String>()
            for (depth, locationIndex) in stacks[sample.stack].enumerated() {
                let location = locations[locationIndex]
                for (i, entry) in location.lines.enumerated() where matching[entry.function] {
                    let function = (name: shown[entry.function], file: functions[entry.function].file)
                    let key = LineKey(name: function.name, file: function.file, line: entry.line)
                    if depth == 0 && i == 0 {
                        lineSelf[key, default: 0] += value
                        functionSelf[function.name, default: 0] += value
                    }
                    if seenLines.insert(key).inserted { lineTotal[key, default: 0] += value }
                    if seenNames.insert(function.name).inserted { functionTotal[function.name, default: 0] += value }
                    if let m = location.mapping { mappings[function.name, default: []].insert(m) }
                    if i == location.lines.count - 1 {
                        let a = AddressKey(name: function.name, mapping: location.mapping, address: location.address)
                        if depth == 0 { addressSelf[a, default: 0] += value }
                        if seenAddresses.insert(a).inserted { addressTotal[a, default: 0] += value }
                    }
                }
            }
        }
        var lines: [String: [LineCost]] = [:]
        for (key, total) in lineTotal {
            lines[key.name, default: []].append(LineCost(file: key.file, line: key.line, selfValue: lineSelf[key] ?? 0, totalValue: total))
        }
        var addresses: [String: [AddressCost]] = [:]
        for (key, total) in addressTotal {
            addresses[key.name, default: []].append(AddressCost(mapping: key.mapping, address: key.address,
                                                                selfValue: addressSelf[key] ?? 0, totalValue: total))
        }
        return functionTotal.map { name, total in
            FunctionCosts(
                name: name,
                lines: (lines[name] ?? []).sorted { ($0.file, $0.line) < ($1.file, $1.line) },
                addresses: (addresses[name] ?? []).sorted { ($0.mapping ?? -1, $0.address) < ($1.mapping ?? -1, $1.address) },
                mappings: (mappings[name] ?? []).sorted(),
                selfValue: functionSelf[name] ?? 0, totalValue: total)
        }.sorted { $0.totalValue != $1.totalValue ? $0.totalValue > $1.totalValue : $0.name < $1.name }
    }
}
