#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Sprof

/// Where `sprof run` shows live progress: one status line on stderr, rewritten in place, when
/// stderr is a terminal and `-q` is not given; and one JSON object per line on `--progress-fd N`
/// (for the web UI and scripts). Both get at most 4 updates a second (the engine's rate) and the
/// status line is erased before the summary, so logs and pipes never see it.
final class ProgressOutput: @unchecked Sendable {
    private let statusLine: Bool
    private let jsonFD: Int32?
    private let lock = NSLock()
    private var shown = false
    /// JSON lines waiting for the writer thread, and what became of the others.
    private let queue = NSCondition()
    private var pending: [String] = []
    private var dropped = 0
    private var closing = false
    private var writerDone = false
    /// Lines that may wait for a slow reader (about 4 s of progress) before new ones are dropped.
    static let queueLimit = 16

    init(statusLine: Bool, jsonFD: Int32?) {
        self.statusLine = statusLine
        self.jsonFD = jsonFD
        if let jsonFD {
            // The descriptor is the caller's: a pipe nobody reads, or a terminal stopped with
            // Ctrl-S, would block write(2) for good. Only this thread ever waits on it, so neither
            // recording nor the memory timeline nor Ctrl-C can be held up by the reader.
            let t = Thread { [self] in writeLines(to: jsonFD) }
            t.name = "sprof-progress"
            t.start()
        }
    }

    /// Whether anything is to be reported (else the engine need not be asked for progress).
    var isActive: Bool { statusLine || jsonFD != nil }

    /// Checks `--progress-fd N` at start: the descriptor must be open for writing. Then marks it
    /// close-on-exec: it is sprof's, and a command that inherited it (a daemon it starts, say)
    /// would keep the stream open after sprof ends, or write into it.
    static func checkDescriptor(_ fd: Int32) throws {
        let flags = fcntl(fd, F_GETFL)
        guard fd > 2, flags >= 0, flags & O_ACCMODE != O_RDONLY else {
            throw usage("--progress-fd \(fd): not an open descriptor for writing (e.g. sprof run --progress-fd 3 -- cmd 3>progress.jsonl)")
        }
        _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }

    /// Never blocks: a JSON line that finds ``queueLimit`` lines still waiting for the reader is
    /// dropped (and counted), except the last one (`done`), which replaces the oldest waiting line.
    func report(_ p: RecordingProgress) {
        if jsonFD != nil {
            queue.lock()
            if abandoned {
                dropped += 1
            } else if pending.count >= Self.queueLimit {
                dropped += 1
                if p.done { pending.removeFirst() }
            }
            if !abandoned && pending.count < Self.queueLimit { pending.append(p.jsonLine + "\n") }
            queue.signal()
            queue.unlock()
        }
        lock.lock(); defer { lock.unlock() }
        if statusLine && !p.done {
            Self.writeAll(2, "\r\u{1b}[K" + Self.text(p))
            shown = true
        }
    }

    /// Gives the reader up to `seconds` to take the lines still waiting, then stops writing;
    /// returns how many lines were dropped in all (0 when the reader kept up).
    func finish(within seconds: Double = 2) -> Int {
        guard jsonFD != nil else { return 0 }
        queue.lock(); defer { queue.unlock() }
        closing = true
        queue.broadcast()
        let deadline = Date(timeIntervalSinceNow: seconds)
        while !writerDone && queue.wait(until: deadline) {}
        // The reader did not keep up (or went away): what it has not taken is lost, and the
        // writer stops.
        dropped += pending.count + (!writerDone && inFlight ? 1 : 0)
        pending.removeAll()
        abandoned = true
        return dropped
    }

    private var inFlight = false
    private var abandoned = false

    private func writeLines(to fd: Int32) {
        // A reader that goes away gives EPIPE, not a SIGPIPE that would end sprof (blocked for
        // this thread only: the profiled command does not inherit it).
        var pipeMask = sigset_t()
        sigemptyset(&pipeMask)
        sigaddset(&pipeMask, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeMask, nil)
        while true {
            queue.lock()
            while pending.isEmpty && !closing { queue.wait() }
            if pending.isEmpty || abandoned {
                writerDone = true
                queue.broadcast()
                queue.unlock()
                return
            }
            let line = pending.removeFirst()
            inFlight = true
            queue.unlock()
            // Waits for room in slices, so that `finish` can give up on a reader that never
            // reads. A line is shorter than PIPE_BUF: a pipe that polls writable takes it whole.
            var ready = false
            while !ready {
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let n = poll(&p, 1, 100)
                if n > 0 { ready = true; break }
                if n < 0 && errno != EINTR { break }
                queue.lock()
                let giveUp = abandoned
                queue.unlock()
                if giveUp { break }
            }
            let written = ready && Self.writeAll(fd, line)
            queue.lock()
            inFlight = false
            if !written {
                // The reader went away (EPIPE) or never reads: progress is optional.
                if !abandoned { dropped += 1 + pending.count }
                pending.removeAll()
                abandoned = true
            }
            queue.unlock()
        }
    }

    /// Clears the status line (before the summary or an error line).
    func erase() {
        lock.lock(); defer { lock.unlock() }
        if shown { Self.writeAll(2, "\r\u{1b}[K") }
        shown = false
    }

    /// `sprof: 2.5 s, 2,431 samples, 0 lost, 1 process, 3 threads, peak RSS 14.2 MiB`.
    static func text(_ p: RecordingProgress) -> String {
        let seconds = oneDecimal(Double(p.elapsed) / 1e9)
        var line = "sprof: \(seconds) s, \(grouped(p.samples)) samples, \(grouped(p.lost)) lost"
        line += ", \(p.processes) process\(p.processes == 1 ? "" : "es"), \(p.threads) thread\(p.threads == 1 ? "" : "s")"
        if p.peakRSS > 0 { line += ", peak RSS \(byteText(p.peakRSS))" }
        return line
    }

    @discardableResult
    private static func writeAll(_ fd: Int32, _ text: String) -> Bool {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}

