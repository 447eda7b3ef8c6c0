/// A symbol as read from a table, before aliases are merged and zero sizes resolved.
struct SymbolCandidate {
    /// First address (file address for ELF, kernel address for kallsyms, process address for JIT).
    var start: UInt64
    /// Size in bytes; 0 when the table does not say.
    var size: UInt64
    var name: String
    /// Higher wins when several symbols share a start address (aliases such as
    /// `__libc_malloc`/`malloc`).
    var rank: Int
    /// End of the containing section; bounds a zero-size symbol. `UInt64.max` when unknown.
    var limit: UInt64 = .max
}

/// An immutable, sorted, alias-free symbol table searched by binary search.
///
/// Sorted parallel arrays of starts and ends keep the search cache-friendly; names live apart
/// because they are only read on a hit.
struct SymbolTable {
    private(set) var starts: [UInt64] = []
    private(set) var ends: [UInt64] = []
    private(set) var names: [String] = []

    /// How far a zero-size symbol with nothing after it is assumed to reach. Without a bound, a
    /// stray address far past the last symbol would be blamed on it.
    static let openEndedReach: UInt64 = 0x1000

    init() {}

    init(_ candidates: consuming [SymbolCandidate], openEndedReach: UInt64 = SymbolTable.openEndedReach) {
        // Sorted and merged in place: a program's table can hold hundreds of thousands of
        // symbols, and every copy of it would add to the peak.
        var chosen = consume candidates
        chosen.sort { a, b in
            if a.start != b.start { return a.start < b.start }
            return Self.isBetter(a, than: b)
        }
        var kept = 0
        for i in chosen.indices {
            let c = chosen[i]
            if kept > 0, chosen[kept - 1].start == c.start {
                // Aliases: keep the best name but the widest extent, so that a sized alias is not
                // shadowed by a zero-size one.
                chosen[kept - 1].size = max(chosen[kept - 1].size, c.size)
                chosen[kept - 1].limit = min(chosen[kept - 1].limit, c.limit)
                continue
            }
            chosen[kept] = c
            kept += 1
        }
        chosen.removeLast(chosen.count - kept)
        starts.reserveCapacity(chosen.count)
        ends.reserveCapacity(chosen.count)
        names.reserveCapacity(chosen.count)
        for (i, c) in chosen.enumerated() {
            var end: UInt64
            if c.size > 0 {
                end = c.start &+ c.size
                if end < c.start { end = .max }
            } else {
                // Hand-written assembly often has no size: it reaches up to the next symbol,
                // never past the end of its section.
                let next = i + 1 < chosen.count ? chosen[i + 1].start : c.start &+ openEndedReach
                end = min(next, c.limit)
                if end <= c.start { end = c.start &+ 1 }
            }
            starts.append(c.start)
            ends.append(end)
            names.append(c.name)
        }
    }

    /// Tie-break for aliases: higher rank, then fewer leading underscores (the public name over
    /// the internal one), then the shorter, then the lexicographically smaller name, so that the
    /// choice does not depend on table order.
    static func isBetter(_ a: SymbolCandidate, than b: SymbolCandidate) -> Bool {
        if a.rank != b.rank { return a.rank > b.rank }
        let ua = a.name.prefix { $0 == "_" }.count, ub = b.name.prefix { $0 == "_" }.count
        if ua != ub { return ua < ub }
        if a.name.utf8.count != b.name.utf8.count { return a.name.utf8.count < b.name.utf8.count }
        return a.name < b.name
    }

    var count: Int { starts.count }

    /// Index of the symbol containing `address`, or nil.
    func lookup(_ address: UInt64) -> Int? {
        containingIndex(starts: starts, ends: ends, address)
    }
}

/// Index of the range containing `address` in ranges sorted by start (`[starts[i], ends[i])`):
/// the last start at or below it, or one of the few before it, which covers a small symbol nested
/// inside a larger one that starts earlier. Shared by ELF and kernel symbol tables.
func containingIndex(starts: [UInt64], ends: [UInt64], _ address: UInt64) -> Int? {
    var lo = 0, hi = starts.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if starts[mid] <= address { lo = mid + 1 } else { hi = mid }
    }
    var i = lo - 1
    var steps = 0
    while i >= 0 && steps < 4 {
        if address < ends[i] { return i }
        i -= 1
        steps += 1
    }
    return nil
}
