import XCTest
import Sprof

/// What `sprof run --heap` says at the end (a new user's reading of it): the leak line, the heap
/// losses' advice, the summary's heap figures.
final class HeapMessagesTests: XCTestCase {
    /// A heap profile of `stacks` (root first, values in Go's order) at `rate`.
    private func heapProfile(rate: Int64, _ stacks: [([String], [Int64])]) -> Profile {
        var b = ProfileBuilding(sampleTypes: HeapOptions.sampleTypes, defaultSampleType: 1,
                                periodType: Profile.ValueType(type: "space", unit: "bytes"), period: rate)
        let thread = b.thread(Profile.Thread(pid: 1, tid: 1, name: "app", processName: "app"))
        for (frames, values) in stacks {
            let leafFirst = frames.reversed().map { b.location(Profile.Location(lines: [Profile.Line(function: b.function(named: $0))], kind: .user)) }
            b.add(stack: b.stack(leafFirst), thread: thread, values: values)
        }
        var m = ProfileMetadata()
        m.event = "heap"
        m.rate = .period(UInt64(rate))
        return b.build(metadata: m)
    }

    private let churn = (["main", "churn", "malloc"], [Int64(1000), 64_000, 0, 0])
    private let leak = (["main", "leak_site", "malloc"], [Int64(1), 10_000, 1, 10_000])

    /// Nothing in use at exit is said ("none"), so that it reads apart from a report not made;
    /// sampled, it says small leaked blocks may be missed.
    func testNoLeaksIsSaid() {
        let exact = RecordingReport.leakReport(heapProfile(rate: 1, [churn]), lostRecords: 0, advice: "ADVICE")
        XCTAssertEqual(exact, "still allocated at exit (leaks): none")
        let sampled = RecordingReport.leakReport(heapProfile(rate: 524_288, [churn]), lostRecords: 0, advice: "ADVICE")
        XCTAssertTrue(sampled.hasPrefix("still allocated at exit (leaks): none (estimated from samples at 1 per 524,288 bytes: smaller leaked blocks may be missed"), sampled)
        let found = RecordingReport.leakReport(heapProfile(rate: 1, [churn, leak]), lostRecords: 0, advice: "ADVICE")
        XCTAssertEqual(found, "still allocated at exit (leaks): 9.8 KiB in 1 stack\n  9.8 KiB  app;main;leak_site;malloc")
    }

    /// With heap probe records lost the leak report (found or none) says it is incomplete, why
    /// both ways, and what to change; the advice is the heap losses' own.
    func testLostRecordsMakeTheLeakReportIncomplete() {
        let advice = RecordingReport.heapLossAdvice(rate: 1, callGraph: .dwarf(stackSize: 8192), attached: false)
        for stacks in [[churn], [churn, leak]] {
            let report = RecordingReport.leakReport(heapProfile(rate: 1, stacks), lostRecords: 881_600, advice: advice)
            let lines = report.split(separator: "\n")
            XCTAssertTrue(lines.count >= 2 && lines[1].hasPrefix("  incomplete: 881,600 heap probe records were lost"), report)
            XCTAssertTrue(report.contains("a lost allocation drops a leaked block"), report)
            XCTAssertTrue(report.contains("a lost free adds a block that was freed"), report)
            XCTAssertTrue(report.contains("raise --heap-rate"), report)
            XCTAssertTrue(report.contains("-g"), report)
            XCTAssertTrue(report.contains("raise -m"), report)
        }
    }

    /// What a shared library's initializer allocated before main and held to the end (libstdc++'s
    /// emergency exception pool, 71 KiB) is not a leak of the program: named apart, not counted.
    func testLibraryInitializersAreNotCountedAsLeaks() {
        let pool = (["_dl_start_user", "_dl_init", "call_init", "[libstdc++.so.6.0.30+0xa5780]", "malloc"], [Int64(1), 72_704, 1, 72_704])
        let none = RecordingReport.leakReport(heapProfile(rate: 1, [churn, pool]), lostRecords: 0, advice: "")
        XCTAssertTrue(none.hasPrefix("still allocated at exit (leaks): none\n  not counted: 71 KiB in 1 stack allocated by shared libraries' initializers (_dl_init)"), none)
        XCTAssertFalse(none.contains("  71 KiB  "), "not among the leak stacks: \(none)")
        let some = RecordingReport.leakReport(heapProfile(rate: 1, [pool, leak]), lostRecords: 0, advice: "")
        XCTAssertTrue(some.hasPrefix("still allocated at exit (leaks): 9.8 KiB in 1 stack\n"), some)
    }

    /// The heap profile of `-r 3` sums what each run left: the line says so.
    func testLeaksOfRepeatedRunsSaySummed() {
        let report = RecordingReport.leakReport(heapProfile(rate: 1, [leak]), lostRecords: 0, runs: 3, advice: "")
        XCTAssertTrue(report.hasPrefix("still allocated at exit (leaks): 9.8 KiB in 1 stack, summed over 3 runs"), report)
    }

    /// The advice for heap losses applies to the mode: a smaller stack copy than the current one
    /// (never the same 8192), no stack advice with -g, and only -m attached (every call traps).
    func testHeapLossAdviceFitsTheMode() {
        let dwarf = RecordingReport.heapLossAdvice(rate: 1, callGraph: .dwarf(stackSize: 8192), attached: false)
        XCTAssertTrue(dwarf.contains("--call-graph dwarf,2048 below the current 8192"), dwarf)
        XCTAssertTrue(dwarf.contains("raise --heap-rate (now 1"), dwarf)
        let small = RecordingReport.heapLossAdvice(rate: 1, callGraph: .dwarf(stackSize: 512), attached: false)
        XCTAssertFalse(small.contains("--call-graph dwarf,"), small)
        let fp = RecordingReport.heapLossAdvice(rate: 4096, callGraph: .framePointer, attached: false)
        XCTAssertFalse(fp.contains("stack"), fp)
        XCTAssertFalse(fp.contains("-F"), fp)
        let attached = RecordingReport.heapLossAdvice(rate: 4096, callGraph: .dwarf(stackSize: 8192), attached: true)
        XCTAssertFalse(attached.contains("--heap-rate"), attached)
        XCTAssertTrue(attached.hasPrefix("raise -m"), attached)
    }

    /// A heap-only profile (`-e none`) gets no CPU-style loss advice (-F, a CPU stack copy, a
    /// second percentage of "samples"): its losses are probe records, said on the heap line.
    func testHeapOnlyProfileHasNoCPULossAdvice() {
        var p = heapProfile(rate: 1, [churn])
        p.metadata.statistics.samples = 159_221
        p.metadata.statistics.lostRecords = 881_600
        XCTAssertNil(RecordingReport.lossAdvice(for: p, callGraph: .dwarf(stackSize: 8192), ringPages: 8192))
        let line = RecordingReport.summaryLine(p, exitStatus: .exited(0), written: [])
        XCTAssertTrue(line.hasPrefix("159,221 samples (881,600 lost probe records) of heap"), line)
        // A CPU profile keeps its advice.
        p.metadata.event = "cpu-clock"
        XCTAssertNotNil(RecordingReport.lossAdvice(for: p, callGraph: .dwarf(stackSize: 8192), ringPages: 8192))
        XCTAssertEqual(RecordingReport.lostHeapRecords(p), 881_600, "without the kernel's split every lost record may be the heap's")
        p.metadata.statistics.lostHeap = 800_000
        XCTAssertEqual(RecordingReport.lostHeapRecords(p), 800_000)
    }

    /// Beside CPU samples the summary gives the heap's sample count and rate, lost or not.
    func testSummaryGivesTheHeapSampleCount() {
        var cpu = Profile(folded: [(frames: ["app", "main"], count: 5)])
        cpu.metadata.event = "cpu-clock"
        cpu.metadata.rate = .frequency(999)
        cpu.metadata.statistics.samples = 5
        cpu.metadata.statistics.processes = 1
        cpu.metadata.statistics.threads = 1
        var heap = heapProfile(rate: 524_288, [churn, leak])
        heap.metadata.statistics.samples = 1_234
        let line = RecordingReport.summaryLine(cpu, exitStatus: .exited(0), written: ["a.folded"], heap: heap)
        XCTAssertEqual(line, "5 samples (0 lost) of cpu-clock at 999 Hz, 1 process, 1 thread, 1,234 heap samples every 524,288 bytes; wrote a.folded")
    }
}
