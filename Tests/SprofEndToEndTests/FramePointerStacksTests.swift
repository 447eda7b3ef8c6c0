import Foundation
import XCTest
import SprofTestSupport

/// `sprof run -g` (the kernel's frame-pointer walk): broken stacks are marked and counted, whole
/// ones are not, and signal handlers show the trampoline by name.
final class FramePointerStacksTests: XCTestCase {
    override func setUpWithError() throws {
        try SprofCLI.requirePerfEvents()
    }

    private func profile(_ command: [String], name: String) throws -> (ProfileShape, String) {
        let prefix = SprofCLI.outputPrefix(name)
        let result = try SprofCLI.run(["run", "-g", "-o", prefix, "--"] + command)
        XCTAssertEqual(result.status, 0, result.stderr)
        return (try ProfileShape(foldedFile: prefix + ".folded"), result.stderr)
    }

    /// Samples inside Debian's malloc/free (no frame pointers) lose their callers: those stacks
    /// must carry `[truncated]` and be counted, while the ones that reach main must not.
    func testStacksBrokenInLibcAreMarkedAndCounted() throws {
        let binary = try TestFixtures.buildC("malloc_churn", flags: TestFixtures.framePointerFlags)
        let (shape, summary) = try profile([binary, "1500"], name: "malloc")
        XCTAssertGreaterThan(shape.total, 150)
        var unmarkedBroken: [String] = []
        var markedWhole: UInt64 = 0
        for stack in shape.stacks {
            let user = stack.frames.dropFirst().filter { !$0.hasSuffix("_[k]") }
            let reachesMain = user.contains("main")
            let marked = stack.frames.contains("[truncated]")
            // A sample at churn's first instruction or its `ret` misses main (the kernel's walk
            // starts at main's frame pointer; README, -g): its stack still ends in the start code
            // (one in a full-suite run). Any other stack missing main is broken in libc.
            let atEntryOrReturn = Array(user) == ["__libc_start_call_main", "churn"]
            if !reachesMain && !marked && !atEntryOrReturn { unmarkedBroken.append(stack.frames.joined(separator: ";")) }
            if reachesMain && marked { markedWhole += stack.count }
        }
        XCTAssertEqual(unmarkedBroken, [], "stacks that never reach main must be marked [truncated]")
        XCTAssertEqual(markedWhole, 0, "stacks that reach main are complete")
        let truncated = shape.samples(containing: "[truncated]")
        XCTAssertGreaterThan(truncated, 0, "expected samples inside malloc/free")
        let counted = summary.split(separator: " ").enumerated().compactMap { i, word -> UInt64? in
            word.hasPrefix("truncated") && i > 0 ? UInt64(summary.split(separator: " ")[i - 1].filter(\.isNumber)) : nil
        }.first
        XCTAssertEqual(counted, truncated, "the summary must count them: \(summary)")
    }

    /// Threads' stacks end at glibc's start_thread (which clears no frame of its own): complete.
    func testThreadStacksEndingAtStartThreadAreComplete() throws {
        let binary = try TestFixtures.buildC("threads", flags: TestFixtures.framePointerFlags)
        let (shape, _) = try profile([binary, "4", "0.5"], name: "threads")
        let inThreads = shape.samples(containing: "thread_work_")
        XCTAssertGreaterThan(inThreads, 100)
        XCTAssertLessThanOrEqual(Double(shape.samples(containing: "[truncated]")), 0.02 * Double(shape.total))
    }

    /// A sample in a signal handler: the kernel's walk passes the trampoline's own start (not a
    /// return address); it is named `__restore_rt`, not `[libc.so.6+0x…]` of the code before it.
    func testSignalTrampolineIsNamed() throws {
        let binary = try TestFixtures.buildC("signal_spin", flags: TestFixtures.framePointerFlags)
        // 600 rounds of ~0.3 ms: about 200 samples in the handler, clear of the 100 asked for below
        // (300 rounds gave about 100: 89 and 95 in two of five runs here, failing it).
        let (shape, _) = try profile([binary, "600"], name: "signal")
        let inHandler = shape.samples(containing: "in_handler")
        XCTAssertGreaterThan(inHandler, 100)
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["__restore_rt", "on_alarm", "in_handler"])), 0.95 * Double(inHandler))
        XCTAssertEqual(shape.stacks.filter { $0.frames.contains { $0.hasPrefix("[libc.so.6+") } }.count, 0)
        // The handler's stacks continue below the trampoline to main: complete, not truncated.
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["main", "__restore_rt", "on_alarm"])), 0.95 * Double(inHandler))
    }
}
