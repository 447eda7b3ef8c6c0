#if canImport(Glibc)
import Glibc
#endif
import XCTest
import SprofCore
import SprofRecording
@testable import SprofCounting
import SprofTestSupport

/// The in-process API.
final class CounterSetTests: XCTestCase {
    /// Opens a set; a refusal skips only as PerfSkipPolicy allows (never for a software event as root).
    private func open(_ names: [String], scope: CounterSet.Scope = .currentThread, hardwareEvent: Bool = false) throws -> CounterSet {
        do {
            return try CounterSet(events: names.map { try EventCatalog.parse($0) }, scope: scope)
        } catch let e as SyscallError {
            if let reason = PerfSkipPolicy.skipReason(errno: e.errno, hardwareEvent: hardwareEvent, detail: "\(e)") { throw XCTSkip(reason) }
            throw e
        }
    }

    /// Touches `pages` fresh anonymous pages (THP off so each is one fault).
    private func touchPages(_ pages: Int) {
        let size = pages * 4096
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            return XCTFail("mmap failed")
        }
        madvise(p, size, MADV_NOHUGEPAGE)
        for i in stride(from: 0, to: size, by: 4096) { p.storeBytes(of: 1, toByteOffset: i, as: UInt8.self) }
        munmap(p, size)
    }

    func testMeasureCountsTheBodyOnly() throws {
        let set = try open(["page-faults", "task-clock"])
        let (result, values) = set.measure { touchPages(300); return 42 }
        XCTAssertEqual(result, 42)
        XCTAssertEqual(values.map(\.event.name), ["page-faults", "task-clock"])
        XCTAssertGreaterThanOrEqual(values[0].value ?? 0, 300)
        XCTAssertLessThanOrEqual(values[0].value ?? .infinity, 330, "only the body's faults, once")
        XCTAssertEqual(values[1].status, .counted)
        XCTAssertGreaterThan(values[1].value ?? 0, 0)
        XCTAssertFalse(set.isRunning)

        // Stopped: work now is not counted; reset zeroes.
        touchPages(300)
        XCTAssertEqual(set.read()[0].raw, values[0].raw)
        set.reset()
        XCTAssertEqual(set.read()[0].raw, 0)
    }

    func testStartStopAccumulates() throws {
        let set = try open(["page-faults"])
        try set.start()
        touchPages(100)
        try set.stop()
        let first = set.read()[0].raw
        touchPages(500) // not counted
        try set.start()
        touchPages(100)
        try set.stop()
        let second = set.read()[0].raw
        XCTAssertGreaterThanOrEqual(first, 100)
        XCTAssertLessThanOrEqual(first, 120, "one span of 100 pages")
        XCTAssertGreaterThanOrEqual(second - first, 100)
        XCTAssertLessThanOrEqual(second - first, 120, "the second span of 100 pages, without the 500 touched while stopped")
    }

    func testProcessScopeIncludesThreadsCreatedLater() throws {
        let set = try open(["page-faults"], scope: .process)
        let (_, values) = set.measure {
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { _ in
                let size = 400 * 4096
                if let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED {
                    madvise(p, size, MADV_NOHUGEPAGE)
                    for i in stride(from: 0, to: size, by: 4096) { p.storeBytes(of: 1, toByteOffset: i, as: UInt8.self) }
                    munmap(p, size)
                }
                return nil
            }, nil)
            XCTAssertEqual(rc, 0)
            // Joined: an inherited counter adds into its parent when the thread exits.
            pthread_join(thread, nil)
        }
        XCTAssertGreaterThanOrEqual(values[0].value ?? 0, 400)
        // The thread's own start-up (stack guard, TLS) adds a few faults; a double count would not fit.
        XCTAssertLessThanOrEqual(values[0].value ?? .infinity, 460)
    }

    func testUnsupportedEventReadsAsNotSupported() throws {
        let bogus = EventSpec(name: "sw-bogus", type: 1, config: 1000)
        let set: CounterSet
        do {
            set = try CounterSet(events: [bogus, EventCatalog.named("task-clock")!])
        } catch {
            let e: any Error = error
            if let s = e as? SyscallError, let reason = PerfSkipPolicy.skipReason(errno: s.errno, hardwareEvent: false, detail: "\(s)") {
                throw XCTSkip(reason)
            }
            throw e
        }
        let (_, values) = set.measure { touchPages(10) }
        guard case .notSupported = values[0].status else { return XCTFail("\(values[0].status)") }
        XCTAssertNil(values[0].value)
        XCTAssertEqual(values[1].status, .counted)
    }

    func testSingleHardwareCounterFastPath() throws {
        let set = try open(["instructions:u"], hardwareEvent: true)
        var sink: UInt64 = 0
        let (_, values) = set.measure {
            for i in 0..<1_000_000 { sink &+= UInt64(i) ^ (sink >> 3) }
        }
        if case .notSupported(let reason) = values[0].status { throw XCTSkip("instructions:u not supported here: \(reason)") }
        XCTAssertGreaterThan(sink, 0)
        // At least one instruction per iteration, whichever path read the counter.
        XCTAssertGreaterThan(values[0].value ?? 0, 1_000_000, "read via \(set.readsInUserSpace ? "rdpmc" : "read(2)")")
        // A second measurement starts from zero again.
        let (_, again) = set.measure { sink &+= 1 }
        XCTAssertLessThan(again[0].value ?? .infinity, values[0].value ?? 0)
    }
}
