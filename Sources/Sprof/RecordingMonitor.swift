#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SprofCore
import SprofRecording
import SprofProfile

/// Live figures of a recording, as the engine reports them while it runs (at most 4 times a
/// second) and once more when it is done: what `sprof run` shows on its status line and writes to
/// `--progress-fd`, and what the web UI shows live.
public struct RecordingProgress: Sendable, Equatable {
    /// Nanoseconds since recording started.
    public var elapsed: UInt64 = 0
    /// On-CPU samples read from the ring buffers so far.
    public var samples = 0
    /// Records and samples the kernel dropped so far.
    public var lost: UInt64 = 0
    /// Processes seen so far.
    public var processes = 0
    /// Threads seen so far.
    public var threads = 0
    /// The largest resident set size any followed process has had so far, in bytes (VmRSS
    /// sampled from `/proc/PID/status`); 0 before the first reading.
    public var peakRSS: UInt64 = 0
    /// True on the last report, sent after recording stopped.
    public var done = false

    /// Creates progress figures.
    public init(elapsed: UInt64 = 0, samples: Int = 0, lost: UInt64 = 0, processes: Int = 0, threads: Int = 0,
                peakRSS: UInt64 = 0, done: Bool = false) {
        self.elapsed = elapsed
        self.samples = samples
        self.lost = lost
        self.processes = processes
        self.threads = threads
        self.peakRSS = peakRSS
        self.done = done
    }

    /// One JSON object on one line (no newline), the `--progress-fd` format:
    /// `{"elapsed_ns":…,"samples":…,"lost":…,"processes":…,"threads":…,"peak_rss_bytes":…}`,
    /// with `"done":true` added on the last line.
    public var jsonLine: String {
        var s = "{\"elapsed_ns\":\(elapsed),\"samples\":\(samples),\"lost\":\(lost),\"processes\":\(processes),\"threads\":\(threads),\"peak_rss_bytes\":\(peakRSS)"
        if done { s += ",\"done\":true" }
        return s + "}"
    }
}

/// A sprof thread that, while a session records, samples the resident memory of every process the
/// session follows (`VmRSS`, `RssAnon`, `RssFile` from `/proc/PID/status`) at a steady rate and
/// reports ``RecordingProgress`` at most 4 times a second. It reads the session's own counters
/// (kept by the ring-buffer reader), never the consumer's, so figures stay live even while
/// unwinding waits for idle CPU.
final class RecordingMonitor: @unchecked Sendable {
    private let session: RecordingSession
    private let interval: UInt64
    private let progress: (@Sendable (RecordingProgress) -> Void)?
    private let stopSignal = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    /// When monitoring began (CLOCK_MONOTONIC ns): the origin of the memory timeline's times.
    let start = RecordingMonitor.now()
    private let lock = NSLock()
    private var points: [Profile.MemoryPoint] = []
    private var peak: UInt64 = 0
    private var thread: Thread?
    private let sampleMemory: Bool

    /// Starts the thread. `memoryRate` is readings per second (0: no memory timeline, progress
    /// only); `progress` is called on the monitor's thread.
    init(session: RecordingSession, memoryRate: Int, progress: (@Sendable (RecordingProgress) -> Void)?) {
        self.session = session
        self.progress = progress
        self.interval = memoryRate > 0 ? 1_000_000_000 / UInt64(min(memoryRate, 1000)) : 250_000_000
        let sampleMemory = memoryRate > 0
        self.sampleMemory = sampleMemory
        let t = Thread { [self] in
            run(sampleMemory: sampleMemory)
            finished.signal()
        }
        t.name = "sprof-monitor"
        thread = t
        t.start()
    }

    private func run(sampleMemory: Bool) {
        // A progress reader that goes away (a closed --progress-fd pipe) must give EPIPE, not
        // kill sprof: SIGPIPE from write(2) goes to the writing thread, so blocking it here is
        // enough, and unlike SIG_IGN it is not inherited by the profiled command.
        var pipeMask = sigset_t()
        sigemptyset(&pipeMask)
        sigaddset(&pipeMask, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeMask, nil)
        var lastReport: UInt64 = 0
        var next = Self.now()
        while true {
            let now = Self.now()
            var wait = interval
            if sampleMemory {
                sampleOnce(at: now)
                // Reading /proc costs ~20-40 µs per process: system-wide (hundreds of processes)
                // the rate drops so that it never takes more than ~2% of a CPU.
                wait = max(interval, (Self.now() - now) * 50)
            }
            if progress != nil, now - lastReport >= 250_000_000 || lastReport == 0 {
                lastReport = now
                progress?(snapshot(done: false))
            }
            next += wait
            let current = Self.now()
            if next < current { next = current } // fell behind: do not burst
            if stopSignal.wait(timeout: .now() + .nanoseconds(Int(next - current))) == .success { break }
        }
        progress?(snapshot(done: true))
    }

    /// Reads the live processes' memory now, from the calling thread (at a command's exec), when
    /// the timeline is on.
    func sampleNow() {
        if sampleMemory { sampleOnce(at: Self.now()) }
    }

    private func sampleOnce(at now: UInt64) {
        var batch: [Profile.MemoryPoint] = []
        for pid in session.livePIDs {
            guard let m = Self.residentMemory(of: pid) else { continue }
            batch.append(Profile.MemoryPoint(time: now - start, pid: pid, rss: m.rss, anonymous: m.anonymous, file: m.file))
        }
        lock.lock()
        points.append(contentsOf: batch)
        for p in batch where p.rss > peak { peak = p.rss }
        lock.unlock()
    }

    /// The figures now.
    func snapshot(done: Bool) -> RecordingProgress {
        let s = session.statistics
        lock.lock(); defer { lock.unlock() }
        return RecordingProgress(elapsed: Self.now() - start, samples: s.samples, lost: s.lost, processes: s.processes,
                                 threads: s.threads, peakRSS: peak, done: done)
    }

    /// A peak known otherwise (the command's high-water mark from wait4), for the last progress
    /// report: readings every 40 ms miss a short-lived process's peak.
    func notePeak(_ bytes: UInt64) {
        lock.lock()
        peak = max(peak, bytes)
        lock.unlock()
    }

    /// Stops the thread, which sends the final report (`done`), and returns the memory timeline.
    func stop() -> [Profile.MemoryPoint] {
        stopSignal.signal()
        finished.wait()
        lock.lock(); defer { lock.unlock() }
        return points
    }

    /// `VmRSS`, `RssAnon` and `RssFile` of a process in bytes; nil when it is gone or is a kernel
    /// thread (no VmRSS line).
    ///
    /// Read 25 times a second for every followed process, so one read(2) into a stack buffer and
    /// a byte scan: splitting the text into Strings took most of the monitor's CPU (a fifth of
    /// sprof's own CPU time on a 6 s `--heap` run of qsl-bench on a loaded machine).
    static func residentMemory(of pid: Int32) -> (rss: UInt64, anonymous: UInt64, file: UInt64)? {
        let fd = ArgumentBytes.withPath("/proc/\(pid)/status") { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 8192) { buffer -> (rss: UInt64, anonymous: UInt64, file: UInt64)? in
            var used = 0
            while used < buffer.count {
                let n = read(fd, buffer.baseAddress! + used, buffer.count - used)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { return nil }
                if n == 0 { break }
                used += n
            }
            return parseStatus(UnsafeBufferPointer(rebasing: buffer[0..<used]))
        }
    }

    /// The memory lines of a `/proc/PID/status` text (values are in kB there).
    static func parseStatus(_ text: String) -> (rss: UInt64, anonymous: UInt64, file: UInt64)? {
        var text = text
        return text.withUTF8 { parseStatus($0) }
    }

    /// ``parseStatus(_:)-swift.type.method`` of the file's bytes: `VmRSS:`, `RssAnon:` and `RssFile:`
    /// lines, each `NAME:<spaces or tabs>KB kB`.
    static func parseStatus(_ bytes: UnsafeBufferPointer<UInt8>) -> (rss: UInt64, anonymous: UInt64, file: UInt64)? {
        var rss: UInt64?
        var anon: UInt64 = 0, file: UInt64 = 0
        var i = 0
        let n = bytes.count
        while i < n {
            let start = i
            while i < n && bytes[i] != UInt8(ascii: "\n") { i += 1 }
            let end = i
            i += 1
            let nameLength: Int
            if hasPrefix(bytes, start, end, "VmRSS:") || hasPrefix(bytes, start, end, "RssAnon:") || hasPrefix(bytes, start, end, "RssFile:") {
                nameLength = bytes[start] == UInt8(ascii: "V") ? 6 : 8
            } else {
                continue
            }
            var j = start + nameLength
            while j < end && (bytes[j] == UInt8(ascii: " ") || bytes[j] == UInt8(ascii: "\t")) { j += 1 }
            var kb: UInt64 = 0
            var digits = 0
            while j < end, bytes[j] >= UInt8(ascii: "0"), bytes[j] <= UInt8(ascii: "9"), digits < 16 {
                kb = kb * 10 + UInt64(bytes[j] - UInt8(ascii: "0"))
                digits += 1
                j += 1
            }
            // The number must be the whole word, as `UInt64(word)` required before.
            guard digits > 0, j == end || bytes[j] == UInt8(ascii: " ") || bytes[j] == UInt8(ascii: "\t") else { continue }
            switch (bytes[start], bytes[start + 3]) {
            case (UInt8(ascii: "V"), _): rss = kb * 1024
            case (_, UInt8(ascii: "A")): anon = kb * 1024
            default: file = kb * 1024
            }
        }
        return rss.map { ($0, anon, file) }
    }

    private static func hasPrefix(_ bytes: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard end - start >= count else { return false }
        let p = prefix.utf8Start
        for k in 0..<count where bytes[start + k] != p[k] { return false }
        return true
    }

    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
