#if canImport(Glibc)
import Glibc
#endif
import Foundation
internal import CSprof

/// Lends the ring-buffer reader's priority to the consumer while the reader is held up.
///
/// The consumer runs at SCHED_IDLE while the command does. When it is preempted holding something
/// the reader then needs (a lock inside the process: the allocator's, the address space's), the
/// reader waits for it, and with every CPU busy an idle thread may not run again for a second:
/// a contended build on 2 CPUs had reader rounds of 289-901 ms and lost up to 622 samples, none
/// with the consumer at normal priority (bench/RESULTS.md). The kernel has no priority
/// inheritance for those locks, so this thread, at normal priority, provides it: when a reader
/// round has lasted longer than ``threshold``, it sets the consumer to SCHED_OTHER, and the reader
/// sets it back to SCHED_IDLE when the round ends (unless the recording is ending by then).
final class ReaderWatchdog: @unchecked Sendable {
    /// How long a round may last before the consumer is lifted: rounds are a few ms; a buffer of
    /// 64 stack copies at 999 Hz lasts 64 ms.
    static let threshold: UInt64 = 15_000_000

    /// The start of the reader's current round on CLOCK_MONOTONIC, 0 between rounds.
    private let roundStart = AtomicWord()
    /// 1 while the consumer is lifted.
    private let lifted = AtomicWord()
    private let stopped = AtomicWord()
    /// Rounds in which the consumer was lifted.
    private let liftCount = AtomicWord()
    private let consumer: () -> pid_t
    private let done = DispatchSemaphore(value: 0)

    /// Starts the watching thread; `consumer` gives the consumer's kernel thread id while it runs
    /// at SCHED_IDLE, else 0.
    init(consumer: @escaping () -> pid_t) {
        self.consumer = consumer
        let thread = Thread { [self] in
            watch()
            done.signal()
        }
        thread.name = "sprof-watchdog"
        thread.start()
    }

    /// Rounds in which the consumer had to be lifted so far.
    var lifts: Int { Int(liftCount.load()) }

    /// Called by the reader as a round begins (`now`: CLOCK_MONOTONIC ns).
    func roundBegins(at now: UInt64) { roundStart.store(max(now, 1)) }

    /// Called by the reader as a round ends: a consumer lifted meanwhile goes back to SCHED_IDLE,
    /// unless `ending` (the recording is over, and the consumer stays at normal priority).
    func roundEnds(ending: Bool) {
        roundStart.store(0)
        guard lifted.load() == 1 else { return }
        lifted.store(0)
        let tid = consumer()
        if !ending && tid > 0 { _ = csprof_set_task_idle(tid, 1) }
    }

    /// Stops the thread and waits for it: before the consumer thread can end.
    func stop() {
        stopped.store(1)
        done.wait()
    }

    private func watch() {
        // As the reader: kept ahead of the command's threads where permitted.
        if RecordingSession.readerNice != 0 { _ = csprof_set_thread_nice(RecordingSession.readerNice) }
        while stopped.load() == 0 {
            usleep(5_000)
            let start = roundStart.load()
            guard start != 0, lifted.load() == 0, RecordingSession.monotonicNow() &- start > Self.threshold else { continue }
            let tid = consumer()
            guard tid > 0 else { continue }
            lifted.store(1)
            // Counted only when the kernel allowed it (see RecordingSession.mayLeaveIdlePriority).
            guard csprof_set_task_idle(tid, 0) == 0 else {
                lifted.store(0)
                continue
            }
            liftCount.store(liftCount.load() + 1)
        }
    }
}

/// One 64-bit word read and written atomically by several threads.
final class AtomicWord: @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt64> = {
        let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()
    deinit { word.deallocate() }
    func load() -> UInt64 { csprof_atomic_load_u64(word) }
    func store(_ value: UInt64) { csprof_atomic_store_u64(word, value) }
}
