import Foundation
import SprofFormats
import SprofOutput
import SprofProfile

/// The JSON views the pages draw: flame graph trees, tables, the memory timeline.
public enum ProfileViews {
    /// A flame graph as a flat prefix tree in pre-order, children sorted by name (flamegraph.pl's
    /// order): `names` (interned frame names), and per node `parent` (index, -1 for roots), `name`
    /// (index into names) and `value` (total of the node, in `unit`). With a base, `base` holds the
    /// base profile's totals per node scaled to the new total (differential flame graph).
    public struct FlameTree: Encodable, Sendable {
        public var unit: String
        public var total: Int64
        public var names: [String]
        public var parent: [Int32]
        public var name: [Int32]
        public var value: [Int64]
        public var base: [Int64]?
        /// In a tree cut for drawing (``drawn(zoom:)``): how many nodes were left out, each
        /// narrower than ``drawnFraction`` of the drawn root, their values kept in their parents'
        /// totals (so in their parents' self); nil when the tree is whole.
        public var pruned: Int?
        /// In a tree cut to the subtree of a zoomed node: true, node 0 is that node and `names`
        /// is empty (the names are those of the whole tree's table, which the page holds).
        public var subtree: Bool?

        /// The tree as JSON, written directly: a tree of a million frames is tens of megabytes, which
        /// a generic encoder writes several times slower. Names are escaped as JSON strings, with
        /// `<`, `>` and `&` as `\u003c`-style escapes as well.
        public func jsonBytes() -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(parent.count * 24 + names.reduce(0) { $0 + $1.utf8.count + 3 })
            out.append(contentsOf: Array(#"{"unit":"#.utf8))
            JSONWriting.string(unit, into: &out)
            out.append(contentsOf: Array(#","total":"#.utf8))
            JSONWriting.int(total, into: &out)
            out.append(contentsOf: Array(#","names":["#.utf8))
            for (i, n) in names.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONWriting.string(n, into: &out)
            }
            func array<T: BinaryInteger>(_ key: String, _ values: [T]) {
                out.append(contentsOf: Array("],\"\(key)\":[".utf8))
                JSONWriting.ints(values, into: &out)
            }
            array("parent", parent)
            array("name", name)
            array("value", value)
            if let base { array("base", base) }
            out.append(UInt8(ascii: "]"))
            if let pruned { out.append(contentsOf: Array(",\"pruned\":\(pruned)".utf8)) }
            if subtree == true { out.append(contentsOf: Array(",\"subtree\":true".utf8)) }
            out.append(UInt8(ascii: "}"))
            return out
        }

        /// Appends a node named `table[id]` (the caller's table of names) under `parent` and
        /// returns its index; a name is listed in ``names`` at its first use, `listed` mapping
        /// the caller's ids to this tree's (-1 while not listed).
        mutating func append(name id: Int, of table: [String], listed: inout [Int32], parent: Int32, value: Int64) -> Int32 {
            if listed[id] < 0 {
                listed[id] = Int32(names.count)
                names.append(table[id])
            }
            self.parent.append(parent)
            name.append(listed[id])
            self.value.append(value)
            return Int32(self.parent.count - 1)
        }

        /// The share of the drawn root below which a node is not sent to the page: 1/20,000,
        /// well under a pixel at any width the page draws (flamegraph.pl and inferno drop frames
        /// narrower than 0.1 px, the Firefox Profiler draws only what is visible).
        public static let drawnFraction: Int64 = 20_000

        /// The number of nodes in each node's subtree, itself included (pre-order: node i's
        /// subtree is i..<i + size[i]).
        func subtreeSizes() -> [Int] {
            var size = [Int](repeating: 1, count: parent.count)
            for i in parent.indices.reversed() where parent[i] >= 0 { size[Int(parent[i])] += size[i] }
            return size
        }

        /// The node reached from the roots by the names `path` (indices into `names`), or nil.
        public func node(at path: [Int32]) -> Int? {
            let size = subtreeSizes()
            var lo = 0, hi = parent.count, found: Int? = nil
            for id in path {
                var j = lo
                found = nil
                while j < hi {
                    if name[j] == id { found = j; break }
                    j += size[j]
                }
                guard let f = found else { return nil }
                lo = f + 1; hi = f + size[f]
            }
            return found
        }

        /// The tree as the page draws it: only the nodes whose total (or, in a differential tree,
        /// base) is at least 1/``drawnFraction`` of the drawn root's, each left-out node's
        /// value staying in its parent's total, so every sent total is exact and a parent's
        /// self grows by what was left out below it. With `zoom` (a path of names from a
        /// root), the subtree of that node, cut relative to it (``subtree``); nil when no node
        /// has that path.
        public func drawn(zoom: [Int32]? = nil) -> FlameTree? {
            let size = subtreeSizes()
            var range = 0..<parent.count
            var rootTotal = max(total, base.map { b in parent.indices.reduce(Int64(0)) { parent[$1] < 0 ? $0 + b[$1] : $0 } } ?? 0)
            if let zoom {
                guard let node = node(at: zoom) else { return nil }
                range = node..<(node + size[node])
                rootTotal = max(value[node], base?[node] ?? 0)
            }
            let cut = max(1, rootTotal / Self.drawnFraction)
            var out = FlameTree(unit: unit, total: total, names: zoom == nil ? names : [], parent: [], name: [], value: [],
                                base: base == nil ? nil : [], pruned: 0, subtree: zoom == nil ? nil : true)
            var newIndex = [Int32](repeating: -1, count: parent.count)
            var i = range.lowerBound
            while i < range.upperBound {
                if value[i] < cut && (base?[i] ?? 0) < cut && i != range.lowerBound {
                    out.pruned! += size[i]
                    i += size[i]
                    continue
                }
                newIndex[i] = Int32(out.parent.count)
                out.parent.append(i == range.lowerBound && zoom != nil || parent[i] < 0 ? -1 : newIndex[Int(parent[i])])
                out.name.append(name[i])
                out.value.append(value[i])
                out.base?.append(base![i])
                i += 1
            }
            return out
        }

        /// This tree (a whole tree, not cut, not differential) with other values for the stacks it
        /// was made from: `ends` gives, per stack, the node it ends at (-1 for a stack without
        /// frames, counted in the total only) and its new value. The result is what
        /// ``ProfileViews/flameTree(_:unit:base:)`` makes of those stacks with those values: the
        /// nodes on no stack of positive value are left out, the others keep their pre-order and
        /// sibling order, and the names are listed in their order of first use as there. A time
        /// range or a transform that only drops samples thereby costs a pass over the nodes, not a
        /// tree built again.
        func restricted(to ends: [(node: Int32, value: Int64)]) -> FlameTree {
            let n = parent.count
            var v = [Int64](repeating: 0, count: n)
            var alive = [Bool](repeating: false, count: n)
            var total: Int64 = 0
            for e in ends where e.value > 0 {
                total += e.value
                guard e.node >= 0 else { continue }
                v[Int(e.node)] += e.value
                alive[Int(e.node)] = true
            }
            // Children come after their parent: one backward pass sums the totals.
            for i in stride(from: n - 1, through: 0, by: -1) where alive[i] && parent[i] >= 0 {
                let p = Int(parent[i])
                v[p] += v[i]
                alive[p] = true
            }
            var out = FlameTree(unit: unit, total: total, names: [], parent: [], name: [], value: [])
            let kept = alive.reduce(0) { $1 ? $0 + 1 : $0 }
            out.parent.reserveCapacity(kept)
            out.name.reserveCapacity(kept)
            out.value.reserveCapacity(kept)
            var newIndex = [Int32](repeating: -1, count: n)
            var newName = [Int32](repeating: -1, count: names.count)
            for i in 0..<n where alive[i] {
                newIndex[i] = out.append(name: Int(name[i]), of: names, listed: &newName,
                                         parent: parent[i] < 0 ? -1 : newIndex[Int(parent[i])], value: v[i])
            }
            return out
        }

        /// The differential tree of `new` against `base`, two whole trees (as
        /// ``ProfileViews/flameTree(_:unit:base:)`` makes them, not cut, not differential): the
        /// same tree as that function makes of the two trees' stacks. The two tries are merged
        /// node by node (siblings in name order on both sides), and each base node's own value
        /// (its stacks ending there) is scaled once, as there. Compare's two trees are each
        /// run's CPU tree, made once per run: this is a pass over both, not a tree built again.
        static func differential(new: FlameTree, base: FlameTree) -> FlameTree {
            let scale = base.total > 0 ? Double(new.total) / Double(base.total) : 1
            // One order of names over both trees.
            var all = new.names
            var baseName = [Int32](repeating: 0, count: base.names.count)
            var known = Dictionary(uniqueKeysWithValues: new.names.enumerated().map { ($1, Int32($0)) })
            for (i, n) in base.names.enumerated() {
                if let k = known[n] { baseName[i] = k; continue }
                baseName[i] = Int32(all.count)
                known[n] = Int32(all.count)
                all.append(n)
            }
            var rank = [Int32](repeating: 0, count: all.count)
            for (r, id) in all.indices.sorted(by: { all[$0] < all[$1] }).enumerated() { rank[id] = Int32(r) }
            let newSize = new.subtreeSizes(), baseSize = base.subtreeSizes()
            // The base's own values, scaled: a node's value less its children's.
            var baseOwn = base.value
            for i in base.parent.indices where base.parent[i] >= 0 { baseOwn[Int(base.parent[i])] -= base.value[i] }
            var out = FlameTree(unit: new.unit, total: new.total, names: [], parent: [], name: [], value: [], base: [])
            let capacity = max(new.parent.count, base.parent.count)
            out.parent.reserveCapacity(capacity)
            out.name.reserveCapacity(capacity)
            out.value.reserveCapacity(capacity)
            var baseOut: [Int64] = []
            baseOut.reserveCapacity(capacity)
            var outName = [Int32](repeating: -1, count: all.count)
            // Ranks per node of each side, for the merge's comparisons.
            let newRank = new.name.map { rank[Int($0)] }, baseRank = base.name.map { rank[Int(baseName[Int($0)])] }
            // Pre-order without recursion: per level, the next child of each side still to merge
            // (a range of each tree) and the parent in `out`; the smaller name comes first, equal
            // names are one node.
            struct Cursor { var a: Int; var aEnd: Int; var b: Int; var bEnd: Int; var parent: Int32 }
            var levels = [Cursor(a: 0, aEnd: new.parent.count, b: 0, bEnd: base.parent.count, parent: -1)]
            while let c = levels.last {
                let ra = c.a < c.aEnd ? newRank[c.a] : Int32.max, rb = c.b < c.bEnd ? baseRank[c.b] : Int32.max
                if ra == Int32.max && rb == Int32.max { levels.removeLast(); continue }
                let a = ra <= rb ? c.a : -1, b = rb <= ra ? c.b : -1
                if a >= 0 { levels[levels.count - 1].a += newSize[a] }
                if b >= 0 { levels[levels.count - 1].b += baseSize[b] }
                let id = a >= 0 ? Int(new.name[a]) : Int(baseName[Int(base.name[b])])
                let me = out.append(name: id, of: all, listed: &outName, parent: c.parent, value: a >= 0 ? new.value[a] : 0)
                let own = b >= 0 ? baseOwn[b] : 0
                baseOut.append(own == 0 ? 0 : Int64((Double(own) * scale).rounded()))
                levels.append(Cursor(a: a + 1, aEnd: a >= 0 ? a + newSize[a] : 0, b: b + 1, bEnd: b >= 0 ? b + baseSize[b] : 0, parent: me))
            }
            // Base totals: each node's own plus its children's (children come after their parent).
            for i in out.parent.indices.reversed() where out.parent[i] >= 0 { baseOut[Int(out.parent[i])] += baseOut[i] }
            out.base = baseOut
            return out
        }

        /// The total of the samples with a frame whose name is marked in `mask` (by index into
        /// `names`), each counted once however many such frames it has: the search's matched
        /// share, over the whole tree (nothing left out).
        public func matched(_ mask: [Bool]) -> Int64 {
            var covered = [Bool](repeating: false, count: parent.count)
            var sum: Int64 = 0
            for i in parent.indices {
                let p = Int(parent[i])
                let hit = Int(name[i]) < mask.count && mask[Int(name[i])]
                if p >= 0 && covered[p] { covered[i] = true; continue }
                if hit { covered[i] = true; sum += value[i] }
            }
            return sum
        }
    }

    /// Builds a flame tree from folded-shaped stacks (root first), which need not be sorted; the
    /// same stack given twice adds up.
    ///
    /// Built as a trie over interned names (one dictionary step per frame), then laid out in
    /// pre-order with siblings by name: sorting the stacks as arrays of strings, as this did
    /// first, compared the shared prefixes' strings again and again and was most of the first
    /// view's time on large profiles.
    public static func flameTree(_ stacks: [(frames: [String], value: Int64)], unit: String,
                                 base: [(frames: [String], value: Int64)]? = nil) -> FlameTree {
        flameTree(InternedStacks(stacks), unit: unit, base: base.map { InternedStacks($0) })
    }

    /// ``flameTree(_:unit:base:)`` over interned names (the base's names need not share the table).
    public static func flameTree(_ interned: InternedStacks, unit: String, base baseStacks: InternedStacks? = nil) -> FlameTree {
        flameTreeAndEnds(interned, unit: unit, base: baseStacks).tree
    }

    /// ``flameTree(_:unit:base:)`` and, per stack of `interned`, the node it ends at (-1 for a
    /// stack without frames or without a positive value).
    static func flameTreeAndEnds(_ interned: InternedStacks, unit: String, base baseStacks: InternedStacks? = nil) -> (tree: FlameTree, ends: [Int32]) {
        var table = interned
        let stacks = interned.stacks
        let base = baseStacks.map { table.adopt($0) }
        let idNames = table.names
        var scale = 1.0
        if let base {
            let newTotal = stacks.reduce(Int64(0)) { $0 + max(0, $1.value) }
            let baseTotal = base.reduce(Int64(0)) { $0 + max(0, $1.value) }
            scale = baseTotal > 0 ? Double(newTotal) / Double(baseTotal) : 1
        }
        // The stacks of both sides in the lexicographic order of their ids: each then shares
        // with the one before it exactly the part of its path that is already in the trie, and
        // the rest is new nodes, so that no node is looked up by (parent, name).
        let baseList = base ?? []
        let items: [Int] = stacks.indices.filter { stacks[$0].value > 0 }
            + baseList.indices.filter { baseList[$0].value > 0 }.map { $0 + stacks.count }
        // The frames of every item in one flat array (item i at start[i]..<start[i + 1]), so
        // that sorting compares memory, not arrays that each need retaining.
        var flat: [Int32] = []
        var start: [Int] = [0]
        start.reserveCapacity(items.count + 1)
        for k in items {
            flat.append(contentsOf: k < stacks.count ? stacks[k].frames : baseList[k - stacks.count].frames)
            start.append(flat.count)
        }
        var order = Array(items.indices)
        flat.withUnsafeBufferPointer { f in
            order.sort { a, b in
                var i = start[a], j = start[b]
                let ea = start[a + 1], eb = start[b + 1]
                while i < ea && j < eb {
                    if f[i] != f[j] { return f[i] < f[j] }
                    i += 1; j += 1
                }
                return i == ea && j < eb
            }
        }
        // At most one node per frame: the arrays are made at that size and cut to the nodes made
        // (appending per frame was a large part of a tree's time).
        var parent = [Int32](repeating: -1, count: flat.count), name = [Int32](repeating: 0, count: flat.count)
        var value = [Int64](repeating: 0, count: flat.count)
        var rawBase = [Int64](repeating: 0, count: base == nil ? 0 : flat.count)   // base values of the stacks ending at each node, unscaled
        var total: Int64 = 0
        var made = 0
        var path = [Int32](repeating: 0, count: (0..<items.count).reduce(0) { max($0, start[$1 + 1] - start[$1]) })
        var depth = 0               // the nodes of the previous stack's frames are path[0..<depth]
        var previous = 0..<0        // the previous stack's frames in `flat`
        var ends: [Int32] = []      // nodes where base stacks end
        var stackEnds = [Int32](repeating: -1, count: stacks.count)
        flat.withUnsafeBufferPointer { f in
            parent.withUnsafeMutableBufferPointer { parent in
                name.withUnsafeMutableBufferPointer { name in
                    path.withUnsafeMutableBufferPointer { path in
                        for item in order {
                            let k = items[item]
                            let frames = start[item]..<start[item + 1]
                            var shared = 0
                            while shared < frames.count, shared < previous.count, f[frames.lowerBound + shared] == f[previous.lowerBound + shared] { shared += 1 }
                            depth = shared
                            for i in (frames.lowerBound + shared)..<frames.upperBound {
                                parent[made] = depth > 0 ? path[depth - 1] : -1
                                name[made] = f[i]
                                path[depth] = Int32(made)
                                depth += 1
                                made += 1
                            }
                            previous = frames
                            if k < stacks.count { total += stacks[k].value }
                            guard depth > 0 else { continue }
                            let node = Int(path[depth - 1])
                            if k < stacks.count {
                                value[node] += stacks[k].value
                                stackEnds[k] = Int32(node)
                            } else {
                                if rawBase[node] == 0 { ends.append(Int32(node)) }
                                rawBase[node] += baseList[k - stacks.count].value
                            }
                        }
                    }
                }
            }
        }
        parent.removeLast(parent.count - made)
        name.removeLast(name.count - made)
        value.removeLast(value.count - made)
        // Totals: a node's own stacks plus its children's (children come after their parent).
        for i in parent.indices.reversed() where parent[i] >= 0 { value[Int(parent[i])] += value[i] }
        var baseValue: [Int64] = []
        if base != nil {
            baseValue = Array(repeating: 0, count: parent.count)
            // Scaled once per distinct stack, as the sum of its copies: the same rounding as a
            // merge of the stacks before scaling.
            for end in ends { baseValue[Int(end)] = Int64((Double(rawBase[Int(end)]) * scale).rounded()) }
            for i in parent.indices.reversed() where parent[i] >= 0 { baseValue[Int(parent[i])] += baseValue[i] }
        }
        // Pre-order, siblings by name (flamegraph.pl's order): names ranked once, children as
        // ranges of one array.
        let n = parent.count
        var rank = [Int32](repeating: 0, count: idNames.count)
        for (r, id) in idNames.indices.sorted(by: { idNames[$0] < idNames[$1] }).enumerated() { rank[id] = Int32(r) }
        var first = [Int](repeating: 0, count: n + 2)
        for p in parent { first[Int(p) + 2] += 1 }
        for i in 1..<first.count { first[i] += first[i - 1] }
        var children = [Int32](repeating: 0, count: n)
        var fill = first
        for (i, p) in parent.enumerated() {
            children[fill[Int(p) + 1]] = Int32(i)
            fill[Int(p) + 1] += 1
        }
        for slot in 0...n where first[slot + 1] - first[slot] > 1 {
            children[first[slot]..<first[slot + 1]].sort { rank[Int(name[Int($0)])] < rank[Int(name[Int($1)])] }
        }
        var tree = FlameTree(unit: unit, total: total, names: [], parent: [], name: [], value: [], base: base == nil ? nil : [])
        tree.parent.reserveCapacity(n)
        tree.name.reserveCapacity(n)
        tree.value.reserveCapacity(n)
        var newIndex = [Int32](repeating: -1, count: n)
        var finalName = [Int32](repeating: -1, count: idNames.count)
        var work: [Int32] = children[first[0]..<first[1]].reversed()
        while let node = work.popLast() {
            let i = Int(node)
            newIndex[i] = tree.append(name: Int(name[i]), of: idNames, listed: &finalName,
                                      parent: parent[i] < 0 ? -1 : newIndex[Int(parent[i])], value: value[i])
            tree.base?.append(baseValue[i])
            work.append(contentsOf: children[first[i + 1]..<first[i + 2]].reversed())
        }
        for k in stackEnds.indices where stackEnds[k] >= 0 { stackEnds[k] = newIndex[Int(stackEnds[k])] }
        return (tree, stackEnds)
    }

    /// One row of the top-functions table (`sprof report`).
    public struct TopRow: Encodable, Sendable {
        public var name: String
        public var selfValue: Int64
        public var totalValue: Int64
        public var selfPercent: Double
        public var totalPercent: Double
        enum CodingKeys: String, CodingKey {
            case name, selfValue = "self", totalValue = "total", selfPercent = "self_percent", totalPercent = "total_percent"
        }
    }

    /// The top-functions table by self, at most `limit` rows; `names` are the profile's function
    /// names when made already (``Profile/FunctionNames``), nil to make them.
    public static func top(_ profile: Profile, valueIndex: Int = 0, limit: Int = 500, names: Profile.FunctionNames? = nil) -> [TopRow] {
        profile.top(by: [.sym], valueIndex: valueIndex, names: names).prefix(limit).map {
            TopRow(name: $0.name, selfValue: $0.selfValue, totalValue: $0.totalValue,
                   selfPercent: $0.selfPercent, totalPercent: $0.totalPercent)
        }
    }

    /// The inverted (bottom-up) tree: every stack read from its leaf, so the roots are the
    /// functions samples were in (each root's value is that function's self value) and their
    /// children are the callers.
    public static func invertedTree(_ stacks: [(frames: [String], value: Int64)], unit: String) -> FlameTree {
        invertedTree(InternedStacks(stacks), unit: unit)
    }

    /// ``invertedTree(_:unit:)`` over interned names.
    public static func invertedTree(_ stacks: InternedStacks, unit: String) -> FlameTree {
        var inverted = stacks
        inverted.stacks = stacks.stacks.map { (frames: Array($0.frames.reversed()), value: $0.value) }
        return flameTree(inverted, unit: unit)
    }

    /// One neighbour of a function in the callers/callees view.
    public struct Neighbour: Encodable, Sendable {
        /// The caller's or callee's name.
        public var name: String
        /// Value of the samples in which this caller calls the function (or the function calls
        /// this callee), counted once per sample.
        public var total: Int64
        /// Of that, the value where the callee itself is the leaf (callees only; 0 for callers).
        public var selfValue: Int64
        enum CodingKeys: String, CodingKey { case name, total, selfValue = "self" }
    }

    /// Who calls `function` and what it calls (pprof's peek, the Firefox Profiler's butterfly).
    public struct CallersCallees: Encodable, Sendable {
        /// The function.
        public var name: String
        /// Its self value (samples with it as the leaf).
        public var selfValue: Int64
        /// Its total value (samples with it anywhere on the stack, once per sample).
        public var total: Int64
        /// The profile's total.
        public var grandTotal: Int64
        /// The unit of the values.
        public var unit: String
        /// Callers, largest total first.
        public var callers: [Neighbour]
        /// Callees, largest total first.
        public var callees: [Neighbour]
        enum CodingKeys: String, CodingKey {
            case name, selfValue = "self", total, grandTotal = "grand_total", unit, callers, callees
        }
    }

    /// The callers and callees of `function` over `stacks` (root first). Recursion counts a
    /// sample once per caller or callee, as total values do. Functions are named as the Top table
    /// and the transforms name them, without the folded `_[k]`/`_[i]`/`_[j]` suffixes (the
    /// stacks' frames carry them; `function` may too): a kernel or inlined function clicked in
    /// Top had "self 0, total 0", and a caller's row fed to a transform matched nothing.
    public static func callersCallees(_ stacks: [(frames: [String], value: Int64)], function: String, unit: String) -> CallersCallees {
        let function = FrameKind.functionName(function)
        var result = CallersCallees(name: function, selfValue: 0, total: 0, grandTotal: 0, unit: unit, callers: [], callees: [])
        var callers: [String: Int64] = [:], callees: [String: (Int64, Int64)] = [:]
        // Only a suffixed frame needs its name made again.
        func named(_ frame: String) -> String { frame.hasSuffix("]") ? FrameKind.functionName(frame) : frame }
        for s in stacks where s.value > 0 {
            result.grandTotal += s.value
            guard s.frames.contains(where: { $0 == function || ($0.hasSuffix("]") && named($0) == function) }) else { continue }
            let frames = s.frames.map(named)
            result.total += s.value
            if frames.last == function { result.selfValue += s.value }
            var up = Set<String>(), down = Set<String>()
            for (i, f) in frames.enumerated() where f == function {
                if i > 0 { up.insert(frames[i - 1]) }
                if i + 1 < frames.count { down.insert(frames[i + 1]) }
            }
            for c in up { callers[c, default: 0] += s.value }
            for c in down {
                callees[c, default: (0, 0)].0 += s.value
                if frames.last == c && frames[frames.count - 2] == function { callees[c, default: (0, 0)].1 += s.value }
            }
        }
        func order(_ a: Neighbour, _ b: Neighbour) -> Bool { a.total != b.total ? a.total > b.total : a.name < b.name }
        result.callers = callers.map { Neighbour(name: $0.key, total: $0.value, selfValue: 0) }.sorted(by: order)
        result.callees = callees.map { Neighbour(name: $0.key, total: $0.value.0, selfValue: $0.value.1) }.sorted(by: order)
        return result
    }

    /// One thread's total.
    public struct ThreadRow: Encodable, Sendable {
        public var index: Int
        public var pid: Int32
        public var tid: Int32
        public var process: String
        public var name: String
        public var value: Int64
        public var percent: Double
    }

    /// Per-thread totals, largest first; `index` selects the thread's flame graph.
    public static func threads(_ profile: Profile) -> [ThreadRow] {
        var indexOf: [Profile.Thread: Int] = [:]
        for (i, t) in profile.threads.enumerated() { indexOf[t] = i }
        return profile.threadTotals().map { t in
            let key = Profile.Thread(pid: t.pid, tid: t.tid, name: t.name, processName: t.processName)
            return ThreadRow(index: indexOf[key] ?? -1, pid: t.pid, tid: t.tid, process: t.processName, name: t.name,
                             value: t.value, percent: t.percent)
        }
    }

    /// `profile` with only the samples of thread `index`.
    public static func only(thread index: Int, of profile: Profile) -> Profile {
        var p = profile
        p.samples = p.samples.filter { $0.thread == index }
        return p
    }

    /// The resident-memory timeline, one series per process.
    public struct MemorySeries: Encodable, Sendable {
        public var pid: Int32
        public var name: String
        /// `[nanoseconds since start, RSS bytes]` pairs in time order.
        public var points: [[UInt64]]
    }

    /// The timeline of `profile.memory`, grouped by process; `names` (pid → name) first, then the
    /// profile's main threads name the processes.
    public static func memory(_ profile: Profile, names known: [Int32: String] = [:]) -> [MemorySeries] {
        var byPID: [Int32: [[UInt64]]] = [:]
        for m in profile.memory { byPID[m.pid, default: []].append([m.time, m.rss]) }
        var names = Dictionary(profile.threads.filter { $0.pid == $0.tid }.map { ($0.pid, $0.processName) }, uniquingKeysWith: { a, _ in a })
        names.merge(known) { _, new in new }
        return byPID.keys.sorted().map { MemorySeries(pid: $0, name: names[$0] ?? "pid \($0)", points: byPID[$0]!) }
    }

    /// One row of the Compare tab's table: a function's self and total shares (percent of each
    /// profile's total) in base and new, and their changes in percentage points.
    public struct CompareRow: Encodable, Sendable {
        /// The function (as `sprof report` names it).
        public var name: String
        /// Self share in the base, percent of the base's total.
        public var baseSelf: Double
        /// Self share in the new profile, percent of its total.
        public var newSelf: Double
        /// `newSelf - baseSelf`, percentage points.
        public var deltaSelf: Double
        /// Total (inclusive) share in the base, percent.
        public var baseTotal: Double
        /// Total share in the new profile, percent.
        public var newTotal: Double
        /// `newTotal - baseTotal`, percentage points.
        public var deltaTotal: Double
        /// With repeated runs on both sides: the Benjamini–Hochberg q-value of the self change.
        public var qSelf: Double? = nil
        /// The q-value of the total change.
        public var qTotal: Double? = nil
        /// The test used for the self change: `welch` or `mann-whitney`.
        public var test: String? = nil
        /// Whether the self or the total change is significant (q ≤ 0.05).
        public var significant: Bool? = nil
        enum CodingKeys: String, CodingKey {
            case name, baseSelf = "base_self", newSelf = "new_self", deltaSelf = "delta_self"
            case baseTotal = "base_total", newTotal = "new_total", deltaTotal = "delta_total"
            case qSelf = "q_self", qTotal = "q_total", test, significant
        }
    }

    /// Self and total shares per function in both profiles, the largest change (of self or
    /// total) first, at most `limit` rows. Total catches what self misses: work that moved
    /// between two callers of one shared helper changes the callers' totals, not their self.
    public static func compare(base: Profile, new: Profile, limit: Int = 200) -> [CompareRow] {
        // Named together: a function has one name on both sides.
        let names = Profile.FunctionNames.shared([base, new])
        return compare(baseRows: base.top(by: [.sym], names: names[0]), newRows: new.top(by: [.sym], names: names[1]), limit: limit)
    }

    /// ``compare(base:new:limit:)`` from the two profiles' rows of ``Profile/top(by:valueIndex:names:granularity:)``
    /// by `sym`, named together (``Profile/FunctionNames/shared(_:style:)``).
    public static func compare(baseRows: [CostRow], newRows: [CostRow], limit: Int = 200) -> [CompareRow] {
        func shares(_ rows: [CostRow]) -> [String: (Double, Double)] {
            var out: [String: (Double, Double)] = [:]
            for r in rows where out[r.name] == nil { out[r.name] = (r.selfPercent, r.totalPercent) }
            return out
        }
        let b = shares(baseRows), n = shares(newRows)
        let rows = Set(b.keys).union(n.keys).map { name -> CompareRow in
            let (bs, bt) = b[name] ?? (0, 0), (ns, nt) = n[name] ?? (0, 0)
            return CompareRow(name: name, baseSelf: bs, newSelf: ns, deltaSelf: ns - bs, baseTotal: bt, newTotal: nt, deltaTotal: nt - bt)
        }
        return rows.sorted {
            let a = max(abs($0.deltaSelf), abs($0.deltaTotal)), c = max(abs($1.deltaSelf), abs($1.deltaTotal))
            return a != c ? a > c : $0.name < $1.name
        }.prefix(limit).map { $0 }
    }
}
