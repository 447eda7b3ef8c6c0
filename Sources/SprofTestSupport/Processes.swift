import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A program started in the background, for tests that signal it or attach to it while it runs
/// (Ctrl-C, `-p PID`). Its stdout and stderr go to files (no pipe to fill up and block it).
public final class BackgroundProcess {
    private let process = Process()
    private let outURL: URL
    private let errURL: URL
    private let done = DispatchSemaphore(value: 0)
    private var finished: Int32?

    /// Starts `path` with `args` (stdin is /dev/null).
    public init(_ path: String, _ args: [String]) throws {
        let fm = FileManager.default
        let id = UUID().uuidString
        outURL = fm.temporaryDirectory.appendingPathComponent("sprof-bg-\(id).out")
        errURL = fm.temporaryDirectory.appendingPathComponent("sprof-bg-\(id).err")
        _ = fm.createFile(atPath: outURL.path, contents: nil)
        _ = fm.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        defer {
            try? out.close()
            try? err.close()
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        let done = self.done
        process.terminationHandler = { _ in done.signal() }
        do {
            try process.run()
        } catch {
            throw FixtureError("cannot run \(path): \(error)")
        }
    }

    deinit {
        // Never leave a spinning fixture behind, whatever the test did.
        if finished == nil && process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }

    /// The process id.
    public var pid: Int32 { process.processIdentifier }

    /// Sends `signal`.
    public func send(_ signal: Int32) { kill(pid, signal) }

    /// Waits up to `timeout` seconds (a safety limit, not a measurement) for the process to end and
    /// returns its status as a shell reports it (128 + N when signal N ended it). On timeout the
    /// process is killed with SIGKILL and the status is 137.
    @discardableResult
    public func wait(timeout: TimeInterval = 120) -> Int32 {
        if let finished { return finished }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            kill(pid, SIGKILL)
            done.wait()
        }
        let status = process.terminationReason == .uncaughtSignal ? 128 + process.terminationStatus : process.terminationStatus
        finished = status
        return status
    }

    /// What it wrote to stdout so far.
    public var stdout: String { String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self) }
    /// What it wrote to stderr so far.
    public var stderr: String { String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self) }
}

/// What /proc says about a process, for tests that wait on a process's progress rather than on a
/// clock: CPU time consumed, children, open perf events.
public enum ProcInfo {
    /// User + system CPU time of `pid` (all its threads) in clock ticks (normally 1/100 s), or nil
    /// when the process is gone.
    public static func cpuTicks(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
        return user + system
    }

    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    public static var ticksPerSecond: Int { Int(sysconf(Int32(_SC_CLK_TCK))) }

    /// The process's state letter (`R`, `S`, `Z`, …), or nil when it is gone.
    public static func state(_ pid: Int32) -> Character? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ").first?.first
    }

    /// True while `pid` exists and is not a zombie.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard let s = state(pid) else { return false }
        return s != "Z" && s != "X"
    }

    /// The command name (`/proc/PID/comm`).
    public static func comm(_ pid: Int32) -> String? {
        (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Direct children of `pid` (from every thread's `children` file).
    public static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var out: [Int32] = []
        for t in tasks {
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(t)/children", encoding: .utf8)) ?? ""
            out += text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        return out
    }

    /// How many perf events `pid` has open (descriptors linked to `anon_inode:[perf_event]`).
    public static func perfEventCount(_ pid: Int32) -> Int {
        let dir = "/proc/\(pid)/fd"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\($0)")) == "anon_inode:[perf_event]" }.count
    }

    /// Polls `condition` every 10 ms until it holds or `limit` seconds pass (a safety limit for a
    /// broken product, not a measurement). Returns whether it held.
    @discardableResult
    public static func waitUntil(limit: TimeInterval = 60, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(limit)
        while Date() < end {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }
}
