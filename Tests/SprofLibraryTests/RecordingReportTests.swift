import XCTest
import Sprof

/// What a recording says and writes is library code (issue 18): the summary line, the loss
/// advice and the output plan, reachable without the CLI.
final class RecordingReportTests: XCTestCase {
    private func profile(samples: Int, lostRecords: UInt64) -> Profile {
        var p = Profile(folded: [(frames: ["app", "main"], count: Int64(samples))])
        p.metadata.event = "cpu-clock"
        p.metadata.rate = .frequency(999)
        p.metadata.statistics.samples = samples
        p.metadata.statistics.lostRecords = lostRecords
        p.metadata.statistics.processes = 1
        p.metadata.statistics.threads = 3
        return p
    }

    func testSummaryLine() {
        let line = RecordingReport.summaryLine(profile(samples: 2431, lostRecords: 0), exitStatus: .exited(0), written: ["a.folded", "a.svg"])
        XCTAssertEqual(line, "2,431 samples (0 lost) of cpu-clock at 999 Hz, 1 process, 3 threads; wrote a.folded, a.svg")
        let lossy = RecordingReport.summaryLine(profile(samples: 1, lostRecords: 1200), exitStatus: .signaled(9), written: [])
        XCTAssertTrue(lossy.hasPrefix("1 sample (1,200 lost) of cpu-clock at 999 Hz, at least 1 process"), lossy)
        XCTAssertTrue(lossy.contains(", command "), "a command killed by a signal says so: \(lossy)")
    }

    func testLossAdviceFromFivePercent() {
        var s = ProfileStatistics()
        s.samples = 96
        s.lostRecords = 4
        XCTAssertNil(RecordingReport.lossAdvice(s, callGraph: .framePointer, ringPages: nil), "4% lost is noise")
        s.lostRecords = 6
        XCTAssertEqual(RecordingReport.lossAdvice(s, callGraph: .framePointer, ringPages: 64),
                       "5% of the samples were lost: the 64-page ring buffers filled faster than sprof read them; raise -m (e.g. -m 256) or lower -F")
        let tooSmall = RecordingReport.lossAdvice(s, callGraph: .dwarf(stackSize: 65528), ringPages: 8)
        XCTAssertTrue(tooSmall?.contains("more than the 8-page ring buffer holds; raise -m (e.g. -m 64)") == true, tooSmall ?? "nil")
    }

    /// The heap probes write into the CPU event's buffers, and their lost records are not lost
    /// samples: the summary splits them out, and the CPU advice neither counts them nor advises
    /// a smaller buffer than the one that overflowed.
    func testHeapProbeLossesAreNotCountedAsLostSamples() {
        var p = profile(samples: 207, lostRecords: 0)
        p.metadata.statistics.lostSamples = 14_705
        p.metadata.statistics.lostHeap = 14_700
        let line = RecordingReport.summaryLine(p, exitStatus: .exited(0), written: [])
        XCTAssertTrue(line.hasPrefix("207 samples (14,705 lost: 5 of cpu-clock, 14,700 heap probe records) of cpu-clock"), line)
        XCTAssertNil(RecordingReport.lossAdvice(p.metadata.statistics, callGraph: .framePointer, ringPages: 8192),
                     "5 of 212 CPU samples lost is noise; the heap's 14,700 must not make it 98%")
        p.metadata.statistics.lostHeap = 14_000
        let advice = RecordingReport.lossAdvice(p.metadata.statistics, callGraph: .framePointer, ringPages: 32768) ?? "nil"
        XCTAssertTrue(advice.hasPrefix("77% of the samples were lost: the 32768-page ring buffers"), advice)
        XCTAssertTrue(advice.contains("raise -m (e.g. -m 65536)"), advice)
        // The provenance keeps the split.
        p.metadata.sprofVersion = "test"
        let lines = p.metadata.provenanceLines
        XCTAssertTrue(lines.contains("lost heap probe records: 14000"), "\(lines)")
        XCTAssertEqual(ProfileMetadata(provenanceLines: lines).statistics.lostHeap, 14_000)
    }

    func testOutputPlan() throws {
        XCTAssertEqual(OutputPlan(prefix: "/nonexistent/p").paths,
                       ["/nonexistent/p.folded", "/nonexistent/p.svg", "/nonexistent/p.pb.gz", "/nonexistent/p.memory.tsv"])
        XCTAssertEqual(OutputPlan(prefix: "x", offCPU: true, heap: true).suffixes,
                       [".folded", ".svg", ".pb.gz", ".wall.svg", ".offcpu.svg", ".memory.tsv", ".alloc.svg", ".inuse.svg", ".heap.pb.gz", ".heap.tsv"])
        let dir = NSTemporaryDirectory() + "sprof-plan-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertEqual(OutputPlan(prefix: dir).prefix, dir + "/sprof", "a directory means the default names inside it")
        XCTAssertEqual(OutputPlan(prefix: dir + "/").prefix, dir + "/sprof")
        // A trailing slash says a directory even before it exists: the refusal then names
        // DIR/sprof.folded, not a hidden DIR/.folded.
        XCTAssertEqual(OutputPlan(prefix: dir + "/none/").prefix, dir + "/none/sprof")
    }
}
