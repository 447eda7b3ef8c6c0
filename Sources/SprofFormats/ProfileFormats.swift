import SprofOutput
import SprofProfile

/// The registry of the formats a ``Profile`` is written in: each format's name (`convert --to`),
/// file suffix (`run`'s `PREFIX.SUFFIX`), MIME type (the web UI's downloads) and encoder. A new
/// output format is one entry here.
public struct ProfileFormat: Sendable {
    /// How a view is encoded: which values, how stacks are rooted, how named.
    public struct Options: Sendable {
        /// The ``Profile/sampleTypes`` entry that folded, SVG and speedscope carry (pprof carries all).
        public var valueIndex: Int
        /// Root stacks at `process;thread-TID` (folded, SVG).
        public var perThread: Bool
        /// Full demangled names instead of the short ones (folded, SVG).
        public var fullNames: Bool
        /// How folded and SVG name functions: ``NameStyle/full`` with ``fullNames``, else ``NameStyle/short``.
        public var nameStyle: NameStyle { fullNames ? .full : .short }
        /// The profile's name inside the file (speedscope).
        public var name: String
        /// Title, subtitle, palette… of the SVG.
        public var graph: FlameGraphOptions

        /// Options for `profile`'s default sample type (``Profile/defaultSampleType``).
        public init(_ profile: Profile, valueIndex: Int? = nil, perThread: Bool = false, fullNames: Bool = false,
                    name: String = "sprof", graph: FlameGraphOptions = FlameGraphOptions()) {
            self.valueIndex = valueIndex ?? profile.defaultSampleType
            self.perThread = perThread
            self.fullNames = fullNames
            self.name = name
            self.graph = graph
        }
    }

    /// The name `sprof convert --to` takes.
    public var name: String
    /// The file name suffix, with its dot (`.pb.gz`).
    public var suffix: String
    /// The MIME type a download is served with.
    public var mimeType: String
    /// Writes `profile`. Throws ``FormatError`` when the profile's indices do not hold together (pprof).
    public var encode: @Sendable (_ profile: Profile, _ options: Options) throws -> [UInt8]

    /// Creates a format entry.
    public init(name: String, suffix: String, mimeType: String,
                encode: @escaping @Sendable (_ profile: Profile, _ options: Options) throws -> [UInt8]) {
        self.name = name
        self.suffix = suffix
        self.mimeType = mimeType
        self.encode = encode
    }

    /// Folded stacks (`a;b;c COUNT`) of one sample type.
    public static let folded = ProfileFormat(name: "folded", suffix: ".folded", mimeType: "text/plain; charset=utf-8") { profile, o in
        profile.folded(valueIndex: o.valueIndex, perThread: o.perThread, names: profile.functionNames(o.nameStyle)).serializedBytes()
    }

    /// gzip-compressed pprof (profile.proto), every sample type.
    public static let pprof = ProfileFormat(name: "pprof", suffix: ".pb.gz", mimeType: "application/gzip") { profile, _ in
        try PprofFormat.encode(profile)
    }

    /// speedscope's JSON file format, one sample type.
    public static let speedscope = ProfileFormat(name: "speedscope", suffix: ".speedscope.json", mimeType: "application/json") { profile, o in
        SpeedscopeFormat.encode(profile, valueIndex: o.valueIndex, name: o.name)
    }

    /// The interactive SVG flame graph of one sample type.
    public static let svg = ProfileFormat(name: "svg", suffix: ".svg", mimeType: "image/svg+xml") { profile, o in
        FlameGraph.renderBytes(profile.folded(valueIndex: o.valueIndex, perThread: o.perThread, names: profile.functionNames(o.nameStyle)), options: o.graph)
    }

    /// Every format, in the order `run` writes them.
    public static let all: [ProfileFormat] = [folded, svg, pprof, speedscope]

    /// The formats `sprof convert --to` writes.
    public static let convertible: [ProfileFormat] = [folded, pprof, speedscope]

    /// The format named `name`, among `formats`.
    public static func named(_ name: String, in formats: [ProfileFormat] = all) -> ProfileFormat? {
        formats.first { $0.name == name }
    }

    /// The format of a file name, by its suffix (the longest that matches: `.speedscope.json`
    /// before a plain `.json`).
    public static func of(fileName: String) -> ProfileFormat? {
        all.filter { fileName.hasSuffix($0.suffix) }.max { $0.suffix.count < $1.suffix.count }
    }

    /// The MIME type to serve a file of a run with: its format's, else by extension (`.json`
    /// JSON, `.gz` gzip), else UTF-8 text (`output.log`, `.tsv`).
    public static func mimeType(ofFileName name: String) -> String {
        if let format = of(fileName: name) { return format.mimeType }
        if name.hasSuffix(".json") { return "application/json" }
        if name.hasSuffix(".gz") { return "application/gzip" }
        return "text/plain; charset=utf-8"
    }
}
