/// A rewrite of a profile's samples or stacks, as the Firefox Profiler's transforms and `go tool
/// pprof`'s `-focus`, `-ignore` and `-hide` do. ``Profile/transformed(_:)`` applies a list of
/// them in order; every view of the result (flame graphs, tables, threads, comparisons) then
/// shows the transformed profile.
///
/// Functions are named as `sprof report` names them: the display name, without the folded
/// format's `_[k]`/`_[i]`/`_[j]` suffixes; a location without symbols by its pseudo-name
/// (`[libc.so.6+0x1234]`). A transform works on the expanded stack, one frame per inline entry.
///
/// The text form (``description`` and ``init(parsing:)``) is `KIND:ARGUMENT`, used in the web
/// UI's URLs and by `sprof report --transform`.
public enum StackTransform: Sendable, Hashable, CustomStringConvertible {
    /// `focus:F`: only the samples with `F` on the stack, each stack cut above its outermost `F`,
    /// so that `F` is the root (the Firefox Profiler's "focus on function"). The total becomes
    /// `F`'s total.
    case focusFunction(String)
    /// `subtree:A;B;C`: only the samples whose stack starts with the path `A`, `B`, `C` (root
    /// first, below the process), each cut so that `C` is the root ("focus on subtree"). In the
    /// text form a `;` or `\` within a name is escaped with `\` (``joinedPath(_:)``).
    case focusSubtree([String])
    /// `ignore:F`: the samples with `F` anywhere on the stack are dropped (pprof's `-ignore`, the
    /// Firefox Profiler's "drop samples with this function"). The total drops by `F`'s total.
    case ignore(String)
    /// `merge:F`: `F`'s frames are removed from every stack, so its self time goes to its callers
    /// ("merge function", pprof's `-hide`). The total is unchanged.
    case merge(String)
    /// `rec:F`: recursion of `F` collapsed: the frames from below the outermost `F` down to the
    /// innermost `F` are removed, so `A F B F C` becomes `A F C` ("collapse recursion").
    case collapseRecursion(String)
    /// `tid:N`: only the samples of thread `N`.
    case thread(Int32)
    /// `pid:N`: only the samples of process `N`.
    case process(Int32)

    /// Why a transform's text was refused.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        /// One line: what is wrong and what is accepted.
        public var description: String
    }

    /// Parses the text form `KIND:ARGUMENT` (kinds: focus, subtree, ignore, merge, rec, tid, pid).
    /// - Throws: ``ParseError`` for an unknown kind, an empty argument or a non-numeric id.
    public init(parsing text: String) throws {
        let accepted = "transforms are focus:F, subtree:A;B;C, ignore:F, merge:F, rec:F, tid:N, pid:N"
        guard let colon = text.firstIndex(of: ":") else {
            throw ParseError(description: "transform \(String(text.prefix(60)).debugDescription) has no KIND: prefix; \(accepted)")
        }
        let kind = String(text[..<colon]), arg = String(text[text.index(after: colon)...])
        guard !arg.isEmpty else { throw ParseError(description: "transform \(kind): needs a function or an id; \(accepted)") }
        // A frame's folded name (`schedule_[k]`, `f_[i]`) names its function too.
        let function = FrameKind.functionName(arg)
        switch kind {
        case "focus": self = .focusFunction(function)
        case "subtree": self = .focusSubtree(Self.splitPath(arg).map { FrameKind.functionName($0) })
        case "ignore": self = .ignore(function)
        case "merge": self = .merge(function)
        case "rec": self = .collapseRecursion(function)
        case "tid", "pid":
            guard let id = Int32(arg) else { throw ParseError(description: "transform \(kind):\(String(arg.prefix(20))): the id is a number") }
            self = kind == "tid" ? .thread(id) : .process(id)
        default:
            throw ParseError(description: "unknown transform \(String(kind.prefix(20)).debugDescription); \(accepted)")
        }
    }

    /// The text form, which ``init(parsing:)`` reads back.
    public var description: String {
        switch self {
        case .focusFunction(let f): return "focus:" + f
        case .focusSubtree(let path): return "subtree:" + Self.joinedPath(path)
        case .ignore(let f): return "ignore:" + f
        case .merge(let f): return "merge:" + f
        case .collapseRecursion(let f): return "rec:" + f
        case .thread(let t): return "tid:\(t)"
        case .process(let p): return "pid:\(p)"
        }
    }

    /// A `subtree:` path as text: the names joined by `;`, each `\` and `;` within a name written
    /// `\\` and `\;`, so that any name reads back (Rust's `[u8; 32]`, C++ templates hold `;`).
    public static func joinedPath(_ names: [String]) -> String {
        names.map { name in
            var out = ""
            for c in name {
                if c == "\\" || c == ";" { out.append("\\") }
                out.append(c)
            }
            return out
        }.joined(separator: ";")
    }

    /// The names of a `subtree:` path (``joinedPath(_:)``). A `\` before anything but `\` or
    /// `;` is kept as it is, so a path written before escaping existed reads as it did.
    public static func splitPath(_ text: String) -> [String] {
        var names: [String] = [], name = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            let next = text.index(after: i)
            if c == "\\", next < text.endIndex, text[next] == "\\" || text[next] == ";" {
                name.append(text[next])
                i = text.index(after: next)
                continue
            }
            if c == ";" { names.append(name); name = "" } else { name.append(c) }
            i = next
        }
        names.append(name)
        return names
    }

    /// True for the transforms that select samples by thread or process rather than rewrite stacks.
    public var selectsThreads: Bool {
        switch self {
        case .thread, .process: return true
        default: return false
        }
    }

    /// The positions of the frames kept from `frames` (function names, root first), in order;
    /// nil drops the sample.
    public func kept(_ frames: [String]) -> [Int]? {
        kept(frames) { $0 }
    }

    /// ``kept(_:)`` over frames given as keys of any kind (e.g. interned ids of their function
    /// names): `key` gives the key of a function name, nil when no frame has that name.
    /// Inlinable: specialized for the caller's key type, as it runs once per stack.
    @inlinable
    public func kept<Key: Equatable>(_ frames: [Key], key: (String) -> Key?) -> [Int]? {
        switch self {
        case .focusFunction(let name):
            guard let f = key(name), let i = frames.firstIndex(of: f) else { return nil }
            return Array(i..<frames.count)
        case .focusSubtree(let names):
            let path = names.compactMap(key)
            guard !path.isEmpty, path.count == names.count, frames.count >= path.count, frames[..<path.count].elementsEqual(path) else { return nil }
            return Array((path.count - 1)..<frames.count)
        case .ignore(let name):
            guard let f = key(name) else { return Array(frames.indices) }
            return frames.contains(f) ? nil : Array(frames.indices)
        case .merge(let name):
            guard let f = key(name) else { return Array(frames.indices) }
            return frames.indices.filter { frames[$0] != f }
        case .collapseRecursion(let name):
            guard let f = key(name), let first = frames.firstIndex(of: f), let last = frames.lastIndex(of: f), last > first else { return Array(frames.indices) }
            return Array(0...first) + Array((last + 1)..<frames.count)
        case .thread, .process:
            return Array(frames.indices)
        }
    }
}

extension Profile {
    /// The profile with `transforms` applied in order: samples dropped or their stacks rewritten
    /// (new locations where an inline chain lost entries), timed samples along with them; tables
    /// of mappings and functions, threads, memory and metadata kept. Samples whose stacks become
    /// the same are merged.
    public func transformed(_ transforms: [StackTransform]) -> Profile {
        guard !transforms.isEmpty else { return self }
        let stackTransforms = transforms.filter { !$0.selectsThreads }
        // Thread and process selections only filter samples, so they commute with the rewrites.
        let keepThread: (Int?) -> Bool = { self.keeps(thread: $0, transforms) }
        var out = self
        var locationIDs: [Location: Int] = [:]
        for (i, l) in locations.enumerated() where locationIDs[l] == nil { locationIDs[l] = i }
        var stackIDs: [[Int]: Int] = [:]
        out.stacks = []
        var newStack: [Int: Int?] = [:]   // old stack → new stack, nil when dropped

        func intern(_ locs: [Int]) -> Int {
            if let id = stackIDs[locs] { return id }
            stackIDs[locs] = out.stacks.count
            out.stacks.append(locs)
            return out.stacks.count - 1
        }
        // Frames (root first) back to a stack (leaf first): consecutive entries of one location
        // stay one location; a location that lost inline entries becomes a new one.
        func regroup(_ frames: [(location: Int, line: Int)]) -> [Int] {
            var locs: [Int] = []
            var i = 0
            while i < frames.count {
                let l = frames[i].location
                var j = i
                while j + 1 < frames.count && frames[j + 1].location == l && frames[j + 1].line < frames[j].line { j += 1 }
                let original = locations[l]
                let keptLines = frames[i...j].map(\.line)
                if original.lines.isEmpty || keptLines.count == original.lines.count {
                    locs.append(l)
                } else {
                    var copy = original
                    copy.lines = keptLines.reversed().map { original.lines[$0] }
                    if let id = locationIDs[copy] { locs.append(id) } else {
                        locationIDs[copy] = out.locations.count
                        out.locations.append(copy)
                        locs.append(out.locations.count - 1)
                    }
                }
                i = j + 1
            }
            return locs.reversed()
        }

        // Transforms name functions as the views do (short names, unique in this profile).
        let shownNames = functionNames()
        // One frame per inline entry, root first: (location, index into its lines or -1).
        func rewrite(_ stack: Int) -> Int? {
            if let known = newStack[stack] { return known }
            var frames: [(location: Int, line: Int)] = []
            var names: [String] = []
            for l in stacks[stack].reversed() {
                let loc = locations[l]
                if loc.lines.isEmpty {
                    frames.append((l, -1))
                    names.append(frameNames(ofLocation: l)[0])
                } else {
                    for k in loc.lines.indices.reversed() {
                        frames.append((l, k))
                        names.append(shownNames[loc.lines[k].function])
                    }
                }
            }
            var result: Int?
            if stackTransforms.isEmpty {
                result = intern(stacks[stack])
            } else {
                var dropped = false
                for tr in stackTransforms {
                    guard let keep = tr.kept(names) else { dropped = true; break }
                    names = keep.map { names[$0] }
                    frames = keep.map { frames[$0] }
                }
                result = dropped ? nil : intern(regroup(frames))
            }
            newStack[stack] = .some(result)
            return result
        }
        var merged: [SampleKey: Int] = [:]
        out.samples = []
        for s in samples where keepThread(s.thread) {
            guard let st = rewrite(s.stack) else { continue }
            let key = SampleKey(stack: st, thread: s.thread, run: s.run)
            if let i = merged[key] {
                for v in s.values.indices { out.samples[i].values[v] += s.values[v] }
            } else {
                merged[key] = out.samples.count
                out.samples.append(Sample(stack: st, thread: s.thread, values: s.values, run: s.run))
            }
        }
        out.samples.sort(by: Sample.canonicalOrder)
        out.timedSamples = timedSamples.compactMap { t in
            guard keepThread(t.thread), let st = rewrite(t.stack) else { return nil }
            var t = t
            t.stack = st
            return t
        }
        return out
    }

    /// Whether the samples of thread `thread` (an index into ``threads``, nil for none) pass the
    /// thread and process selections (`tid:`, `pid:`) of `transforms`.
    public func keeps(thread: Int?, _ transforms: [StackTransform]) -> Bool {
        for tr in transforms {
            switch tr {
            case .thread(let tid): guard let thread, threads[thread].tid == tid else { return false }
            case .process(let pid): guard let thread, threads[thread].pid == pid else { return false }
            default: break
            }
        }
        return true
    }

    private struct SampleKey: Hashable {
        var stack: Int
        var thread: Int?
        var run: Int?
    }
}
