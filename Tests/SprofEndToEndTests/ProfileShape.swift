import Foundation
import XCTest
import SprofOutput
import SprofTestSupport

/// A folded profile read back from disk, with the questions the end-to-end tests ask of it.
struct ProfileShape {
    let stacks: [(frames: [String], count: UInt64)]
    let total: UInt64

    init(foldedFile path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let folded = try FoldedStacks.parse(text, source: path)
        stacks = folded.stacks()
        total = folded.total
    }

    /// Samples whose stack has a frame whose name contains `name`.
    func samples(containing name: String) -> UInt64 {
        stacks.filter { $0.frames.contains { $0.contains(name) } }.reduce(0) { $0 + $1.count }
    }

    /// Samples whose stack holds frames containing `chain`'s names in that order, adjacent
    /// (ignoring `_[i]` inline frames between them).
    func samples(withChain chain: [String]) -> UInt64 {
        stacks.filter { stack in
            let frames = stack.frames.filter { !$0.hasSuffix("_[i]") }
            guard frames.count >= chain.count else { return false }
            for start in 0...(frames.count - chain.count)
            where zip(frames[start...], chain).allSatisfy({ $0.contains($1) }) {
                return true
            }
            return false
        }.reduce(0) { $0 + $1.count }
    }

    /// Percentages of `names` among the samples that contain any of them.
    func split(_ names: [String]) -> [Double] {
        let counts = names.map { Double(samples(containing: $0)) }
        let sum = counts.reduce(0, +)
        return counts.map { sum > 0 ? 100 * $0 / sum : 0 }
    }
}

/// Runs the built `sprof` CLI.
enum SprofCLI {
    static func run(_ args: [String], timeout: TimeInterval = 120, input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try TestFixtures.run(try TestFixtures.sprofPath(), args, timeout: timeout, input: input)
    }

    /// `sprof run -o PREFIX OPTIONS -- COMMAND` without reading the live stack past the kernel's
    /// copy (`SPROF_LIVE_STACK=0`): what the copy alone gives. Returns the folded stacks and stderr.
    static func runCopyOnly(_ prefix: String, _ options: [String], _ command: [String]) throws -> (shape: ProfileShape, stderr: String) {
        let r = try TestFixtures.run(try TestFixtures.sprofPath(), ["run", "-o", prefix] + options + ["--"] + command,
                                     environment: TestFixtures.environment(adding: ["SPROF_LIVE_STACK": "0"]))
        XCTAssertEqual(r.status, 0, r.stderr)
        return (try ProfileShape(foldedFile: prefix + ".folded"), r.stderr)
    }

    /// A fresh output prefix in a private temporary directory.
    static func outputPrefix(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-e2e-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// Skips (saying why) only when this machine cannot run perf-event tests at all: no perf events
    /// in the kernel, or perf_event_open refused (EACCES/EPERM) to a user other than root. The probe
    /// samples cpu-clock, a software event every kernel has, so any other failure (EINVAL or E2BIG
    /// from attributes sprof got wrong, any failure as root) is sprof's bug and fails the test.
    static func requirePerfEvents() throws {
        if let reason = perfEventAvailable() { throw XCTSkip("perf events unavailable: \(reason)") }
        let probe = try run(["run", "-q", "-o", outputPrefix("probe"), "--", "/bin/true"])
        guard probe.status != 0 else { return }
        if let reason = PerfSkipPolicy.skipReason(cliError: probe.stderr, hardwareEvent: false) { throw XCTSkip(reason) }
        throw FixtureError("`sprof run -- /bin/true` failed (status \(probe.status)) on cpu-clock, which every kernel has: "
            + probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// A C fixture from Tests/Fixtures/c built with frame pointers (clang, as the fixtures README says).
    /// A missing compiler skips; a compile failure fails.
    static func buildC(_ name: String, flags: [String] = TestFixtures.framePointerFlags) throws -> String {
        guard TestFixtures.findExecutable("clang") != nil else { throw XCTSkip("clang not installed") }
        return try TestFixtures.buildC(name, flags: flags)
    }
}

/// The summary line `sprof run` prints on stderr:
/// `N samples (M lost[, throttled Kx][, T truncated]) of EVENT at F Hz, …; wrote …`.
struct RunSummary {
    var samples: UInt64
    var lost: UInt64
    var throttles: UInt64
    var truncated: UInt64
    /// The rate in Hz, when sampling by frequency.
    var hertz: Int?
    var line: String

    init(stderr: String) throws {
        // "1 sample (…", "0 samples (…": the summary is the last line with either.
        guard let line = stderr.split(separator: "\n").last(where: { $0.contains(" samples (") || $0.contains(" sample (") }).map(String.init) else {
            throw FixtureError("no summary line in: \(stderr)")
        }
        self.line = line
        func number(before suffix: String, in text: Substring) -> UInt64? {
            guard let r = text.range(of: suffix) else { return nil }
            let digits = text[..<r.lowerBound].reversed().prefix { $0.isNumber || $0 == "," }
            return UInt64(String(digits.reversed()).replacingOccurrences(of: ",", with: ""))
        }
        let body = line.drop { $0 != " " }  // after "sprof:"
        guard let samples = number(before: " samples (", in: body) ?? number(before: " sample (", in: body),
              let lost = number(before: " lost", in: body) else {
            throw FixtureError("cannot read the summary line: \(line)")
        }
        self.samples = samples
        self.lost = lost
        throttles = line.range(of: "throttled ").map { r in
            UInt64(String(line[r.upperBound...].prefix { $0.isNumber })) ?? 0
        } ?? 0
        truncated = number(before: " truncated", in: body) ?? 0
        hertz = number(before: " Hz", in: body).map { Int($0) }
    }
}
