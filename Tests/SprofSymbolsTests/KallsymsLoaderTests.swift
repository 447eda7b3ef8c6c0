#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
@testable import SprofSymbols

/// The kallsyms loader is started by the consumer, which runs at SCHED_IDLE while the command
/// does, and a thread inherits its creator's policy: awaited at normal priority once the command
/// has exited, it must be set back, or on a busy machine naming waited for an idle CPU (0.46 s of
/// a debug build's CPU at SCHED_IDLE was seen in a 1 s run).
final class KallsymsLoaderTests: XCTestCase {
    private static let idle: Int32 = 5  // SCHED_IDLE, hidden from Swift without _GNU_SOURCE

    private func setOwnPolicy(_ policy: Int32) -> Bool {
        var param = sched_param()
        return sched_setscheduler(0, policy, &param) == 0
    }

    func testLoaderStartedAtIdlePriorityIsSetBackWhenAwaitedAtNormalPriority() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-kallsyms-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // A FIFO nobody writes yet: the loader blocks in open(2) until the test lets it finish.
        let fifo = dir.appendingPathComponent("kallsyms").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0, String(cString: strerror(errno)))
        guard setOwnPolicy(Self.idle) else { throw XCTSkip("SCHED_IDLE refused here: \(String(cString: strerror(errno)))") }
        let loader = KernelSymbolsLoader(path: fifo)
        XCTAssertTrue(setOwnPolicy(0))
        // It publishes its id once it runs (not waited for by its creator).
        var tid = loader.threadID
        for _ in 0..<3000 where tid == 0 {
            usleep(10_000)
            tid = loader.threadID
        }
        XCTAssertGreaterThan(tid, 0)
        XCTAssertEqual(sched_getscheduler(tid), Self.idle, "the loader inherits its creator's SCHED_IDLE")

        let waited = DispatchSemaphore(value: 0)
        let waiter = Thread {
            _ = loader.wait()  // at SCHED_OTHER
            waited.signal()
        }
        waiter.start()
        // Not a timing assertion: wait (up to 30 s) for the waiter to have set the loader back.
        var policy = sched_getscheduler(tid)
        for _ in 0..<3000 where policy != 0 {
            usleep(10_000)
            policy = sched_getscheduler(tid)
        }
        XCTAssertEqual(policy, 0, "awaited at SCHED_OTHER, the loader runs at SCHED_OTHER")

        let fd = open(fifo, O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let line = "ffffffff81000000 T _stext\n"
        _ = line.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        XCTAssertEqual(waited.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(loader.threadID, 0, "done loading")
    }

    func testAnIdleCallerLeavesTheLoaderAtIdlePriority() throws {
        guard setOwnPolicy(Self.idle) else { throw XCTSkip("SCHED_IDLE refused here: \(String(cString: strerror(errno)))") }
        defer { _ = setOwnPolicy(0) }
        let loader = KernelSymbolsLoader(path: "/nonexistent/kallsyms")
        _ = loader.wait()
        XCTAssertEqual(sched_getscheduler(0), Self.idle, "waiting changes nothing for an idle caller")
    }
}
