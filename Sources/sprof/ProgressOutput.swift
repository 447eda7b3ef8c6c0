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

    init(statusLine: Bool, jsonFD: Int32?) {
        self.statusLine = statusLine
        self.jsonFD = jsonFD
    }

    /// Whether anything is to be reported (else the engine need not be asked for progress).
    var isActive: Bool { statusLine || jsonFD != nil }

    /// Checks `--progress-fd N` at start: the descriptor must be open for writing.
    static func checkDescriptor(_ fd: Int32) throws {
        let flags = fcntl(fd, F_GETFL)
        guard fd > 2, flags >= 0, flags & O_ACCMODE != O_RDONLY else {
            throw usage("--progress-fd \(fd): not an open descriptor for writing (e.g. sprof run --progress-fd 3 -- cmd 3>progress.jsonl)")
        }
    }

    func report(_ p: RecordingProgress) {
        lock.lock(); defer { lock.unlock() }
        if let jsonFD { Self.writeAll(jsonFD, p.jsonLine + "\n") }
        if statusLine && !p.done {
            Self.writeAll(2, "\r\u{1b}[K" + Self.text(p))
            shown = true
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

    private static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return } // the reader went away: progress is optional
            offset += n
        }
    }
}

/// `812 KiB`, `14.2 MiB`, `1.3 GiB` (binary units, as /proc counts).
func byteText(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : (value < 10 ? oneDecimal(value) : String(Int(value.rounded()))) + " " + units[unit]
}

/// `12.3` (one decimal, rounded), without Foundation's formatter.
func oneDecimal(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}
