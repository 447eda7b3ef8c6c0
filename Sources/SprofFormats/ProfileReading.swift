import SprofOutput
import SprofProfile

/// The one reader of profile files: every subcommand (`report`, `flamegraph`, `convert`, `diff`,
/// `annotate`) and the web UI read profiles through it, so the same bad input gets the same
/// one-line message everywhere.
///
/// The format is told by content, not by name (see ``ProfileReader/sniff(_:)``): gzip's magic
/// bytes or a NUL byte mean pprof, text means folded stacks.
public enum ProfileReader {
    /// What input bytes look like.
    public enum Sniffed: Sendable, Equatable {
        /// gzip (1f 8b) or a NUL byte, which folded text never has: pprof.
        case pprof
        /// Every byte of the first 4 KiB is text: folded stacks.
        case folded
        /// Another control byte (say ESC in a frame name): pprof if the bytes decode as one, else folded.
        case either
    }

    /// What the bytes are, from their first 4 KiB.
    public static func sniff(_ bytes: [UInt8]) -> Sniffed {
        if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b { return .pprof }
        let head = bytes.prefix(4096)
        if head.contains(0) { return .pprof }
        return head.contains { $0 < 0x20 && $0 != 0x0a && $0 != 0x0d && $0 != 0x09 } ? .either : .folded
    }

    /// Input decoded but not yet made a ``Profile``: pprof as a profile (negative values counted
    /// as 0, see ``ProfileRead/clampedSamples``), folded stacks as parsed, for views that draw
    /// folded input as it is (`sprof flamegraph`, which also accepts counts past int64).
    public enum Decoded {
        /// A pprof profile and how many samples had negative values.
        case pprof(Profile, clampedSamples: Int)
        /// Folded stacks.
        case folded(FoldedStacks)
    }

    /// Sniffs and decodes `bytes`.
    /// - Parameter source: names the input in messages (a path, `<stdin>`).
    /// - Throws: ``ProfileReadError`` (`.noSamples` for empty input, `.unreadable` for a corrupt
    ///   pprof, a NUL byte in text or a bad folded line).
    public static func decode(_ bytes: [UInt8], source: String) throws -> Decoded {
        if bytes.isEmpty { throw ProfileReadError.noSamples(source: source) }
        switch sniff(bytes) {
        case .pprof:
            do {
                let (profile, clamped) = withoutNegativeValues(try PprofFormat.decode(bytes))
                return .pprof(profile, clampedSamples: clamped)
            } catch {
                throw ProfileReadError(kind: .unreadable, message: pprofFailure(bytes, source: source, error: error))
            }
        case .either:
            if let decoded = try? PprofFormat.decode(bytes) {
                let (profile, clamped) = withoutNegativeValues(decoded)
                return .pprof(profile, clampedSamples: clamped)
            }
        case .folded:
            break
        }
        do {
            return .folded(try FoldedStacks.parse(bytes: bytes, source: source))
        } catch let error as FoldedParseError {
            // The folded parser's own message already names the expected form when that is the problem.
            let text = error.description
            throw ProfileReadError(kind: .unreadable, message: text.contains("(expected") ? text : text + " (expected folded stacks 'a;b;c COUNT' or a pprof file)")
        }
    }

    /// Sniffs, decodes and makes a ``Profile`` of `bytes`: pprof (gzip-compressed or plain
    /// profile.proto, from sprof or any tool) or folded stacks from any tool.
    /// - Parameter source: names the input in messages (a path, `<stdin>`).
    /// - Throws: ``ProfileReadError``: `.noSamples` (empty, blank or all-zero input), `.unreadable`,
    ///   `.tooLarge` (folded counts that add up past int64, pprof's value type).
    public static func read(_ bytes: [UInt8], source: String) throws -> ProfileRead {
        switch try decode(bytes, source: source) {
        case .pprof(let profile, let clamped):
            return ProfileRead(profile: profile, isFolded: false, clampedSamples: clamped)
        case .folded(let folded):
            let stacks = folded.stacks()
            // A profile's values are pprof's int64s: counts that add up past that cannot be one
            // (clamping them would make this view disagree with `sprof flamegraph` of the same file).
            var total: UInt64 = 0
            for stack in stacks {
                let (sum, overflow) = total.addingReportingOverflow(stack.count)
                guard !overflow, sum <= UInt64(Int64.max) else {
                    throw ProfileReadError(kind: .tooLarge, message: "\(source): the counts add up to more than \(grouped(Int64.max)), the most a profile (pprof's int64 values) holds")
                }
                total = sum
            }
            // Blank lines or only zero counts: not a profile.
            if total == 0 { throw ProfileReadError.noSamples(source: source) }
            return ProfileRead(profile: Profile(folded: stacks.map { (frames: $0.frames, count: Int64($0.count)) }),
                               isFolded: true, clampedSamples: 0)
        }
    }

    /// The one line for input taken as pprof (gzip or a NUL byte) that does not decode. Text
    /// with a NUL byte in it is a damaged folded file, not a pprof one: the line names where the
    /// byte is, rather than protobuf's complaint.
    static func pprofFailure(_ bytes: [UInt8], source: String, error: Error) -> String {
        if let nul = bytes.firstIndex(of: 0), nul > 0,
           !bytes[..<nul].contains(where: { $0 < 0x20 && $0 != 0x0a && $0 != 0x0d && $0 != 0x09 }) {
            let line = bytes[..<nul].reduce(1) { $1 == 0x0a ? $0 + 1 : $0 }
            let lineStart = bytes[..<nul].lastIndex(of: 0x0a).map { $0 + 1 } ?? 0
            return "\(source):\(line): a NUL byte (0x00) at byte \(nul - lineStart + 1) of the line; folded stacks are text (remove the byte, or give a pprof file)"
        }
        // FormatError's own text already says "not a … pprof file/profile".
        return "\(source): \(error)"
    }

    /// The one rule for negative sample values, which pprof allows (`pprof -diff_base` output) but
    /// a cost view cannot show (a −100% row, a frame of negative width): every view counts them as
    /// 0, so report, flamegraph, speedscope, folded and diff agree. Returns how many samples that touched.
    static func withoutNegativeValues(_ profile: Profile) -> (Profile, Int) {
        var clamped = 0
        var result = profile
        for i in result.samples.indices where result.samples[i].values.contains(where: { $0 < 0 }) {
            clamped += 1
            result.samples[i].values = result.samples[i].values.map { max(0, $0) }
        }
        return (result, clamped)
    }
}

/// A profile read by ``ProfileReader/read(_:source:)``.
public struct ProfileRead {
    /// The profile.
    public var profile: Profile
    /// The input was folded stacks, which carry no threads (the profile's threads are then only
    /// the stacks' root frames).
    public var isFolded: Bool
    /// Samples of a pprof input with negative values, counted as 0; a view says so on stderr
    /// (``negativeValuesNotice(source:)``).
    public var clampedSamples: Int

    /// The notice for ``clampedSamples``, or nil when there were none.
    public func negativeValuesNotice(source: String) -> String? {
        ProfileReadError.negativeValuesNotice(clampedSamples, source: source)
    }
}

/// Why bytes are not a profile: one line (``description``) naming the input, the same from every
/// view that reads profiles.
public struct ProfileReadError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// Empty input, blank lines or only zero counts.
        case noSamples
        /// A corrupt or truncated pprof, a NUL byte in text, a bad folded line.
        case unreadable
        /// Folded counts that add up past int64.
        case tooLarge
    }
    /// What went wrong.
    public var kind: Kind
    /// The one line, starting with the input's name.
    public var message: String
    /// Creates an error.
    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }
    /// ``message``.
    public var description: String { message }

    /// `SOURCE: no samples (an empty profile?)`.
    public static func noSamples(source: String) -> ProfileReadError {
        ProfileReadError(kind: .noSamples, message: "\(source): no samples (an empty profile?)")
    }

    /// The notice for `count` samples whose negative values were counted as 0; nil for none.
    public static func negativeValuesNotice(_ count: Int, source: String) -> String? {
        guard count > 0 else { return nil }
        return "\(source): \(grouped(count)) sample\(count == 1 ? " has" : "s have") negative values, counted as 0 (sprof's views show costs; compare two profiles with sprof diff BASE NEW)"
    }
}
