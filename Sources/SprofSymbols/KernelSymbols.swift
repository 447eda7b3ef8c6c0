/// Kernel text symbols from `/proc/kallsyms`.
///
/// The kernel lists module symbols as `addr t name\t[module]`; those frames get the module name
/// in brackets as their module, core kernel frames `[kernel.kallsyms]`.
///
/// kallsyms has over 100k symbols and a profile needs a handful, so parsing keeps the file's bytes
/// and records each symbol as (start, name offset, length) without creating a String; a name is
/// decoded only when a lookup hits it. (Building a String per symbol and sorting them through
/// SymbolTable cost ~80 ms per `sprof run`, more than everything else sprof does for a short
/// profile.) The alias and extent rules are SymbolTable's for symbols without sizes.
struct KernelSymbols {
    static let kernelModule = "[kernel.kallsyms]"
    /// Kernel symbols carry no sizes; a gap of more than this after the last one is not it.
    static let openEndedReach: UInt64 = 0x10000

    var modules: [String] = [kernelModule]
    /// False when the file was unreadable or `kptr_restrict` hid the addresses (all zero).
    var usable = false

    private var text: [UInt8] = []
    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    private var nameOffsets: [Int32] = []
    private var nameLengths: [Int32] = []
    /// Per symbol: the module it belongs to (index into `modules`), 0 for the core kernel.
    private var moduleIndex: [Int32] = []

    init() {}

    private struct Entry {
        var start: UInt64
        var name: Int32
        var length: Int32
        var rank: Int8
        var module: Int32
    }

    /// Parses kallsyms text. Only text symbols (`t`/`T`, and weak `w`/`W`) are kept: data symbols
    /// never hold a sampled instruction pointer and would only cut text ranges short.
    init(parsing bytes: [UInt8]) {
        var entries: [Entry] = []
        entries.reserveCapacity(bytes.count / 40)
        var moduleOf: [String: Int32] = [Self.kernelModule: 0]
        var moduleList = [Self.kernelModule]
        var nonZero = false
        var sorted = true
        bytes.withUnsafeBufferPointer { b in
            let n = b.count
            @inline(__always) func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D }
            var lineStart = 0
            while lineStart < n {
                var lineEnd = lineStart
                while lineEnd < n && b[lineEnd] != 0x0A { lineEnd += 1 }
                defer { lineStart = lineEnd + 1 }
                // Fields: ADDR TYPE NAME [MODULE...], separated by blanks.
                var i = lineStart
                func field() -> Range<Int> {
                    while i < lineEnd && isBlank(b[i]) { i += 1 }
                    let s = i
                    while i < lineEnd && !isBlank(b[i]) { i += 1 }
                    return s..<i
                }
                let a = field(), t = field(), name = field()
                guard !name.isEmpty, t.count == 1, let addr = parseHex(UnsafeBufferPointer(rebasing: b[a])) else { continue }
                let rank: Int8
                switch b[t.lowerBound] {
                case UInt8(ascii: "T"): rank = 3
                case UInt8(ascii: "t"): rank = 2
                case UInt8(ascii: "W"), UInt8(ascii: "w"): rank = 1
                default: continue
                }
                if addr != 0 { nonZero = true }
                var module: Int32 = 0
                while i < lineEnd && isBlank(b[i]) { i += 1 }
                if i < lineEnd {
                    var end = lineEnd
                    while end > i && isBlank(b[end - 1]) { end -= 1 }
                    let m = String(decoding: UnsafeBufferPointer(rebasing: b[i..<end]), as: UTF8.self)
                    if let known = moduleOf[m] { module = known } else {
                        module = Int32(moduleList.count)
                        moduleOf[m] = module
                        moduleList.append(m)
                    }
                }
                if let last = entries.last, last.start > addr { sorted = false }
                entries.append(Entry(start: addr, name: Int32(name.lowerBound), length: Int32(name.count), rank: rank, module: module))
            }
        }
        guard nonZero else { return }
        usable = true
        modules = moduleList
        text = bytes
        // /proc/kallsyms is sorted by address except for module symbols; sort only when needed.
        if !sorted { entries.sort { $0.start < $1.start } }
        // One symbol per start address: the best alias (SymbolTable.isBetter's rules).
        var chosen: [Entry] = []
        chosen.reserveCapacity(entries.count)
        for e in entries {
            if let last = chosen.last, last.start == e.start {
                if isBetter(e, than: last) { chosen[chosen.count - 1] = e }
                continue
            }
            chosen.append(e)
        }
        starts = chosen.map(\.start)
        nameOffsets = chosen.map(\.name)
        nameLengths = chosen.map(\.length)
        moduleIndex = chosen.map(\.module)
        ends = (0..<chosen.count).map { i in
            let end = i + 1 < chosen.count ? chosen[i + 1].start : chosen[i].start &+ Self.openEndedReach
            return end <= chosen[i].start ? chosen[i].start &+ 1 : end
        }
    }

    /// SymbolTable.isBetter on raw names: higher rank, fewer leading underscores, shorter, then
    /// byte order (kallsyms names are ASCII).
    private func isBetter(_ a: Entry, than b: Entry) -> Bool {
        if a.rank != b.rank { return a.rank > b.rank }
        return text.withUnsafeBufferPointer { t in
            let na = UnsafeBufferPointer(rebasing: t[Int(a.name)..<Int(a.name + a.length)])
            let nb = UnsafeBufferPointer(rebasing: t[Int(b.name)..<Int(b.name + b.length)])
            let ua = na.prefix { $0 == UInt8(ascii: "_") }.count, ub = nb.prefix { $0 == UInt8(ascii: "_") }.count
            if ua != ub { return ua < ub }
            if na.count != nb.count { return na.count < nb.count }
            return na.lexicographicallyPrecedes(nb)
        }
    }

    /// Name and module of the symbol containing `address`, or nil.
    func lookup(_ address: UInt64) -> (name: String, module: String)? {
        guard usable else { return nil }
        guard let i = containingIndex(starts: starts, ends: ends, address) else { return nil }
        let o = Int(nameOffsets[i])
        let name = String(decoding: text[o..<o + Int(nameLengths[i])], as: UTF8.self)
        return (name, modules[Int(moduleIndex[i])])
    }
}
