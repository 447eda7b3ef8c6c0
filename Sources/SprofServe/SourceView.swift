import SprofAnnotate
import SprofProfile

extension ProfileViews {
    /// One line of the source view.
    public struct SourceLine: Encodable, Sendable {
        /// Line number; 0 for samples without line information.
        public var line: Int
        /// Value of samples whose innermost frame is this line of the function.
        public var selfValue: Int64
        /// Value of samples with this line of the function on the stack, once per sample.
        public var total: Int64
        /// The text; nil when the file could not be read.
        public var text: String?
        enum CodingKeys: String, CodingKey { case line, selfValue = "self", total, text }
    }

    /// One file of the source view.
    public struct SourceFile: Encodable, Sendable {
        /// The path the debug info records ("" when unknown).
        public var path: String
        /// Whether its text was found (on disk, or from a debuginfod server when `DEBUGINFOD_URLS` is set).
        public var found: Bool
        /// Its lines.
        public var lines: [SourceLine]
    }

    /// A function's source with per-line self and total (`sprof annotate`'s listing as JSON).
    public struct Source: Encodable, Sendable {
        public var name: String
        public var selfValue: Int64
        public var total: Int64
        public var grandTotal: Int64
        public var unit: String
        /// Why no lines are shown: a file of the function's code changed since recording.
        public var changed: String?
        /// Problems met (a source not found, debuginfod unreachable).
        public var notices: [String]
        public var files: [SourceFile]
        enum CodingKeys: String, CodingKey {
            case name, selfValue = "self", total, grandTotal = "grand_total", unit, changed, notices, files
        }
    }

    /// The source of `function` (its display name) in `profile`, through SprofAnnotate: sources from
    /// the recorded paths, else from debuginfod.
    /// - Throws: ``ServeError`` 404 when no sample has the function on its stack.
    public static func source(_ profile: Profile, function: String) throws -> Source {
        // A flame graph's frame (`f_[i]`) asks for its function.
        let function = FrameKind.functionName(function)
        guard let listing = Annotator.listing(profile, function: function) else {
            throw ServeError(404, "no sample has \(String(function.prefix(200)).debugDescription) on its stack: no source to show")
        }
        return Source(
            name: listing.function.name, selfValue: listing.function.selfValue, total: listing.function.totalValue,
            grandTotal: listing.grandTotal, unit: profile.sampleTypes[0].type, changed: listing.changed, notices: listing.notices,
            files: listing.files.map { f in
                SourceFile(path: f.path, found: f.found, lines: f.rows.map {
                    SourceLine(line: $0.line, selfValue: $0.selfValue, total: $0.totalValue, text: $0.text)
                })
            })
    }
}
