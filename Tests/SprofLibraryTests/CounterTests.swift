#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Sprof
import SprofTestSupport

/// In-process counting through the library facade.
///
/// Instruction counts are checked against a loop whose count is known exactly (`KnownLoop`: machine
/// code written at run time, 2N + 1 instructions), not against timing. Machines without a hardware
/// PMU (many VMs, this project's CI VM included) skip those with the kernel's reason; the software
/// counter tests run everywhere.
final class CounterTests: XCTestCase {
    /// instructions:u must be countable, else skip with the reason.
    private func requireInstructions() throws -> CounterSet {
        let set = try skippingWhenRefused(hardwareEvent: true) { try CounterSet(["instructions:u"]) }
        if case .notSupported(let reason) = set.read()[0].status {
            throw XCTSkip("instructions:u is not supported on this machine: \(reason)")
        }
        return set
    }

    func testKnownLoopCountsWithinOnePercent() throws {
        let set = try requireInstructions()
        guard let loop = KnownLoop() else { throw XCTSkip("needs x86-64 and executable anonymous memory") }
        let (_, empty) = set.measure { loop.run(1) }
        for n: UInt64 in [1_000_000, 10_000_000] {
            let (_, values) = set.measure { loop.run(n) }
            let counted = try XCTUnwrap(values[0].value) - (empty[0].value ?? 0)
            let expected = Double(2 * n)
            XCTAssertEqual(counted, expected, accuracy: expected * 0.01, "N=\(n): \(values[0])")
            XCTAssertGreaterThan(values[0].enabled, 0)
            XCTAssertGreaterThan(values[0].running, 0)
        }
    }

    func testInstructionCountHelperOnKnownLoop() throws {
        _ = try requireInstructions()
        guard let loop = KnownLoop() else { throw XCTSkip("needs x86-64 and executable anonymous memory") }
        let count = try instructionCount { loop.run(100_000) }
        XCTAssertEqual(Double(count.instructions), 200_001, accuracy: 2_000, "\(count)")
        XCTAssertTrue(count.isWithin(202_000), "\(count)")
        XCTAssertFalse(count.isWithin(190_000), "\(count)")
        XCTAssertLessThan(count.spread, 0.01, "\(count)")
    }

    func testInstructionCountsScaleLinearly() throws {
        _ = try requireInstructions()
        // Swift code (not hand-written machine code): doubling the work doubles the count.
        let one = try instructionCount { workloadSpin(iterations: 200_000) }
        let two = try instructionCount { workloadSpin(iterations: 400_000) }
        XCTAssertEqual(Double(two.instructions), 2 * Double(one.instructions), accuracy: 0.01 * 2 * Double(one.instructions),
                       "\(one) vs \(two)")
    }

    func testBudgetHelperMachineryWithASoftwareEvent() throws {
        // The same warm-up / minimum / overhead logic, on a counter every machine has.
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let count = try skippingWhenRefused {
            try instructionCount(event: "page-faults", repetitions: 4) { touchFreshPages(64, pageSize: pageSize) }
        }
        XCTAssertEqual(count.runs.count, 4)
        XCTAssertGreaterThanOrEqual(count.instructions, 64, "\(count)")
        XCTAssertLessThanOrEqual(count.instructions, 70, "\(count)")
        XCTAssertEqual(count.event.name, "page-faults")
        XCTAssertFalse(count.multiplexed)
        XCTAssertTrue(count.description.contains("min of 4 runs"), count.description)
    }

    func testInstructionCountReportsUnsupportedClearly() throws {
        if let reason = perfEventAvailable() { throw XCTSkip(reason) }
        do {
            // workloadSpin is 7-8 instructions per iteration in a release build, more at -Onone.
            let count = try instructionCount { workloadSpin(iterations: 1000) }
            XCTAssertGreaterThanOrEqual(count.instructions, 5_000, "\(count)")
            XCTAssertLessThanOrEqual(count.instructions, 200_000, "\(count)")
        } catch let error as SprofError {
            guard case .unsupported(let reason) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("no such event"), reason)
        }
    }

    /// Page faults are a software counter: countable everywhere, and exactly predictable.
    func testPageFaultsOfTouchedPages() throws {
        let pages = 512
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let (_, counts) = try skippingWhenRefused {
            try Counters.measure(["page-faults", "task-clock"]) { touchFreshPages(pages, pageSize: pageSize) }
        }
        let faults = try XCTUnwrap(counts.value("page-faults"), "\(counts)")
        XCTAssertGreaterThanOrEqual(faults, Double(pages), "\(counts)")
        XCTAssertLessThan(faults, Double(pages) * 1.01 + 16, "\(counts)")
        let clock = try XCTUnwrap(counts["task-clock"])
        XCTAssertEqual(clock.status, .counted)
        XCTAssertGreaterThan(clock.enabled, 0)
        XCTAssertGreaterThan(clock.running, 0)
        XCTAssertLessThanOrEqual(clock.running, clock.enabled)
    }

    func testStartStopSpanAccumulates() throws {
        let set = try skippingWhenRefused { try CounterSet(["page-faults"]) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        try set.start()
        touchFreshPages(100, pageSize: pageSize)
        try set.stop()
        touchFreshPages(100, pageSize: pageSize) // not counted: stopped
        try set.start()
        touchFreshPages(100, pageSize: pageSize)
        try set.stop()
        let faults = try XCTUnwrap(set.readings().value("page-faults"))
        XCTAssertGreaterThanOrEqual(faults, 200)
        XCTAssertLessThan(faults, 290, "the stopped span must not count")
        set.reset()
        XCTAssertEqual(set.readings().value("page-faults") ?? 0, 0, accuracy: 0.5)
    }

    func testProcessScopeCountsOtherThreads() throws {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let process = try skippingWhenRefused { try CounterSet(["page-faults"], scope: .process) }
        let thread = try CounterSet(["page-faults"], scope: .currentThread)
        try process.start()
        try thread.start()
        _ = onNewThread { touchFreshPages(300, pageSize: pageSize) }
        try thread.stop()
        try process.stop()
        let all = try XCTUnwrap(process.readings().value("page-faults"))
        let mine = try XCTUnwrap(thread.readings().value("page-faults"))
        XCTAssertGreaterThanOrEqual(all, 300, "process scope includes a thread created after start")
        XCTAssertLessThan(mine, 300, "thread scope does not include other threads")
    }

    func testReadingsLookup() throws {
        let set = try skippingWhenRefused { try CounterSet(["task-clock", "page-faults:u"]) }
        let (_, values) = set.measure { workloadSpin(iterations: 10_000) }
        let readings = CounterReadings(values)
        XCTAssertNotNil(readings["task-clock"])
        XCTAssertNotNil(readings["page-faults:u"])
        XCTAssertNotNil(readings["page-faults"], "the bare name works when unambiguous")
        XCTAssertNil(readings["cycles"])
        XCTAssertTrue(readings.description.hasPrefix("task-clock"), readings.description)
        XCTAssertTrue(readings.description.contains("page-faults:u="), readings.description)
    }

    func testInvalidEventThrows() {
        XCTAssertThrowsError(try CounterSet(["instructons:u"])) { error in
            guard case .invalidEvent(let reason)? = error as? SprofError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("instructons"), reason)
        }
    }
}

/// Maps `pages` fresh pages (no huge pages), writes one byte to each, unmaps: exactly `pages`
/// page faults.
@inline(never)
func touchFreshPages(_ pages: Int, pageSize: Int) {
    guard let p = mmap(nil, pages * pageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else { return }
    _ = madvise(p, pages * pageSize, MADV_NOHUGEPAGE)
    let bytes = p.assumingMemoryBound(to: UInt8.self)
    for i in 0..<pages { bytes[i * pageSize] = 1 }
    munmap(p, pages * pageSize)
}
