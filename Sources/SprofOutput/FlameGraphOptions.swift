import SprofProfile

/// Colour families for user frames. Kernel (`_[k]`), JIT (`_[j]`) and inlined (`_[i]`) frames always get
/// their own families whatever the palette, so that mixed stacks stay readable, and unsymbolised frames
/// (`[unknown]`, `[module+0x…]`) are grey.
public enum FlameGraphPalette: String, CaseIterable, Sendable {
    /// Reds, oranges and yellows: the classic CPU flame graph.
    case hot
    /// Greens, conventionally for memory (allocation) profiles.
    case mem
    /// Blues and violets, conventionally for I/O and off-CPU profiles.
    case io
    /// Blues.
    case blue
    /// Greens.
    case green
    /// Cyans.
    case aqua
    /// Reds.
    case red
    /// Yellows.
    case yellow
    /// Purples.
    case purple
    /// Oranges.
    case orange

    /// The palette names, comma-separated, for help texts and error messages.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// How ``FlameGraph`` lays out and labels the SVG.
public struct FlameGraphOptions: Sendable {
    /// Main title; `nil` means "Flame Graph", or "Icicle Graph" when ``inverted``.
    public var title: String?
    /// Optional second line under the title, e.g. command, event, sample and lost counts, date.
    public var subtitle: String?
    /// Image width in pixels.
    public var width: Int = 1200
    /// Height of one stack level in pixels.
    public var frameHeight: Int = 16
    /// Font size of frame labels, in pixels; titles scale from it.
    public var fontSize: Double = 12
    /// CSS font family.
    public var fontType: String = "Verdana"
    /// Frames narrower than this many pixels are left out (with their descendants) and counted in a note.
    public var minWidth: Double = 0.1
    /// What a count is called in tooltips ("samples", "bytes", ...).
    public var countName: String = "samples"
    /// Colour family for user frames.
    public var palette: FlameGraphPalette = .hot
    /// Icicle graph: root at the top, stacks growing downwards.
    public var inverted: Bool = false
    /// Lines of provenance (event, rate, losses, machine…) drawn in small type below the graph and
    /// kept in the SVG's `<desc>`, so a saved flame graph says what it measured.
    public var details: [String] = []
    /// A differential flame graph: the base profile's stacks, already scaled by the caller (e.g. to
    /// the same total). Widths stay those of the profile drawn; each frame is red when its self count
    /// grew against the base, blue when it shrank, saturated by |delta| / max |delta| (FlameGraph's
    /// difffolded.pl and inferno's meaning).
    public var differentialBase: FoldedStacks?
    /// Factor applied to the base's counts before comparing (e.g. new total / base total, so that
    /// profiles of different lengths compare; 1 compares raw counts).
    public var differentialScale: Double = 1

    /// Options with every field at its default unless given.
    public init(title: String? = nil, subtitle: String? = nil, width: Int = 1200, frameHeight: Int = 16,
                fontSize: Double = 12, fontType: String = "Verdana", minWidth: Double = 0.1,
                countName: String = "samples", palette: FlameGraphPalette = .hot, inverted: Bool = false) {
        self.title = title
        self.subtitle = subtitle
        self.width = width
        self.frameHeight = frameHeight
        self.fontSize = fontSize
        self.fontType = fontType
        self.minWidth = minWidth
        self.countName = countName
        self.palette = palette
        self.inverted = inverted
    }

    /// The title actually drawn.
    public var effectiveTitle: String {
        title ?? (inverted ? "Icicle Graph" : "Flame Graph")
    }
}

/// Frame colours: a pure function of the name bytes (FNV-1a), so one folded input always gives the
/// same picture and the same bytes, and a function keeps its colour across profiles.
enum FrameColor {
    struct Family {
        var base: (Int, Int, Int)
        /// How much each of three hash-derived values (0...255) adds to r, g, b: rows are r, g, b;
        /// columns the weight of value a, b, c out of 255.
        var spread: ((Int, Int, Int), (Int, Int, Int), (Int, Int, Int))
    }

    static func family(_ palette: FlameGraphPalette) -> Family {
        switch palette {
        case .hot: return Family(base: (205, 40, 0), spread: ((50, 0, 0), (0, 180, 0), (0, 0, 50)))
        case .mem: return Family(base: (20, 160, 60), spread: ((50, 0, 0), (0, 80, 0), (0, 0, 60)))
        case .io: return Family(base: (70, 90, 190), spread: ((60, 0, 0), (0, 60, 0), (0, 0, 60)))
        case .blue: return Family(base: (80, 80, 205), spread: ((60, 0, 0), (60, 0, 0), (0, 50, 0)))
        case .green: return Family(base: (50, 184, 50), spread: ((60, 0, 0), (71, 0, 0), (0, 60, 0)))
        case .aqua: return Family(base: (50, 165, 165), spread: ((60, 0, 0), (55, 0, 0), (55, 0, 0)))
        case .red: return Family(base: (200, 50, 50), spread: ((55, 0, 0), (80, 0, 0), (80, 0, 0)))
        case .yellow: return Family(base: (175, 175, 50), spread: ((55, 0, 0), (55, 0, 0), (0, 20, 0)))
        case .purple: return Family(base: (190, 80, 190), spread: ((65, 0, 0), (60, 0, 0), (65, 0, 0)))
        case .orange: return Family(base: (190, 90, 0), spread: ((65, 0, 0), (65, 0, 0), (0, 0, 0)))
        }
    }

    // Kind families: slate blue for the kernel, green for JIT, cyan for inlined frames.
    static let kernel = Family(base: (110, 130, 180), spread: ((40, 0, 0), (40, 0, 0), (0, 50, 0)))
    static let jit = Family(base: (40, 170, 40), spread: ((50, 0, 0), (0, 60, 0), (0, 0, 40)))
    static let inlined = Family(base: (60, 185, 185), spread: ((50, 0, 0), (0, 45, 0), (0, 45, 0)))
    static let unsymbolized = Family(base: (165, 165, 165), spread: ((45, 0, 0), (45, 0, 0), (45, 0, 0)))

    /// The colour of a frame as `(r, g, b)`.
    static func rgb(name: UnsafeBufferPointer<UInt8>, palette: FlameGraphPalette) -> (UInt8, UInt8, UInt8) {
        let fam: Family
        switch FrameKind.detect(name) {
        case .kernel: fam = kernel
        case .jit: fam = jit
        case .inlined: fam = inlined
        case .user, .marker:
            if name.first == UInt8(ascii: "["), name.last == UInt8(ascii: "]") {
                fam = unsymbolized
            } else {
                fam = family(palette)
            }
        }
        let h = fnv1a(name)
        let a = Int(h & 0xFF), b = Int((h >> 8) & 0xFF), c = Int((h >> 16) & 0xFF)
        func channel(_ base: Int, _ w: (Int, Int, Int)) -> UInt8 {
            UInt8(clamping: base + (w.0 * a + w.1 * b + w.2 * c) / 255)
        }
        return (channel(fam.base.0, fam.spread.0), channel(fam.base.1, fam.spread.1),
                channel(fam.base.2, fam.spread.2))
    }
}
