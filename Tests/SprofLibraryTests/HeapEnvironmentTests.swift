#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
@testable import Sprof
import SprofRecording

/// How `sprof run --heap` hands the preload library to the command: through the environment given
/// to exec, built before the fork, never with setenv in sprof itself (not safe with threads).
final class HeapEnvironmentTests: XCTestCase {
    /// The library goes first in LD_PRELOAD, before preloads already there; the rate replaces any
    /// earlier one; everything else passes through once.
    func testPreloadIsPrependedAndTheRestKept() {
        let env = HeapProbes.environment(library: "/lib/libsprof-heap.so", rate: 4096,
                                         base: ["A=1", "LD_PRELOAD=/x/libjemalloc.so", "SPROF_HEAP_RATE=5", "B=x=y"])
        XCTAssertEqual(env.filter { $0.hasPrefix("LD_PRELOAD=") }, ["LD_PRELOAD=/lib/libsprof-heap.so:/x/libjemalloc.so"])
        XCTAssertEqual(env.filter { $0.hasPrefix("SPROF_HEAP_RATE=") }, ["SPROF_HEAP_RATE=4096"])
        XCTAssertEqual(env.filter { !$0.hasPrefix("LD_PRELOAD=") && !$0.hasPrefix("SPROF_HEAP_RATE=") }, ["A=1", "B=x=y"])
        let alone = HeapProbes.environment(library: "/l.so", rate: 1, base: ["LD_PRELOAD="])
        XCTAssertEqual(alone, ["LD_PRELOAD=/l.so", "SPROF_HEAP_RATE=1"])
    }

    /// The command gets exactly the environment given, and sprof's own stays as it was.
    func testCommandGetsTheGivenEnvironmentOnly() throws {
        let before = getenv("LD_PRELOAD").map { String(cString: $0) }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-env-\(getpid()).txt").path
        let command = try WaitingCommand(arguments: ["/bin/sh", "-c", "env > \(out)"],
                                         environment: ["SPROF_TEST_ONLY=1", "PATH=/usr/bin:/bin", "LD_PRELOAD="])
        try command.start()
        XCTAssertEqual(command.wait(), .exited(0))
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init)
        try? FileManager.default.removeItem(atPath: out)
        XCTAssertTrue(lines.contains("SPROF_TEST_ONLY=1"), "\(lines)")
        XCTAssertFalse(lines.contains { $0.hasPrefix("HOME=") }, "only the given environment: \(lines)")
        XCTAssertEqual(getenv("LD_PRELOAD").map { String(cString: $0) }, before)
        // The byte-exact current environment round-trips.
        XCTAssertEqual(HeapProbes.currentEnvironment().count, ProcessInfo.processInfo.environment.count)
    }

    /// The waits for sprof are one line, summed over repeated runs and saying so (with -r 3 it
    /// was three unnumbered lines with different figures), and no line when nothing waited.
    func testWaitsAreOneLineSummedOverRuns() throws {
        XCTAssertNil(CommandProfiler.heapWaitNotice((0, 0), runs: 3))
        let one = try XCTUnwrap(CommandProfiler.heapWaitNotice((1, 4_000_000), runs: 1))
        XCTAssertTrue(one.hasPrefix("heap: the program waited 0.00 s in all (1 call) for sprof"), one)
        let three = try XCTUnwrap(CommandProfiler.heapWaitNotice((12_345, 2_345_000_000), runs: 3))
        XCTAssertTrue(three.contains("waited 2.35 s in all (12,345 calls, summed over 3 runs)"), three)
    }
}
