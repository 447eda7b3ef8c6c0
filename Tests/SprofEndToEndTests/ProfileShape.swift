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
    static func run(_ args: [String], timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
        try TestFixtures.run(try TestFixtures.sprofPath(), args, timeout: timeout)
    }

    /// A fresh output prefix in a private temporary directory.
    static func outputPrefix(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-e2e-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// Skips (saying why) when the kernel refuses perf_event_open here.
    static func requirePerfEvents() throws {
        if let reason = perfEventAvailable() { throw XCTSkip("perf events unavailable: \(reason)") }
        let probe = try run(["run", "-q", "-o", outputPrefix("probe"), "--", "/bin/true"])
        if probe.status != 0, probe.stderr.contains("perf_event_open") {
            throw XCTSkip("the kernel refuses perf_event_open: \(probe.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
