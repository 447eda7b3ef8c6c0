#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import SprofRecording

/// A consumer at idle priority (``RecordingSession/consumeAtIdlePriority``) goes back to normal
/// priority as soon as the target is gone, not once its backlog is: on a busy machine a SCHED_IDLE
/// thread gets almost no CPU, and a rate-1 heap run's backlog took 2.5 minutes after its program
/// had exited (11 s with this).
final class IdleConsumerTests: XCTestCase {
    func testConsumerLeavesIdlePriorityWhenTheTargetExits() throws {
        var options = SamplingOptions()
        options.callGraph = .dwarf(stackSize: 8192)  // large records: a backlog of many batches
        options.rate = .frequency(4000)
        let command = try WaitingCommand(arguments: ["/usr/bin/timeout", "0.3", "/bin/sh", "-c", "while :; do :; done"])
        let session: RecordingSession
        do {
            session = try RecordingSession.open(options, target: .command(command), notice: { _ in })
        } catch {
            command.cancel()
            throw XCTSkip("cpu-clock with stack copies refused here: \(error)")
        }
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
}
