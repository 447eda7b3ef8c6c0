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
    /// a stack's names are its locations' names in order.
    public struct StackNames: Sendable {
        /// The names' table (its stacks are empty).
        public var table = InternedStacks()
        /// Per stack of the profile, its frames' ids, root first.
        public var byStack: [[Int32]] = []

        /// Names the stacks of `profile`.
        public init(_ profile: Profile) {
            // The view's names, made once: made per location they would be re-made for each.
            let names = profile.functionNames()
            var perLocation = [[Int32]?](repeating: nil, count: profile.locations.count)
            byStack.reserveCapacity(profile.stacks.count)
            for stack in profile.stacks {
                var frames: [Int32] = []
                frames.reserveCapacity(stack.count + 4)
                for l in stack.reversed() {
                    if let known = perLocation[l] {
                        frames.append(contentsOf: known)
                    } else {
                        let ids = profile.frameNames(ofLocation: l, names: names).map { table.id($0) }
                        perLocation[l] = ids
                        frames.append(contentsOf: ids)
                    }
                }
                byStack.append(frames)
            }
        }
    }

    /// The CPU stacks of `profile` (sample counts, rooted at the process) as
    /// ``Profile/aggregatedStacks(valueIndex:perThread:names:sorted:)`` gives them, unsorted,
    /// with the names of `names` (made from `profile` or from the profile it was cut from, which
    /// shares its stacks); merged by stack and process rather than by names, which the flame tree,
    /// the callers and the tables read alike.
    public static func cpuStacks(_ profile: Profile, names: StackNames) -> InternedStacks {
        struct Key: Hashable { var stack: Int; var root: Int32 }
        var out = names.table
        var roots: [Int: Int32] = [:]
        var merged: [Key: Int64] = [:]
        for s in profile.samples where s.values[0] != 0 {
            var root: Int32 = -1
            if let t = s.thread {
                if let known = roots[t] { root = known } else {
                    root = profile.rootFrames(of: s, perThread: false).first.map { out.id($0) } ?? -1
                    roots[t] = root
                }
            }
            merged[Key(stack: s.stack, root: root), default: 0] += s.values[0]
        }
        out.stacks = merged.map { key, value in (frames: (key.root >= 0 ? [key.root] : []) + names.byStack[key.stack], value: value) }
        return out
    }

    /// The CPU stacks of `profile`, its frames named here (``StackNames``).
    public static func cpuStacks(_ profile: Profile) -> InternedStacks {
        cpuStacks(profile, names: StackNames(profile))
    }
}
