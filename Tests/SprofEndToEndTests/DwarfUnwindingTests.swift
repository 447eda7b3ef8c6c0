import Foundation
import XCTest
import SprofTestSupport

/// `sprof run --call-graph dwarf` against the real kernel: user stacks unwound with libdw from the
/// copied stack, on C programs built without frame pointers.
final class DwarfUnwindingTests: XCTestCase {
    override func setUpWithError() throws {
        try SprofCLI.requirePerfEvents()
    }

    private func profile(_ command: [String], options: [String], name: String = "dwarf", timeout: TimeInterval = 120) throws -> ProfileShape {
        let prefix = SprofCLI.outputPrefix(name)
        let result = try SprofCLI.run(["run", "-o", prefix] + options + ["--"] + command, timeout: timeout)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try ProfileShape(foldedFile: prefix + ".folded")
    }

    private let leaves = ["leaf_sixty", "leaf_thirty", "leaf_ten"]
    private let callers = ["caller_sixty", "caller_thirty", "caller_ten"]

    private func wholeChains(_ shape: ProfileShape) -> UInt64 {
        zip(callers, leaves).reduce(UInt64(0)) { $0 + shape.samples(withChain: ["main", "run_all", "do_round", $1.0, $1.1]) }
    }

    func testDwarfUnwindsProgramWithoutFramePointersDownToMain() throws {
        let binary = try TestFixtures.buildC("fp_chain", flags: TestFixtures.noFramePointerFlags)
        // Each sample falls in a leaf with its share's probability: at 1999 Hz (~3,900 samples in
        // the leaves) the 60% share has σ ≈ 0.78 points and ±3 was 3.8σ (the 30% one 4.1σ). At
        // 2999 Hz (~5,900, none lost with 32 KiB copies) σ ≈ 0.64: ±3 is 4.7σ (30%: 5.0σ).
        // Not more: sprof unwinds at SCHED_IDLE while the command runs, so under load the run's
        // wall time grows with its samples (6 busy loops on 2 CPUs: 30 s at 1999 Hz, 64-150 s at
        // 3999 Hz, past the 120 s limit once); the limit is raised too, as a safety net.
        let shape = try profile([binary, "2.0"], options: ["--call-graph", "dwarf", "-F", "2999"], timeout: 600)
        // 2 s of the fixture's CPU time at 2999 Hz.
        XCTAssertEqual(Double(shape.total), 2 * 2999, accuracy: 0.15 * 2 * 2999)
        let reachingMain = shape.samples(withChain: ["__libc_start_call_main", "main"])
        XCTAssertGreaterThanOrEqual(Double(reachingMain), 0.99 * Double(shape.total),
                                    "\(reachingMain) of \(shape.total) samples reach main")
        let inLeaves = leaves.reduce(UInt64(0)) { $0 + shape.samples(containing: $1) }
        XCTAssertGreaterThanOrEqual(Double(wholeChains(shape)), 0.99 * Double(inLeaves),
                                    "leaf samples must show main;run_all;do_round;caller;leaf")
        XCTAssertEqual(shape.samples(containing: "[truncated]"), 0)
        let split = shape.split(leaves)
        XCTAssertEqual(split[0], 60, accuracy: 3, "split \(split)")
        XCTAssertEqual(split[1], 30, accuracy: 3, "split \(split)")
        XCTAssertEqual(split[2], 10, accuracy: 3, "split \(split)")
    }

    func testFramePointerModeBreaksOnTheSameProgram() throws {
        let binary = try TestFixtures.buildC("fp_chain", flags: TestFixtures.noFramePointerFlags)
        let shape = try profile([binary, "1.0"], options: ["--call-graph", "fp"], name: "fp")
        let inLeaves = leaves.reduce(UInt64(0)) { $0 + shape.samples(containing: $1) }
        XCTAssertEqual(Double(inLeaves), 999, accuracy: 0.15 * 999, "1 s of CPU time at 999 Hz")
        // Without frame pointers the kernel's walk cannot get from the leaves back to main.
        XCTAssertLessThan(Double(wholeChains(shape)), 0.5 * Double(inLeaves))
    }

    func testDeepRecursionIsCompleteOrMarkedTruncated() throws {
        let binary = try TestFixtures.buildC("recurse", flags: TestFixtures.noFramePointerFlags)
        let shape = try profile([binary, "200", "0.5"], options: ["--call-graph", "dwarf"], name: "recurse")
        var bottom: UInt64 = 0
        for stack in shape.stacks where stack.frames.contains(where: { $0.contains("recurse_bottom") }) {
            bottom += stack.count
            let steps = stack.frames.filter { $0.contains("recurse_step") }.count
            let complete = stack.frames.contains("main") && steps >= 199
            let marked = stack.frames.contains("[truncated]")
            XCTAssertTrue(complete != marked, "neither complete nor marked (or both): \(steps) steps, \(stack.frames.prefix(8))")
        }
        // recurse_bottom spins 0.5 s of CPU time: ~500 samples at 999 Hz.
        XCTAssertEqual(Double(bottom), 0.5 * 999, accuracy: 0.2 * 0.5 * 999)
    }

    func testStackDeeperThanTheCopyIsMarkedTruncated() throws {
        let binary = try TestFixtures.buildC("recurse", flags: TestFixtures.noFramePointerFlags)
        // 3000 frames need far more than the 8 KiB copied by default. Without the reads of the
        // live stack past the copy (SPROF_LIVE_STACK=0), which would reach main.
        let shape = try SprofCLI.runCopyOnly(SprofCLI.outputPrefix("deep"), ["--call-graph", "dwarf"], [binary, "3000", "0.5"]).shape
        let bottom = shape.samples(containing: "recurse_bottom")
        // recurse_bottom spins 0.5 s of CPU time: ~500 samples at 999 Hz.
        XCTAssertEqual(Double(bottom), 0.5 * 999, accuracy: 0.2 * 0.5 * 999)
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["[truncated]", "recurse_step"])), 0.99 * Double(bottom))
        // Of the spinning leaf's samples (one taken during the descent, 36 frames deep, is whole).
        XCTAssertEqual(shape.stacks.filter { $0.frames.contains("main") && $0.frames.contains { $0.contains("recurse_bottom") } }.count, 0)
    }

    func testLargerStackCopyReachesMainThroughDeepRecursion() throws {
        let binary = try TestFixtures.buildC("recurse", flags: TestFixtures.noFramePointerFlags)
        let shape = try profile([binary, "1000", "0.5"], options: ["--call-graph", "dwarf,65528"], name: "big")
        let bottom = shape.samples(containing: "recurse_bottom")
        // recurse_bottom spins 0.5 s of CPU time: ~500 samples at 999 Hz.
        XCTAssertEqual(Double(bottom), 0.5 * 999, accuracy: 0.2 * 0.5 * 999)
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["main", "run_recurse", "recurse_step"])), 0.99 * Double(bottom))
    }

    func testSwiftProgramUnwindsThroughTheRuntime() throws {
        // sprof-fixtures keeps frame pointers, but DWARF unwinding must not need them: it walks
        // .eh_frame of the fixture, libswiftCore and libc.
        let fixture = try TestFixtures.swiftFixturePath()
        let shape = try profile([fixture, "split", "1.0"], options: ["--call-graph", "dwarf"], name: "swift")
        XCTAssertGreaterThan(shape.total, 300)
        for (caller, leaf) in [("splitSixty", "burnSixty"), ("splitThirty", "burnThirty"), ("splitTen", "burnTen")] {
            XCTAssertGreaterThan(shape.samples(withChain: ["main", "fixtureSplit", caller, leaf]), 0,
                                 "chain main;fixtureSplit;\(caller);\(leaf) missing")
        }
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["__libc_start_call_main", "main"])), 0.98 * Double(shape.total))
    }
}
