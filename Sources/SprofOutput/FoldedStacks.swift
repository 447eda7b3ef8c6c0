import SprofProfile

/// Stacks aggregated to sample counts: the folded format that flamegraph.pl, inferno and speedscope read.
///
/// Stacks are kept in a prefix tree whose frame names are interned, so adding a stack that was seen before
/// costs one table lookup per frame and allocates nothing; that matters because the profiler adds every
/// sample here. The tree is also what the flame graph renderer draws, which is why a stack and its
/// prefixes share nodes.
///
/// Frame names are normalised on the way in (``NameCleaning``, the rule every text view's names
/// follow) so that no name can break the line format:
/// - `;` (the frame separator) becomes `:`;
/// - control characters (including newline, CR and tab) become `?`;
/// - leading and trailing spaces are removed (they would not survive a round trip through the format),
///   and so is a leading byte order mark (U+FEFF), which readers drop at the start of a file;
/// - an empty name becomes `[unknown]`, so that no frame is silently dropped.
/// Spaces inside a name are kept: readers split a line at its last space. Turning spaces in the root
/// (process) frame into `_` is the caller's job, see ``processFrame(name:pid:tid:)``.
public struct FoldedStacks: Sendable {
    var names = NameTable()
    /// Node 0 is the invisible root; its children are the root frames of the stacks.
    var nodeParent: [Int32] = [-1]
    var nodeName: [Int32] = [-1]
    /// Samples whose stack ends exactly at this node (one folded line each when non-zero).
    var nodeSelf: [UInt64] = [0]
    private var childIndex = ChildTable()

    /// Sum of all counts (saturating at `UInt64.max` rather than trapping).
    public private(set) var total: UInt64 = 0
    /// Number of distinct stacks, i.e. of lines in ``serialized()``.
    public private(set) var stackCount: Int = 0

    /// An empty aggregation.
    public init() {}

    /// True when no sample has been added.
    public var isEmpty: Bool { stackCount == 0 }

    // MARK: Adding

    /// Adds `count` samples of the stack `frames`, root first (the root is the process frame).
    ///
    /// Names are normalised as described on the type. An empty stack or a zero count adds nothing:
    /// the line format cannot express either.
    public mutating func add(_ frames: [String], count: UInt64 = 1) {
        guard count > 0, !frames.isEmpty else { return }
        var node: Int32 = 0
        for frame in frames {
            node = child(of: node, name: intern(frame))
        }
        addSelf(node, count)
    }

    /// Adds one line of folded text (`a;b;c COUNT`), with the rules of ``parse(_:source:)``.
    /// A blank line adds nothing; `source` and `lineNumber` only label the error.
    public mutating func add(line: String, source: String = "<input>", lineNumber: Int = 1) throws {
        var text = line
        try text.withUTF8 { buf in
            try self.parseLine(buf, source: source, lineNumber: lineNumber)
        }
    }

    /// Adds every stack of `other` (counts of stacks present in both are summed).
    public mutating func merge(_ other: FoldedStacks) {
        var nameMap = [Int32](repeating: -1, count: other.names.count)
        var nodeMap = [Int32](repeating: 0, count: other.nodeParent.count)
        // Parents are always created before their children, so index order is a topological order.
        for i in 1 ..< other.nodeParent.count {
            let otherName = Int(other.nodeName[i])
            if nameMap[otherName] < 0 {
                nameMap[otherName] = other.names.withName(Int32(otherName)) { names.intern($0) }
            }
            let n = child(of: nodeMap[Int(other.nodeParent[i])], name: nameMap[otherName])
            nodeMap[i] = n
            let c = other.nodeSelf[i]
            if c > 0 { addSelf(n, c) }
        }
    }

    /// Builds the conventional root frame for a process: `comm`, `comm-PID` or `comm-PID/TID`.
    ///
    /// Spaces in `name` become `_` because readers split a folded line at its last space, and tools
    /// conventionally do this only for the process frame. A `tid` without a `pid` is ignored; an empty
    /// name becomes `[unknown]`.
    public static func processFrame(name: String, pid: Int? = nil, tid: Int? = nil) -> String {
        var s = name.isEmpty ? "[unknown]" : String(name.map { $0 == " " ? "_" : $0 })
        if let pid {
            s += "-\(pid)"
            if let tid { s += "/\(tid)" }
        }
        return s
    }

    // MARK: Reading

    /// Every distinct stack with its count, in the order of ``serialized()``.
    public func stacks() -> [(frames: [String], count: UInt64)] {
        let order = sortedLines()
        var result: [(frames: [String], count: UInt64)] = []
        result.reserveCapacity(order.nodes.count)
        for node in order.nodes {
            var frames: [String] = []
            var n = node
            while n != 0 {
                frames.append(names.string(nodeName[Int(n)]))
                n = nodeParent[Int(n)]
            }
            result.append((frames.reversed(), nodeSelf[Int(node)]))
        }
        return result
    }

    /// The folded text: one `frame;frame;frame COUNT` line per distinct stack, each ending in `\n`,
    /// sorted by the bytes of the stack, so the same samples always give the same bytes.
    public func serialized() -> String {
        String(decoding: serializedBytes(), as: UTF8.self)
    }

    /// ``serialized()`` as UTF-8 bytes, without the detour through String (for writing large profiles).
    public func serializedBytes() -> [UInt8] {
        var out: [UInt8] = []
        write(into: &out)
        return out
    }

    /// Appends the folded text to `buffer`.
    public func write(into buffer: inout [UInt8]) {
        let order = sortedLines()
        buffer.reserveCapacity(buffer.count + order.text.count + order.nodes.count * 12)
        order.text.withUnsafeBufferPointer { text in
            for (k, node) in order.nodes.enumerated() {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: text[order.ranges[k]]))
                buffer.append(UInt8(ascii: " "))
                buffer.appendDecimal(nodeSelf[Int(node)])
                buffer.append(UInt8(ascii: "\n"))
            }
        }
    }

    // MARK: Internals

    /// Every terminal node with its stack text, sorted by that text's bytes. Sorting full texts (not the
    /// tree frame by frame) is what "byte order" means to `LC_ALL=C sort`: a name with a byte below `;`
    /// orders differently from a per-frame comparison.
    private func sortedLines() -> (nodes: [Int32], text: [UInt8], ranges: [Range<Int>]) {
        var nodes: [Int32] = []
        nodes.reserveCapacity(stackCount)
        for i in 1 ..< nodeSelf.count where nodeSelf[i] > 0 { nodes.append(Int32(i)) }
        var text: [UInt8] = []
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(nodes.count)
        var chain: [Int32] = []
        names.bytes.withUnsafeBufferPointer { nameBytes in
            for node in nodes {
                chain.removeAll(keepingCapacity: true)
                var n = node
                while n != 0 {
                    chain.append(nodeName[Int(n)])
                    n = nodeParent[Int(n)]
                }
                let start = text.count
                for (k, name) in chain.reversed().enumerated() {
                    if k > 0 { text.append(UInt8(ascii: ";")) }
                    text.append(contentsOf: UnsafeBufferPointer(rebasing: nameBytes[names.range(name)]))
                }
                ranges.append(start ..< text.count)
            }
        }
        var order = Array(0 ..< nodes.count)
        text.withUnsafeBufferPointer { t in
            order.sort { a, b in
                let ra = ranges[a], rb = ranges[b]
                let n = min(ra.count, rb.count)
                var i = 0
                while i < n {
                    let x = t[ra.lowerBound + i], y = t[rb.lowerBound + i]
                    if x != y { return x < y }
                    i += 1
                }
                return ra.count < rb.count
            }
        }
        return (order.map { nodes[$0] }, text, order.map { ranges[$0] })
    }

    @inline(__always)
    mutating func child(of parent: Int32, name: Int32) -> Int32 {
        let key = ChildTable.key(parent: parent, name: name)
        if let existing = childIndex.find(key) { return existing }
        let id = Int32(nodeParent.count)
        nodeParent.append(parent)
        nodeName.append(name)
        nodeSelf.append(0)
        childIndex.insert(key, node: id)
        return id
    }

    @inline(__always)
    mutating func addSelf(_ node: Int32, _ count: UInt64) {
        let i = Int(node)
        if nodeSelf[i] == 0 { stackCount += 1 }
        let (s, o1) = nodeSelf[i].addingReportingOverflow(count)
        nodeSelf[i] = o1 ? .max : s
        let (t, o2) = total.addingReportingOverflow(count)
        total = o2 ? .max : t
    }

    private mutating func intern(_ frame: String) -> Int32 {
        var f = frame
        return f.withUTF8 { internFrame($0) }
    }

    /// Interns one raw frame name, normalising it first if needed (the clean case copies nothing).
    mutating func internFrame(_ raw: UnsafeBufferPointer<UInt8>) -> Int32 {
        if NameCleaning.isClean(raw) { return names.intern(raw) }
        let clean = NameCleaning.cleaned(raw)
        return clean.withUnsafeBufferPointer { names.intern($0) }
    }
}

