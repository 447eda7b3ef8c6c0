/// Interns frame names by their exact UTF-8 bytes.
///
/// A hand-rolled open-addressing table rather than `[String: Int32]` for two reasons: parsing can look a
/// name up straight from a byte slice of the input without first building a String (no allocation per
/// frame), and equality is byte equality, which is what the line format means (String `==` uses Unicode
/// canonical equivalence, which would merge names that print differently).
struct NameTable {
    /// All names back to back; name `i` is `bytes[starts[i] ..< starts[i + 1]]`.
    private(set) var bytes: [UInt8] = []
    private(set) var starts: [Int] = [0]
    private var hashes: [UInt32] = []
    /// Per slot the name's hash (high 32 bits) and id + 1 (low 32 bits; 0 when free), together so that a
    /// probe touches one cache line. Kept at most half full so probe chains stay short.
    private var slots: [UInt64] = Array(repeating: 0, count: 256)

    var count: Int { hashes.count }

    func range(_ id: Int32) -> Range<Int> {
        starts[Int(id)] ..< starts[Int(id) + 1]
    }

    func string(_ id: Int32) -> String {
        String(decoding: bytes[range(id)], as: UTF8.self)
    }

    /// Calls `body` with the bytes of name `id`.
    func withName<R>(_ id: Int32, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        let r = range(id)
        return try bytes.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[r]))
        }
    }

    mutating func intern(_ name: UnsafeBufferPointer<UInt8>) -> Int32 {
        let h = fnv1a(name)
        let mask = slots.count - 1
        var i = Int(h) & mask
        while true {
            let s = slots[i]
            if s == 0 { break }
            if UInt32(truncatingIfNeeded: s >> 32) == h {
                let id = Int32(truncatingIfNeeded: s & 0xFFFF_FFFF) - 1
                if equals(id, name) { return id }
            }
            i = (i + 1) & mask
        }
        let id = Int32(hashes.count)
        bytes.append(contentsOf: name)
        starts.append(bytes.count)
        hashes.append(h)
        slots[i] = Self.pack(h, id)
        if hashes.count * 2 > slots.count { grow() }
        return id
    }

    private func equals(_ id: Int32, _ name: UnsafeBufferPointer<UInt8>) -> Bool {
        let r = range(id)
        guard r.count == name.count else { return false }
        return bytes.withUnsafeBufferPointer { all in
            var j = 0
            var k = r.lowerBound
            while j < name.count {
                if all[k] != name[j] { return false }
                j += 1
                k += 1
            }
            return true
        }
    }

    @inline(__always)
    private static func pack(_ h: UInt32, _ id: Int32) -> UInt64 {
        UInt64(h) << 32 | UInt64(UInt32(id) + 1)
    }

    private mutating func grow() {
        var fresh = [UInt64](repeating: 0, count: slots.count * 2)
        let mask = fresh.count - 1
        for (id, h) in hashes.enumerated() {
            var i = Int(h) & mask
            while fresh[i] != 0 { i = (i + 1) & mask }
            fresh[i] = Self.pack(h, Int32(id))
        }
        slots = fresh
    }
}
