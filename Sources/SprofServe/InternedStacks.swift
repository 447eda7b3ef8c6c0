import SprofProfile

/// Stacks of frame names as ids into one table of names: what the flame graphs and the tables of
/// `sprof serve` are made from. A profile of 30,000 distinct stacks of 20 frames has only a few
/// thousand distinct names; hashing and copying the names once per frame of every stack, for
/// every view, time range and transform, was most of a view's time.
public struct InternedStacks: Sendable {
    /// The distinct names; a frame is an index into it.
    public private(set) var names: [String] = []
    private var ids: [String: Int32] = [:]
    /// The stacks, root first, with their values; the same frames may appear more than once
    /// (their values add up).
    public var stacks: [(frames: [Int32], value: Int64)] = []
    /// Where each of ``stacks`` comes from, when every one is a stack of the run's profile as it
    /// is (no frame rewritten: no transform, or only ones that drop samples), so that its tree is
    /// the run's whole tree with other values (``ProfileViews/FlameTree/restricted(to:)``); nil
    /// otherwise, or once ``stacks`` are changed by other code.
    var origins: [Origin]?

    /// A stack of the run's profile under one root: ``ProfileViews/cpuStacks(_:names:transforms:)`` merges by these.
    struct Origin: Hashable {
        /// The stack's index in the profile.
        var stack: Int32
        /// The root frame's id in the table (the process), -1 for none.
        var root: Int32
    }

    /// An empty table.
    public init() {}

    /// `stacks` with their names interned.
    public init(_ stacks: [(frames: [String], value: Int64)]) {
        self.stacks = stacks.map { (frames: $0.frames.map { id($0) }, value: $0.value) }
    }

    /// The id of `name`, added to the table when new.
    public mutating func id(_ name: String) -> Int32 {
        if let known = ids[name] { return known }
        let id = Int32(names.count)
        names.append(name)
        ids[name] = id
        return id
    }

    /// The stacks as names (for the views that read names).
    public var named: [(frames: [String], value: Int64)] {
        stacks.map { s in (frames: s.frames.map { names[Int($0)] }, value: s.value) }
    }

    /// `other`'s stacks in this table's ids (its names added to this table when new).
    public mutating func adopt(_ other: InternedStacks) -> [(frames: [Int32], value: Int64)] {
        let map = other.names.map { id($0) }
        return other.stacks.map { s in (frames: s.frames.map { map[Int($0)] }, value: s.value) }
    }
}

extension ProfileViews {
    /// The frame names of every stack of a profile (``Profile/frameNames(ofStack:names:)``:
    /// root first, without the process root) as ids, by stack index. Named once per location, as
    /// a stack's names are its locations' names in order. Also keeps what the transforms match
    /// (each frame's function name, ``StackTransform``), so that a transform rewrites these ids
    /// rather than a re-named profile.
    public struct StackNames: Sendable {
        /// The names' table (its stacks are empty).
        public var table = InternedStacks()
        /// Per stack of the profile, its frames' ids, root first.
        public var byStack: [[Int32]] = []
        /// The profile's function names, made once.
        public let functionNames: Profile.FunctionNames
        /// Per location, its frames' ids (root-most first); nil for a location no stack holds.
        var byLocation: [[Int32]?]
        /// Per location, the key (``functionKeys``) of each frame's function name as the
        /// transforms name it (no kind suffix), in the order of ``byLocation``.
        var keysByLocation: [[Int32]?]
        /// Function names as the transforms match them, by name.
        var functionKeys: [String: Int32] = [:]

        /// Names the stacks of `profile`.
        public init(_ profile: Profile) {
            // The view's names, made once: made per location they would be re-made for each.
            functionNames = profile.functionNames()
            byLocation = [[Int32]?](repeating: nil, count: profile.locations.count)
            keysByLocation = byLocation
            byStack.reserveCapacity(profile.stacks.count)
            for stack in profile.stacks {
                var frames: [Int32] = []
                frames.reserveCapacity(stack.count + 4)
                for l in stack.reversed() { frames.append(contentsOf: ids(of: l, in: profile)) }
                byStack.append(frames)
            }
        }

        private mutating func ids(of l: Int, in profile: Profile) -> [Int32] {
            if let known = byLocation[l] { return known }
            let ids = profile.frameNames(ofLocation: l, names: functionNames).map { table.id($0) }
            let location = profile.locations[l]
            // Matched as ``Profile/transformed(_:)`` names frames: a location without symbols by
            // its pseudo-name, else each inline entry by its function's name.
            let names = location.lines.isEmpty ? [table.names[Int(ids[0])]] : location.lines.reversed().map { functionNames[$0.function] }
            keysByLocation[l] = names.map { name in
                if let k = functionKeys[name] { return k }
                let k = Int32(functionKeys.count)
                functionKeys[name] = k
                return k
            }
            byLocation[l] = ids
            return ids
        }

        /// The frames of stack `index` of `profile` (the profile these names were made from, or
        /// one cut from it) after `transforms` (the stack rewrites; thread selections are the
        /// caller's), as ids of `table` (names added when new); nil when a transform drops the
        /// sample. The same frames and names as ``Profile/transformed(_:)`` gives, named again:
        /// an inline chain cut above its outermost entry becomes a location of its own, whose
        /// outermost kept entry then carries the location's kind suffix rather than `_[i]`.
        func frames(ofStack index: Int, in profile: Profile, transforms: [StackTransform], named: TransformedNames,
                    table: inout InternedStacks) -> [Int32]? {
            // A stack with none of the transforms' functions: a focus drops it, the others keep it as it is.
            if !profile.stacks[index].contains(where: { l in keysByLocation[l]!.contains { named.mask[Int($0)] } }) {
                return named.focuses ? nil : byStack[index]
            }
            // One frame per inline entry, root first: (location, position in its chain from the outermost).
            var frames: [(location: Int, position: Int)] = []
            var keys: [Int32] = []
            for l in profile.stacks[index].reversed() {
                let k = keysByLocation[l]!
                for position in k.indices { frames.append((l, position)) }
                keys.append(contentsOf: k)
            }
            let all = keys.count
            for tr in transforms {
                guard let keep = tr.kept(keys, key: { functionKeys[$0] }) else { return nil }
                if keep.count == keys.count { continue }
                keys = keep.map { keys[$0] }
                frames = keep.map { frames[$0] }
            }
            if keys.count == all { return byStack[index] }
            var out: [Int32] = []
            out.reserveCapacity(frames.count)
            for (i, f) in frames.enumerated() {
                let ids = byLocation[f.location]!
                // A frame continues its location when the one before is the same location's next outer entry.
                let continues = i > 0 && frames[i - 1].location == f.location && frames[i - 1].position < f.position
                if continues || f.position == 0 {
                    out.append(ids[f.position])
                } else {
                    let location = profile.locations[f.location]
                    let line = location.lines[location.lines.count - 1 - f.position]
                    out.append(table.id(functionNames[line.function] + location.kind.suffix))
                }
            }
            return out
        }
    }

    /// The functions that stack rewrites name, as a mask over ``StackNames/functionKeys``.
    struct TransformedNames {
        /// True for the keys of functions some transform names.
        var mask: [Bool]
        /// Whether a transform keeps only the stacks with its function (`focus:`, `subtree:`).
        var focuses: Bool

        init(_ transforms: [StackTransform], names: StackNames) {
            mask = [Bool](repeating: false, count: names.functionKeys.count)
            focuses = false
            for tr in transforms {
                let functions: [String]
                switch tr {
                case .focusFunction(let f): functions = [f]; focuses = true
                case .focusSubtree(let path): functions = path; focuses = true
                case .ignore(let f), .merge(let f), .collapseRecursion(let f): functions = [f]
                case .thread, .process: functions = []
                }
                for f in functions { if let k = names.functionKeys[f] { mask[Int(k)] = true } }
            }
        }
    }

    /// The CPU samples of `profile` summed per stack of the profile and root (process), as
    /// ``cpuStacks(_:names:transforms:)`` merges them, before any stack's frames are made.
    struct StackSums {
        /// The names' table with the roots (and names new to rewritten frames) added.
        var table: InternedStacks
        /// The (stack, root) pairs with a sample, in the order of the stacks made of them.
        var origins: [InternedStacks.Origin] = []
        /// The value of each pair.
        var values: [Int64] = []
        /// Per stack of the profile, its frames after the transforms (nil while not made, [nil]
        /// when dropped); empty without stack rewrites.
        var rewritten: [[Int32]??] = []
        /// Whether the transforms only drop samples (every kept stack is the profile's as it is).
        var keepsFrames: Bool
    }

    /// Whether `transforms` only drop samples (ignore, thread, process): each kept stack is then
    /// the profile's as it is.
    static func onlyDrop(_ transforms: [StackTransform]) -> Bool {
        transforms.allSatisfy { t in
            if case .ignore = t { return true }
            return t.selectsThreads
        }
    }

    /// The timed samples of `profile` that `transforms` keep (their thread selected, their stack
    /// not dropped by a focus or an ignore); a rewrite (merge, collapse recursion) keeps every
    /// sample. The Timeline tab's tracks thereby count what every other view counts.
    static func kept(_ timed: [Profile.TimedSample], of profile: Profile, names: StackNames, transforms: [StackTransform]) -> [Profile.TimedSample] {
        let rewrites = transforms.filter { !$0.selectsThreads }
        var keptThreads: [Int: Bool] = [:]
        var keptStacks = [Bool?](repeating: nil, count: profile.stacks.count)
        var table = names.table
        let named = TransformedNames(rewrites, names: names)
        return timed.filter { s in
            if keptThreads[s.thread] == nil { keptThreads[s.thread] = profile.keeps(thread: s.thread, transforms) }
            guard keptThreads[s.thread]!, s.stack >= 0, s.stack < profile.stacks.count else { return false }
            if rewrites.isEmpty { return true }
            if keptStacks[s.stack] == nil {
                keptStacks[s.stack] = names.frames(ofStack: s.stack, in: profile, transforms: rewrites, named: named, table: &table) != nil
            }
            return keptStacks[s.stack]!
        }
    }

    /// The sums of ``StackSums`` (see there) with `transforms` applied, on the run's names.
    static func stackSums(_ profile: Profile, names: StackNames, transforms: [StackTransform] = []) -> StackSums {
        let rewrites = transforms.filter { !$0.selectsThreads }
        var out = StackSums(table: names.table, keepsFrames: onlyDrop(transforms))
        var roots: [Int: Int32] = [:]
        // Summed per stack for its first root (most stacks have one process), other roots apart:
        // arrays indexed by stack rather than a dictionary of every (stack, root).
        var firstRoot = [Int32](repeating: -2, count: profile.stacks.count)
        var firstValue = [Int64](repeating: 0, count: profile.stacks.count)
        var others: [InternedStacks.Origin: Int64] = [:]
        let selects = rewrites.count < transforms.count
        out.rewritten = [[Int32]??](repeating: nil, count: rewrites.isEmpty ? 0 : profile.stacks.count)
        var keptThreads: [Int: Bool] = [:]
        let named = TransformedNames(rewrites, names: names)
        for s in profile.samples {
            let value = s.values[0]
            guard value != 0 else { continue }
            if selects {
                let t = s.thread ?? -1
                if keptThreads[t] == nil { keptThreads[t] = profile.keeps(thread: s.thread, transforms) }
                guard keptThreads[t]! else { continue }
            }
            if !rewrites.isEmpty {
                if out.rewritten[s.stack] == nil {
                    out.rewritten[s.stack] = .some(names.frames(ofStack: s.stack, in: profile, transforms: rewrites, named: named, table: &out.table))
                }
                guard out.rewritten[s.stack]! != nil else { continue }
            }
            var root: Int32 = -1
            if let t = s.thread {
                if let known = roots[t] { root = known } else {
                    root = profile.rootFrames(of: s, perThread: false).first.map { out.table.id($0) } ?? -1
                    roots[t] = root
                }
            }
            if firstRoot[s.stack] == -2 { firstRoot[s.stack] = root }
            if firstRoot[s.stack] == root {
                firstValue[s.stack] += value
            } else {
                others[InternedStacks.Origin(stack: Int32(s.stack), root: root), default: 0] += value
            }
        }
        for i in firstRoot.indices where firstRoot[i] != -2 {
            out.origins.append(InternedStacks.Origin(stack: Int32(i), root: firstRoot[i]))
            out.values.append(firstValue[i])
        }
        for (o, v) in others {
            out.origins.append(o)
            out.values.append(v)
        }
        return out
    }

    /// The CPU stacks of `profile` (sample counts, rooted at the process) as
    /// ``Profile/aggregatedStacks(valueIndex:perThread:names:sorted:)`` gives them, unsorted,
    /// with the names of `names` (made from `profile` or from the profile it was cut from, which
    /// shares its stacks); merged by stack and process rather than by names, which the flame tree,
    /// the callers and the tables read alike. With `transforms`, the CPU stacks of
    /// `profile.transformed(transforms)`, rewritten here on the ids.
    public static func cpuStacks(_ profile: Profile, names: StackNames, transforms: [StackTransform] = []) -> InternedStacks {
        let sums = stackSums(profile, names: names, transforms: transforms)
        var out = sums.table
        out.stacks = zip(sums.origins, sums.values).map { o, value in
            let index = Int(o.stack)
            let frames = sums.rewritten.isEmpty ? names.byStack[index] : sums.rewritten[index]!!
            guard o.root >= 0 else { return (frames, value) }
            var rooted: [Int32] = []
            rooted.reserveCapacity(frames.count + 1)
            rooted.append(o.root)
            rooted.append(contentsOf: frames)
            return (rooted, value)
        }
        if sums.keepsFrames { out.origins = sums.origins }
        return out
    }

    /// The CPU stacks of `profile`, its frames named here (``StackNames``).
    public static func cpuStacks(_ profile: Profile) -> InternedStacks {
        cpuStacks(profile, names: StackNames(profile))
    }
}

extension ProfileViews {
    /// A run's whole CPU flame tree with the node each of its stacks ends at, so that the tree of
    /// a subset of its stacks with other values (a time range, a transform that only drops
    /// samples) is one pass over its nodes (``FlameTree/restricted(to:)``) rather than a tree
    /// built again: the stacks of a subset are the run's, so are their paths in the tree.
    struct WholeTree: Sendable {
        /// The run's CPU flame tree (as ``flameTree(_:unit:base:)`` makes it).
        let tree: FlameTree
        /// The node each stack of the run (with a positive value) ends at, -1 for one without
        /// frames, by the stack's index in the profile for its first root (`firstRoot`, -2 for a
        /// stack without one), and in `otherEnds` for other roots (a stack sampled in several
        /// processes): arrays rather than a dictionary of every pair, as the tree is made for
        /// every first view.
        private var firstRoot: [Int32] = [], firstEnd: [Int32] = []
        private var otherEnds: [InternedStacks.Origin: Int32] = [:]
        /// The root names (processes) by their id in the run's table.
        private var roots: [String: Int32] = [:]

        /// The tree of `stacks`, the run's CPU stacks (``cpuStacks(_:names:transforms:)`` without
        /// transforms); nil when they do not say where they come from.
        init?(_ stacks: InternedStacks, unit: String) {
            guard let origins = stacks.origins else { return nil }
            let (tree, ends) = ProfileViews.flameTreeAndEnds(stacks, unit: unit)
            self.tree = tree
            let count = Int(origins.lazy.map(\.stack).max() ?? -1) + 1
            firstRoot = [Int32](repeating: -2, count: count)
            firstEnd = [Int32](repeating: -1, count: count)
            var rootSeen = [Bool](repeating: false, count: stacks.names.count)
            for (k, o) in origins.enumerated() where stacks.stacks[k].value > 0 {
                let i = Int(o.stack)
                if firstRoot[i] == -2 || firstRoot[i] == o.root {
                    firstRoot[i] = o.root
                    firstEnd[i] = ends[k]
                } else {
                    otherEnds[o] = ends[k]
                }
                if o.root >= 0 && !rootSeen[Int(o.root)] {
                    rootSeen[Int(o.root)] = true
                    roots[stacks.names[Int(o.root)]] = o.root
                }
            }
        }

        /// Where the run's stack `o` ends in the tree; nil when it is not in the tree.
        private func end(of o: InternedStacks.Origin) -> Int32? {
            let i = Int(o.stack)
            guard i < firstRoot.count else { return nil }
            if firstRoot[i] == o.root { return firstEnd[i] }
            return otherEnds[o]
        }

        /// The tree of `subset`, stacks of the same run (a cut of its profile or a transform that
        /// only drops samples, named with the run's ``StackNames``); nil when `subset` does not
        /// say where its stacks come from or one of them is not in the whole tree.
        func tree(of subset: InternedStacks) -> FlameTree? {
            guard let origins = subset.origins else { return nil }
            return tree(origins: origins, values: subset.stacks.map(\.value), names: subset.names)
        }

        /// The tree of `sums` (see ``tree(of:)``), without making their stacks' frames; nil when
        /// their transforms rewrite frames.
        func tree(of sums: StackSums) -> FlameTree? {
            guard sums.keepsFrames else { return nil }
            return tree(origins: sums.origins, values: sums.values, names: sums.table.names)
        }

        /// The tree of the run's stacks `origins` (roots as ids into `names`) with `values`.
        private func tree(origins: [InternedStacks.Origin], values: [Int64], names: [String]) -> FlameTree? {
            var rootIDs: [Int32: Int32] = [:]
            var ends: [(node: Int32, value: Int64)] = []
            ends.reserveCapacity(origins.count)
            for (k, o) in origins.enumerated() {
                let value = values[k]
                guard value > 0 else { continue }
                var root: Int32 = -1
                if o.root >= 0 {
                    if let known = rootIDs[o.root] { root = known } else {
                        guard let id = roots[names[Int(o.root)]] else { return nil }
                        rootIDs[o.root] = id
                        root = id
                    }
                }
                guard let end = end(of: InternedStacks.Origin(stack: o.stack, root: root)) else { return nil }
                ends.append((end, value))
            }
            return tree.restricted(to: ends)
        }
    }
}
