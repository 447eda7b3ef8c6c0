/// Kernel text symbols from `/proc/kallsyms`.
///
/// The kernel lists module symbols as `addr t name\t[module]`; those frames get the module name
/// in brackets as their module, core kernel frames `[kernel.kallsyms]`.
struct KernelSymbols {
    static let kernelModule = "[kernel.kallsyms]"

    var table = SymbolTable()
    /// Per symbol: the module it belongs to (index into `modules`), 0 for the core kernel.
    var moduleIndex: [Int32] = []
    var modules: [String] = [kernelModule]
    /// False when the file was unreadable or `kptr_restrict` hid the addresses (all zero).
    var usable = false

    init() {}

    /// Parses kallsyms text. Only text symbols (`t`/`T`, and weak `w`/`W`) are kept: data symbols
    /// never hold a sampled instruction pointer and would only cut text ranges short.
    init(parsing bytes: [UInt8]) {
        var candidates: [SymbolCandidate] = []
        var moduleOf: [String: Int32] = [Self.kernelModule: 0]
        var moduleList = [Self.kernelModule]
        var candidateModules: [Int32] = []
        var nonZero = false
        forEachLine(bytes) { line in
            let f = splitFields(line, maxFields: 4)
            guard f.count >= 3, f[1].count == 1, let addr = parseHex(f[0]) else { return }
            let rank: Int
            switch f[1].first! {
            case UInt8(ascii: "T"): rank = 3
            case UInt8(ascii: "t"): rank = 2
            case UInt8(ascii: "W"), UInt8(ascii: "w"): rank = 1
            default: return
            }
            if addr != 0 { nonZero = true }
            var module: Int32 = 0
            if f.count == 4 {
                let m = String(decoding: f[3], as: UTF8.self)
                if let known = moduleOf[m] { module = known } else {
                    module = Int32(moduleList.count)
                    moduleOf[m] = module
                    moduleList.append(m)
                }
            }
            candidates.append(SymbolCandidate(start: addr, size: 0, name: String(decoding: f[2], as: UTF8.self),
                                              rank: rank))
            candidateModules.append(module)
        }
        guard nonZero else { return }
        usable = true
        modules = moduleList
        // SymbolTable keeps only names, so the module is found again by (name, start) after
        // aliases have been merged.
        var moduleByKey: [String: Int32] = [:]
        for (i, c) in candidates.enumerated() where candidateModules[i] != 0 {
            moduleByKey[c.name + "@" + String(c.start, radix: 16)] = candidateModules[i]
        }
        // Kernel symbols carry no sizes; a gap of more than this after the last one is not it.
        table = SymbolTable(candidates, openEndedReach: 0x10000)
        moduleIndex = (0..<table.count).map { i in
            moduleByKey[table.names[i] + "@" + String(table.starts[i], radix: 16)] ?? 0
        }
    }

    /// Name and module of the symbol containing `address`, or nil.
    func lookup(_ address: UInt64) -> (name: String, module: String)? {
        guard usable, let i = table.lookup(address) else { return nil }
        return (table.names[i], modules[Int(moduleIndex[i])])
    }
}
