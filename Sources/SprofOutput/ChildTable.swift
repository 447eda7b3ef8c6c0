/// Maps (parent node, frame name) to the child node: the one lookup per frame on the hot path.
///
/// Open addressing over one array of key/value pairs, so a lookup usually costs a single cache miss;
/// `Dictionary` keeps keys, values and occupancy in separate arrays (three misses on a cold table), which
/// dominated profiles of `add` with many distinct stacks.
struct ChildTable: Sendable {
    private struct Entry: Sendable {
        var key: UInt64
        var node: Int32
    }

    private static let empty = UInt64.max
    private var entries = [Entry](repeating: Entry(key: ChildTable.empty, node: 0), count: 1024)
    private var shift = 64 - 10
    private var used = 0

    @inline(__always)
    static func key(parent: Int32, name: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: parent)) << 32 | UInt64(UInt32(bitPattern: name))
    }

    @inline(__always)
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> UInt64(shift))
    }

    /// The child for `key`, or nil.
    @inline(__always)
    func find(_ key: UInt64) -> Int32? {
        let mask = entries.count - 1
        var i = slot(key)
        return entries.withUnsafeBufferPointer { e in
            while true {
                let k = e[i].key
                if k == key { return e[i].node }
                if k == Self.empty { return nil }
                i = (i + 1) & mask
            }
        }
    }

    /// Records a key known to be absent.
    mutating func insert(_ key: UInt64, node: Int32) {
        if (used + 1) * 4 > entries.count * 3 { grow() }
        let mask = entries.count - 1
        var i = slot(key)
        while entries[i].key != Self.empty { i = (i + 1) & mask }
        entries[i] = Entry(key: key, node: node)
        used += 1
    }

    private mutating func grow() {
        let old = entries
        entries = [Entry](repeating: Entry(key: Self.empty, node: 0), count: old.count * 2)
        shift -= 1
        used = 0
        for e in old where e.key != Self.empty { insert(e.key, node: e.node) }
    }
}
