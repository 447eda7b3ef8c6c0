import SprofCore

/// One process's `/tmp/perf-PID.map`: lines of `START SIZE name` in hex, appended to as the JIT
/// compiles more code.
///
/// The file is re-read only when a lookup misses and the file has grown since it was read, so a
/// hit costs no system call.
final class JitMap {
    let path: String
    private var loadedSize = -1
    private var table = SymbolTable()
    private var cache: [UInt64: String] = [:]

    init(path: String) { self.path = path }

    /// Name of the JIT symbol containing `address`, or nil.
    func lookup(_ address: UInt64) -> String? {
        if let hit = cache[address] { return hit }
        if let name = tableLookup(address) { return name }
        // A miss can mean code compiled after the last read: look again if the file grew.
        guard let size = fileSize(path), size != loadedSize else { return nil }
        reload(size: size)
        return tableLookup(address)
    }

    private func tableLookup(_ address: UInt64) -> String? {
        guard let i = table.lookup(address) else { return nil }
        let name = table.names[i]
        cache[address] = name
        return name
    }

    private func reload(size: Int) {
        guard let bytes = readWholeFile(path) else { return }
        loadedSize = size
        table = SymbolTable(Self.parse(bytes))
        cache.removeAll(keepingCapacity: true)
    }

    /// Parses the map. Later lines win over earlier ones at the same address, because a JIT
    /// reuses the memory of code it discarded.
    static func parse(_ bytes: [UInt8]) -> [SymbolCandidate] {
        var out: [SymbolCandidate] = []
        forEachLine(bytes) { line in
            let f = splitFields(line, maxFields: 3)
            guard f.count == 3, let start = parseHex(f[0]), let size = parseHex(f[1]) else { return }
            out.append(SymbolCandidate(start: start, size: size, name: String(decoding: f[2], as: UTF8.self),
                                       rank: out.count))
        }
        return out
    }
}
