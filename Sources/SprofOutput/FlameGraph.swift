/// Renders folded stacks as a self-contained, interactive SVG flame graph (or icicle graph).
///
/// The output depends only on the stacks and the options: no timestamps, no random ids, colours hashed
/// from names. So the same input gives the same bytes, and SVGs can be diffed and kept as golden files.
/// Hover shows a frame's name, count and share; click zooms; "Search" (or Ctrl-F) highlights frames
/// matching a regular expression and shows the share of samples they cover.
public enum FlameGraph {
    /// Left and right margin, in pixels.
    static let xpad = 10.0
    /// Average glyph width as a fraction of the font size, used to fit labels without measuring text
    /// (the renderer has no fonts; the script uses the same rule so labels agree after zooming).
    static let charWidthRatio = 0.59

    /// Renders `stacks` as an SVG document.
    public static func render(_ stacks: FoldedStacks, options: FlameGraphOptions = FlameGraphOptions()) -> String {
        String(decoding: renderBytes(stacks, options: options), as: UTF8.self)
    }

    /// Renders `stacks` as the UTF-8 bytes of an SVG document, ready to write to a file.
    public static func renderBytes(_ stacks: FoldedStacks,
                                   options: FlameGraphOptions = FlameGraphOptions()) -> [UInt8] {
        var out: [UInt8] = []
        render(stacks, options: options, into: &out)
        return out
    }

    /// Appends the SVG document for `stacks` to `out`.
    public static func render(_ stacks: FoldedStacks, options: FlameGraphOptions, into out: inout [UInt8]) {
        let layout = Layout(stacks: stacks, options: options)
        if stacks.total == 0 {
            renderEmpty(options: options, into: &out)
            return
        }
        let tree = Tree(stacks)
        let drawn = tree.visibleFrames(scale: layout.usableWidth / Double(stacks.total), minWidth: options.minWidth)
        var geometry = layout
        geometry.finish(maxDepth: drawn.maxDepth, hasNote: drawn.omitted > 0, detailLines: options.details.count)
        let deltas = options.differentialBase.map { Differential(new: stacks, base: $0, scale: options.differentialScale) }

        out.reserveCapacity(out.count + 8192 + drawn.frames.count * 240)
        header(geometry, options: options, onload: true, into: &out)
        out.appendLiteral("<!-- sprof flame graph: ")
        out.appendDecimal(drawn.frames.count)
        out.appendLiteral(" frames drawn, ")
        out.appendDecimal(drawn.omitted)
        out.appendLiteral(" narrower than ")
        out.appendFixed2(options.minWidth)
        out.appendLiteral(" px omitted -->\n")
        out.appendLiteral(FlameGraphAssets.script)
        chrome(geometry, options: options, into: &out)
        if drawn.omitted > 0 {
            out.appendLiteral("<text id=\"note\" x=\"")
            out.appendFixed2(Double(options.width) - xpad)
            out.appendLiteral("\" y=\"")
            out.appendFixed2(geometry.subtitleY)
            out.appendLiteral("\" font-size=\"")
            out.appendFixed2(max(options.fontSize - 2, 1))
            out.appendLiteral("\">")
            out.appendGrouped(UInt64(drawn.omitted))
            out.appendLiteral(drawn.omitted == 1 ? " frame" : " frames")
            out.appendLiteral(" narrower than ")
            out.appendFixed2(options.minWidth)
            out.appendLiteral(" px not shown</text>\n")
        }

        out.appendLiteral("<g id=\"frames\" data-total=\"")
        out.appendDecimal(stacks.total)
        out.appendLiteral("\" data-xpad=\"")
        out.appendFixed2(xpad)
        out.appendLiteral("\" data-width=\"")
        out.appendFixed2(geometry.usableWidth)
        out.appendLiteral("\" data-charwidth=\"")
        out.appendFixed2(geometry.charWidth)
        out.appendLiteral(options.inverted ? "\" data-inverted=\"1\">\n" : "\" data-inverted=\"0\">\n")

        var countName: [UInt8] = [UInt8(ascii: " ")]
        countName.appendEscaped(options.countName)
        countName.appendLiteral(", ")
        let total = Double(stacks.total)
        let scale = geometry.usableWidth / total
        let allName: [UInt8] = Array("all".utf8)
        let rectHeight = Double(max(options.frameHeight - 1, 1))
        let textDY = Double(options.frameHeight) / 2 + options.fontSize * 0.35

        stacks.names.bytes.withUnsafeBufferPointer { nameBytes in
            allName.withUnsafeBufferPointer { allBytes in
                for frame in drawn.frames {
                    let node = Int(frame.node)
                    let name = node == 0
                        ? allBytes
                        : UnsafeBufferPointer(rebasing: nameBytes[stacks.names.range(stacks.nodeName[node])])
                    let count = tree.totals[node]
                    let x = xpad + Double(frame.start) * scale
                    let w = Double(count) * scale
                    let y = geometry.y(depth: Int(frame.depth))

                    out.appendLiteral("<g class=\"f\" data-x=\"")
                    out.appendDecimal(frame.start)
                    out.appendLiteral("\" data-w=\"")
                    out.appendDecimal(count)
                    out.appendLiteral("\"><title>")
                    out.appendEscaped(name)
                    out.appendLiteral(" (")
                    out.appendGrouped(count)
                    out.append(contentsOf: countName)
                    out.appendFixed2(Double(count) / total * 100)
                    out.appendLiteral("%")
                    if let deltas {
                        let d = deltas.selfDelta[node]
                        out.appendLiteral("; self ")
                        out.appendLiteral(d >= 0 ? "+" : "-")
                        out.appendFixed2(abs(d))
                        out.appendLiteral(" vs base")
                    }
                    out.appendLiteral(")</title><rect x=\"")
                    out.appendFixed2(x)
                    out.appendLiteral("\" y=\"")
                    out.appendFixed2(y)
                    out.appendLiteral("\" width=\"")
                    out.appendFixed2(w)
                    out.appendLiteral("\" height=\"")
                    out.appendFixed2(rectHeight)
                    out.appendLiteral("\" fill=\"")
                    appendColor(deltas?.color(node) ?? FrameColor.rgb(name: name, palette: options.palette), into: &out)
                    out.appendLiteral("\" rx=\"2\" ry=\"2\"/><text x=\"")
                    out.appendFixed2(x + 3)
                    out.appendLiteral("\" y=\"")
                    out.appendFixed2(y + textDY)
                    out.appendLiteral("\">")
                    appendLabel(name, width: w, charWidth: geometry.charWidth, into: &out)
                    out.appendLiteral("</text></g>\n")
                }
            }
        }
        out.appendLiteral("</g>\n")
        provenance(geometry, options: options, into: &out)
        out.appendLiteral("</svg>\n")
    }

    /// The provenance lines below the graph, in small grey type, and as the document's `<desc>`.
    private static func provenance(_ g: Layout, options: FlameGraphOptions, into out: inout [UInt8]) {
        guard !options.details.isEmpty else { return }
        out.appendLiteral("<desc>")
        for line in options.details {
            out.appendEscaped(line)
            out.appendLiteral("\n")
        }
        out.appendLiteral("</desc>\n<g id=\"provenance\" font-size=\"")
        out.appendFixed2(max(options.fontSize - 3, 1))
        out.appendLiteral("\" fill=\"#555\">\n")
        for (i, line) in options.details.enumerated() {
            out.appendLiteral("<text x=\"")
            out.appendFixed2(xpad)
            out.appendLiteral("\" y=\"")
            out.appendFixed2(g.provenanceY + Double(i) * g.provenanceLineHeight)
            out.appendLiteral("\">")
            out.appendEscaped(line)
            out.appendLiteral("</text>\n")
        }
        out.appendLiteral("</g>\n")
    }

    /// Self-count changes per node of the drawn profile against a base, matched by stack path.
    struct Differential {
        /// new self − base self, per node of the drawn profile.
        var selfDelta: [Double]
        var maxAbs: Double

        init(new: FoldedStacks, base: FoldedStacks, scale: Double) {
            var baseSelf: [UInt64: Double] = [:]
            for (hash, node) in Self.pathHashes(base).enumerated().map({ ($0.element, $0.offset) }) where base.nodeSelf[node] > 0 {
                baseSelf[hash, default: 0] += Double(base.nodeSelf[node]) * scale
            }
            let hashes = Self.pathHashes(new)
            selfDelta = hashes.indices.map { i in Double(new.nodeSelf[i]) - (i == 0 ? 0 : baseSelf[hashes[i]] ?? 0) }
            maxAbs = selfDelta.reduce(0) { max($0, abs($1)) }
        }

        /// A 64-bit FNV-1a hash of each node's whole path (parents have smaller indices).
        static func pathHashes(_ stacks: FoldedStacks) -> [UInt64] {
            var hashes = [UInt64](repeating: 0xcbf2_9ce4_8422_2325, count: stacks.nodeParent.count)
            for i in 1 ..< max(stacks.nodeParent.count, 1) {
                var h = hashes[Int(stacks.nodeParent[i])] ^ 0x3b
                h = h &* 0x100_0000_01b3
                stacks.names.withName(stacks.nodeName[i]) { bytes in
                    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
                }
                hashes[i] = h
            }
            return hashes
        }

        /// Red for growth, blue for shrinkage, white for no change.
        func color(_ node: Int) -> (UInt8, UInt8, UInt8) {
            guard maxAbs > 0 else { return (235, 235, 235) }
            let d = selfDelta[node]
            let fade = UInt8(max(0, min(255, (1 - abs(d) / maxAbs) * 225 + 30)))
            if d > 0 { return (255, fade, fade) }
            if d < 0 { return (fade, fade, 255) }
            return (235, 235, 235)
        }
    }

    // MARK: Pieces

    private static func renderEmpty(options: FlameGraphOptions, into out: inout [UInt8]) {
        var geometry = Layout(stacks: FoldedStacks(), options: options)
        geometry.finish(maxDepth: 1, hasNote: false)
        header(geometry, options: options, onload: false, into: &out)
        out.appendLiteral("<!-- sprof flame graph: no samples -->\n")
        titles(geometry, options: options, into: &out)
        out.appendLiteral("<text id=\"empty\" x=\"")
        out.appendFixed2(Double(options.width) / 2)
        out.appendLiteral("\" y=\"")
        out.appendFixed2(geometry.top + Double(options.frameHeight))
        out.appendLiteral("\">No samples</text>\n</svg>\n")
    }

    private static func header(_ g: Layout, options: FlameGraphOptions, onload: Bool, into out: inout [UInt8]) {
        out.appendLiteral("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n")
        out.appendLiteral("<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"")
        out.appendDecimal(options.width)
        out.appendLiteral("\" height=\"")
        out.appendDecimal(g.height)
        out.appendLiteral("\" viewBox=\"0 0 ")
        out.appendDecimal(options.width)
        out.appendLiteral(" ")
        out.appendDecimal(g.height)
        out.appendLiteral("\"")
        if onload { out.appendLiteral(" onload=\"init(evt)\"") }
        out.appendLiteral(" font-family=\"")
        out.appendEscaped(options.fontType)
        out.appendLiteral("\" font-size=\"")
        out.appendFixed2(options.fontSize)
        out.appendLiteral("\">\n")
        out.appendLiteral("""
        <defs><linearGradient id="background" x1="0" y1="0" x2="0" y2="1">\
        <stop offset="5%" stop-color="#eeeeee"/><stop offset="95%" stop-color="#eeeeb0"/>\
        </linearGradient></defs>

        """)
        out.appendLiteral(FlameGraphAssets.style)
        out.appendLiteral("<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"url(#background)\"/>\n")
    }

    private static func titles(_ g: Layout, options: FlameGraphOptions, into out: inout [UInt8]) {
        out.appendLiteral("<text id=\"title\" x=\"")
        out.appendFixed2(Double(options.width) / 2)
        out.appendLiteral("\" y=\"")
        out.appendFixed2(g.titleY)
        out.appendLiteral("\" font-size=\"")
        out.appendFixed2(options.fontSize + 5)
        out.appendLiteral("\">")
        out.appendEscaped(options.effectiveTitle)
        out.appendLiteral("</text>\n")
        if let subtitle = options.subtitle {
            out.appendLiteral("<text id=\"subtitle\" x=\"")
            out.appendFixed2(Double(options.width) / 2)
            out.appendLiteral("\" y=\"")
            out.appendFixed2(g.subtitleY)
            out.appendLiteral("\">")
            out.appendEscaped(subtitle)
            out.appendLiteral("</text>\n")
        }
    }

    /// Title, subtitle and the controls around the frames.
    private static func chrome(_ g: Layout, options: FlameGraphOptions, into out: inout [UInt8]) {
        titles(g, options: options, into: &out)
        let right = Double(options.width) - xpad
        out.appendLiteral("<text id=\"unzoom\" class=\"button hide\" x=\"")
        out.appendFixed2(xpad)
        out.appendLiteral("\" y=\"")
        out.appendFixed2(g.titleY)
        out.appendLiteral("\">Reset Zoom</text>\n<text id=\"search\" class=\"button\" x=\"")
        out.appendFixed2(right)
        out.appendLiteral("\" y=\"")
        out.appendFixed2(g.titleY)
        out.appendLiteral("\">Search</text>\n<text id=\"details\" x=\"")
        out.appendFixed2(xpad)
        out.appendLiteral("\" y=\"")
        out.appendFixed2(g.detailsY)
        out.appendLiteral("\"> </text>\n<text id=\"matched\" x=\"")
        out.appendFixed2(right)
        out.appendLiteral("\" y=\"")
        out.appendFixed2(g.detailsY)
        out.appendLiteral("\"> </text>\n")
    }

    private static func appendColor(_ c: (UInt8, UInt8, UInt8), into out: inout [UInt8]) {
        let hex: StaticString = "0123456789abcdef"
        hex.withUTF8Buffer { h in
            out.append(UInt8(ascii: "#"))
            for v in [c.0, c.1, c.2] {
                out.append(h[Int(v >> 4)])
                out.append(h[Int(v & 15)])
            }
        }
    }

    /// The visible label: the whole name if it fits, else its start and "..", else nothing.
    /// Counts Unicode scalars (not bytes) so multi-byte names are never cut inside a character.
    static func appendLabel(_ name: UnsafeBufferPointer<UInt8>, width: Double, charWidth: Double,
                            into out: inout [UInt8]) {
        let room = ((width - 3) / charWidth).rounded(.down)
        guard room >= 3 else { return }
        let fit = room >= Double(Int.max / 2) ? Int.max / 2 : Int(room)
        if name.count <= fit {  // bytes >= scalars, so it certainly fits
            out.appendEscaped(name)
            return
        }
        var scalars = 0
        var cut = -1
        for (i, b) in name.enumerated() where b & 0xC0 != 0x80 {
            if scalars == fit - 2 && cut < 0 { cut = i }
            scalars += 1
            if scalars > fit { break }
        }
        if scalars <= fit {
            out.appendEscaped(name)
        } else {
            out.appendEscaped(UnsafeBufferPointer(rebasing: name[0 ..< cut]))
            out.appendLiteral("..")
        }
    }

    // MARK: Geometry

    struct Layout {
        let usableWidth: Double
        let charWidth: Double
        let titleY: Double
        let subtitleY: Double
        private let fontSize: Double
        private let frameHeight: Double
        private let inverted: Bool
        private let hasSubtitle: Bool
        private(set) var top = 0.0
        private(set) var maxDepth = 0
        private(set) var detailsY = 0.0
        private(set) var height = 0

        init(stacks: FoldedStacks, options: FlameGraphOptions) {
            usableWidth = max(Double(options.width) - 2 * FlameGraph.xpad, 1)
            fontSize = options.fontSize
            charWidth = max(options.fontSize * FlameGraph.charWidthRatio, 0.01)
            frameHeight = Double(max(options.frameHeight, 1))
            inverted = options.inverted
            hasSubtitle = options.subtitle != nil
            titleY = fontSize * 2
            subtitleY = titleY + fontSize * 1.5
        }

        private(set) var provenanceY = 0.0
        var provenanceLineHeight: Double { max(fontSize - 3, 1) * 1.3 }

        mutating func finish(maxDepth: Int, hasNote: Bool, detailLines: Int = 0) {
            self.maxDepth = maxDepth
            top = (hasSubtitle || hasNote ? subtitleY : titleY) + fontSize
            detailsY = top + Double(maxDepth + 1) * frameHeight + fontSize * 1.5 + 2
            provenanceY = detailsY + fontSize * 1.5
            height = Int((detailsY + fontSize * 0.5 + 8 + Double(detailLines) * provenanceLineHeight + (detailLines > 0 ? fontSize : 0)).rounded(.up))
        }

        func y(depth: Int) -> Double {
            inverted ? top + Double(depth) * frameHeight : top + Double(maxDepth - depth) * frameHeight
        }
    }

    // MARK: Frame tree

    /// The folded prefix tree with cumulative counts and children in name order, as flame graphs draw
    /// them (alphabetical left to right, so layout does not depend on the order samples arrived in).
    struct Tree {
        let totals: [UInt64]
        private let subtreeSizes: [Int]
        private let childStart: [Int]
        private let children: [Int32]

        init(_ stacks: FoldedStacks) {
            let n = stacks.nodeParent.count
            var totals = stacks.nodeSelf
            var sizes = [Int](repeating: 1, count: n)
            var childCount = [Int](repeating: 0, count: n + 1)
            // Children always have larger indices than their parents: one backward pass sums subtrees.
            for i in stride(from: n - 1, to: 0, by: -1) {
                let p = Int(stacks.nodeParent[i])
                let (s, o) = totals[p].addingReportingOverflow(totals[i])
                totals[p] = o ? .max : s
                sizes[p] += sizes[i]
                childCount[p + 1] += 1
            }
            for i in 0 ..< n { childCount[i + 1] += childCount[i] }
            var fill = childCount
            var children = [Int32](repeating: 0, count: max(n - 1, 0))
            for i in 1 ..< max(n, 1) {
                let p = Int(stacks.nodeParent[i])
                children[fill[p]] = Int32(i)
                fill[p] += 1
            }
            stacks.names.bytes.withUnsafeBufferPointer { bytes in
                children.withUnsafeMutableBufferPointer { kids in
                    for p in 0 ..< n where childCount[p + 1] - childCount[p] > 1 {
                        var slice = UnsafeMutableBufferPointer(rebasing: kids[childCount[p] ..< childCount[p + 1]])
                        slice.sort { a, b in
                            Tree.less(bytes, stacks.names.range(stacks.nodeName[Int(a)]),
                                      stacks.names.range(stacks.nodeName[Int(b)]))
                        }
                    }
                }
            }
            self.totals = totals
            self.subtreeSizes = sizes
            self.childStart = childCount
            self.children = children
        }

        static func less(_ bytes: UnsafeBufferPointer<UInt8>, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
            let n = min(a.count, b.count)
            var i = 0
            while i < n {
                let x = bytes[a.lowerBound + i], y = bytes[b.lowerBound + i]
                if x != y { return x < y }
                i += 1
            }
            return a.count < b.count
        }

        struct Frame {
            var node: Int32
            var depth: Int32
            /// Samples to the left of the frame within the whole graph.
            var start: UInt64
        }

        /// Frames at least `minWidth` pixels wide, parents before children. Narrower frames are dropped
        /// with their whole subtree (all narrower still), and counted.
        func visibleFrames(scale: Double, minWidth: Double) -> (frames: [Frame], omitted: Int, maxDepth: Int) {
            var frames: [Frame] = []
            var omitted = 0
            var maxDepth = 0
            var pending = [Frame(node: 0, depth: 0, start: 0)]
            var accepted: [Frame] = []
            while let f = pending.popLast() {
                frames.append(f)
                if Int(f.depth) > maxDepth { maxDepth = Int(f.depth) }
                let p = Int(f.node)
                var start = f.start
                accepted.removeAll(keepingCapacity: true)
                for k in childStart[p] ..< childStart[p + 1] {
                    let c = children[k]
                    let count = totals[Int(c)]
                    if Double(count) * scale < minWidth {
                        omitted += subtreeSizes[Int(c)]
                    } else {
                        accepted.append(Frame(node: c, depth: f.depth + 1, start: start))
                    }
                    start &+= count
                }
                pending.append(contentsOf: accepted.reversed())
            }
            return (frames, omitted, maxDepth)
        }
    }
}
