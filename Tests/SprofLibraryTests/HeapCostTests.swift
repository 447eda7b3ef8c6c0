import Foundation
import XCTest
@testable import Sprof
import SprofRecording
import SprofSymbols

/// What sprof's own work around a heap profile costs (issue 19's cost target, bench/heap/run):
/// the parts that must not be done twice or slowly, checked without a recording.
final class HeapCostTests: XCTestCase {
    /// The heap profile's builder symbolizes through the CPU profile's symbolizer: with one of
    /// its own every file was opened, and its debug info decompressed, a second time (Debian's
    /// compressed libc6-dbg alone: ~40-60 ms of CPU per `sprof run --heap`). Its stack copy is
    /// the heap probes' own.
    func testHeapBuilderSharesTheCPUBuildersSymbolizer() {
        var sampling = SamplingOptions(event: .cpuClock, callGraph: .dwarf(stackSize: 32768))
        sampling.companions = [CompanionEvent(event: EventSpec(name: "probe", type: 8, config: 0), role: .sampled)]
        sampling.companionStackSize = 8192
        let cpu = ProfileBuilder(symbolizer: Symbolizer(), callGraph: sampling.callGraph, maxStack: 127)
        let heap = CommandProfiler.makeHeapBuilder(HeapOptions(rate: 4096), sampling: sampling, roles: [7: .sampled], maxStack: 127, cpu: cpu)
        XCTAssertTrue(heap.symbolizer === cpu.symbolizer)
        XCTAssertEqual(heap.callGraph, .dwarf(stackSize: 8192))
    }

    /// The memory timeline reads /proc/PID/status 25 times a second per process: the byte scan
    /// gives what the line-by-line reading gave, ignores other `Vm`/`Rss` lines and malformed
    /// values, and needs a VmRSS line.
    func testStatusScanReadsTheMemoryLines() {
        let status = "Name:\tqsl-bench\nVmPeak:\t  123456 kB\nVmRSS:\t    8192 kB\nRssAnon:\t    4096 kB\nRssFile:\t    4000 kB\nRssShmem:\t      96 kB\nThreads:\t1\n"
        let parsed = RecordingMonitor.parseStatus(status)
        XCTAssertEqual(parsed?.rss, 8192 * 1024)
        XCTAssertEqual(parsed?.anonymous, 4096 * 1024)
        XCTAssertEqual(parsed?.file, 4000 * 1024)
        XCTAssertNil(RecordingMonitor.parseStatus("Name:\tkthreadd\nThreads:\t1\n"), "a kernel thread has no VmRSS")
        XCTAssertEqual(RecordingMonitor.parseStatus("VmRSS:\t12x kB\nVmRSS: 7 kB")?.rss, 7 * 1024, "a malformed value is skipped")
        XCTAssertEqual(RecordingMonitor.parseStatus("RssAnon: 5 kB\nVmRSS: 1 kB")?.anonymous, 5 * 1024)
        // This process's own file, read the way the monitor reads it.
        let own = RecordingMonitor.residentMemory(of: getpid())
        XCTAssertGreaterThan(own?.rss ?? 0, 1 << 20)
        XCTAssertEqual((own?.anonymous ?? 0) + (own?.file ?? 0) <= (own?.rss ?? 0), true)
    }
}
