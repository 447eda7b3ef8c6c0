#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
@testable import SprofRecording

/// A consumer at idle priority (``RecordingSession/consumeAtIdlePriority``) goes back to normal
/// priority as soon as the target is gone, not once its backlog is: on a busy machine a SCHED_IDLE
/// thread gets almost no CPU, and a rate-1 heap run's backlog took 2.5 minutes after its program
/// had exited (11 s with this).
final class IdleConsumerTests: XCTestCase {
    func testConsumerLeavesIdlePriorityWhenTheTargetExits() throws {
        var options = SamplingOptions()
        options.callGraph = .dwarf(stackSize: 8192)  // large records: a backlog of many batches
        options.rate = .frequency(4000)
        let (command, session) = try Self.spinFor300ms(options)
        session.consumeAtIdlePriority = true
        session.memoryBudget = 512 << 10  // batches of 64 KiB
        var policies: [Int32] = []
        var inFirstBatchAfterExit: Int32 = -1
        try session.record(started: { try? command.start() }) { _ in
            policies.append(sched_getscheduler(0))
            // The first batch takes until the command is long gone; the rest is backlog.
            if policies.count == 1 {
                usleep(1_000_000)
                inFirstBatchAfterExit = sched_getscheduler(0)
            }
        }
        _ = command.wait()
        session.closeEvents()
        let idle: Int32 = 5  // SCHED_IDLE
        guard policies.first == idle else { throw XCTSkip("the consumer could not be set to SCHED_IDLE here (policy \(policies.first ?? -1))") }
        XCTAssertGreaterThan(policies.count, 2, "a backlog of several batches")
        XCTAssertEqual(policies.dropFirst().first, 0, "the batches after the command exited are consumed at SCHED_OTHER: \(policies)")
        // The reader, which sees the end first, sets the consumer back in the middle of its batch
        // (with -a, one batch at SCHED_IDLE on a busy machine had lasted ~30 s past the end).
        XCTAssertEqual(inFirstBatchAfterExit, 0, "the batch under way when the command exited goes on at SCHED_OTHER")
        XCTAssertEqual(sched_getscheduler(0), 0, "the caller's thread is back to SCHED_OTHER")
    }

    /// The reader asks for nice -10 while it reads, where the kernel permits it: at nice 0, a
    /// 2-process command on CI's 2 CPUs kept it off long enough to lose 37% of the samples.
    func testReaderRunsAheadOfTheProgramWhenPermittedAndLeavesNoTrace() throws {
        var options = SamplingOptions()
        options.callGraph = .framePointer
        let (command, session) = try Self.spinFor300ms(options)
        let me = getpid()
        var nices: [Int32: Int] = [:]
        var boostedWhileReading = false
        try session.record(started: { try? command.start() }) { _ in
            guard nices.isEmpty else { return }
            boostedWhileReading = session.readerIsBoosted
            for tid in Self.threads(of: me) { nices[tid] = Self.nice(pid: me, tid: tid) }
        }
        _ = command.wait()
        session.closeEvents()
        // Whether lowering one's nice is permitted: CAP_SYS_NICE, or RLIMIT_NICE above 20.
        errno = 0
        let permitted = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) - 1) == 0
        if permitted { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) + 1) }
        XCTAssertEqual(boostedWhileReading, permitted, "the reader is boosted exactly when the kernel permits it")
        if permitted {
            XCTAssertTrue(nices.values.contains(-10), "one thread (the reader) at nice -10 while recording: \(nices)")
        }
        XCTAssertEqual(nices.values.filter { $0 == -10 }.count, permitted ? 1 : 0, "the reader alone: \(nices)")
        // getpriority(PRIO_PROCESS, 0) is the calling thread's own on Linux.
        XCTAssertEqual(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), 0, "the caller's thread keeps nice 0")
    }

    /// A shell loop that spins 0.3 s, not yet started, and a session open on it.
    private static func spinFor300ms(_ options: SamplingOptions) throws -> (WaitingCommand, RecordingSession) {
        let command = try WaitingCommand(arguments: ["/usr/bin/timeout", "0.3", "/bin/sh", "-c", "while :; do :; done"])
        do {
            return (command, try RecordingSession.open(options, target: .command(command), notice: { _ in }))
        } catch {
            command.cancel()
            throw XCTSkip("cpu-clock refused here: \(error)")
        }
    }

    private static func threads(of pid: pid_t) -> [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []).compactMap { pid_t($0) }
    }

    /// Field 19 of /proc/PID/task/TID/stat, after the parenthesized name.
    private static func nice(pid: pid_t, tid: pid_t) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3): nice is field 19.
        return fields.count > 16 ? Int(fields[16]) : nil
    }
}

/// The watchdog lends the reader's priority to an idle consumer that holds it up: a round that
/// lasts past the threshold lifts the consumer to SCHED_OTHER, and its end sets it back.
final class ReaderWatchdogTests: XCTestCase {
    func testALongRoundLiftsTheIdleConsumerUntilItEnds() throws {
        let idle: Int32 = 5
        var tid: pid_t = 0
        let ready = DispatchSemaphore(value: 0), finish = DispatchSemaphore(value: 0)
        // A stand-in consumer: a thread at SCHED_IDLE that waits.
        let consumer = Thread {
            var param = sched_param()
            guard sched_setscheduler(0, idle, &param) == 0 else { ready.signal(); return }
            tid = pid_t(Self.ownTID())
            ready.signal()
            finish.wait()
        }
        consumer.start()
        ready.wait()
        defer { finish.signal() }
        guard tid > 0 else { throw XCTSkip("SCHED_IDLE refused here") }
        XCTAssertEqual(sched_getscheduler(tid), idle)
        let watchdog = ReaderWatchdog(consumer: { tid })
        defer { watchdog.stop() }
        watchdog.roundBegins(at: RecordingSession.monotonicNow())
        // Not a timing assertion: wait (up to 30 s) for the lift.
        var policy = sched_getscheduler(tid)
        for _ in 0..<3000 where policy != 0 {
            usleep(10_000)
            policy = sched_getscheduler(tid)
        }
        XCTAssertEqual(policy, 0, "a round past the threshold lifts the consumer")
        XCTAssertEqual(watchdog.lifts, 1)
        watchdog.roundEnds(ending: false)
        XCTAssertEqual(sched_getscheduler(tid), idle, "the round's end sets it back")
        // A short round lifts nothing; the last round of a recording leaves the consumer normal.
        watchdog.roundBegins(at: RecordingSession.monotonicNow())
        watchdog.roundEnds(ending: false)
        XCTAssertEqual(watchdog.lifts, 1)
        watchdog.roundBegins(at: RecordingSession.monotonicNow() - 1_000_000_000)
        for _ in 0..<3000 where sched_getscheduler(tid) != 0 { usleep(10_000) }
        watchdog.roundEnds(ending: true)
        XCTAssertEqual(sched_getscheduler(tid), 0, "not set back once the recording ends")
        XCTAssertEqual(watchdog.lifts, 2)
    }

    private static func ownTID() -> Int {
        Int((try? String(contentsOfFile: "/proc/thread-self/stat", encoding: .utf8))?.split(separator: " ").first.flatMap { Int($0) } ?? 0)
    }
}
