import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A program started in the background, for tests that signal it or attach to it while it runs
/// (Ctrl-C, `-p PID`). Its stdout and stderr go to files (no pipe to fill up and block it).
///
/// Started with posix_spawn and reaped with waitpid, not with Foundation's `Process`: `Process`
/// learns of the end of a child through a descriptor the child's own children inherit, so a
/// command orphaned by a broken sprof (the very breakage these tests look for) would make it wait
/// forever. The child leads a process group of its own, so that a timeout can kill what it started.
public final class BackgroundProcess {
    /// The process id.
    public let pid: Int32
    private let outPath: String
    private let errPath: String
    private let inPath: String?
    private var finished: Int32?

    /// Starts `path` with `args`. stdin is /dev/null, or a file holding `input`; `environment` is
    /// the child's whole environment (nil: this process's).
    public init(_ path: String, _ args: [String], environment: [String: String]? = nil,
                currentDirectory: String? = nil, input: String? = nil) throws {
        let fm = FileManager.default
        let base = fm.temporaryDirectory.appendingPathComponent("sprof-bg-\(UUID().uuidString)").path
        outPath = base + ".out"
        errPath = base + ".err"
        if let input {
            inPath = base + ".in"
            _ = fm.createFile(atPath: base + ".in", contents: Data(input.utf8))
        } else {
            inPath = nil
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inPath ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Default dispositions and an empty mask, whatever the test runner set: the programs under
        // test must meet signals as they would from a shell.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        // glibc's posix_spawn_file_actions_addchdir_np is not visible to Swift: env -C changes directory.
        let command = currentDirectory.map { ["/usr/bin/env", "-C", $0, path] } ?? [path]
        let argv = (command + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let envStrings = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let envp = envStrings.map { strdup($0) } + [nil]
        defer { for e in envp { free(e) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, command[0], &actions, &attr, argv, envp)
        guard rc == 0 else { throw FixtureError("cannot run \(path): \(String(cString: strerror(rc)))") }
        pid = child
    }

    deinit {
        // Never leave a spinning fixture behind, whatever the test did.
        if finished == nil {
            kill(pid, SIGKILL)
            wait()
        }
        for path in [outPath, errPath] + (inPath.map { [$0] } ?? []) { unlink(path) }
    }

    /// Sends `signal` to the process (not to its group).
    public func send(_ signal: Int32) { if finished == nil { kill(pid, signal) } }

    /// Waits up to `timeout` seconds (a safety limit, not a measurement) for the process to end and
    /// returns its status as a shell reports it (128 + N when signal N ended it). On timeout its
    /// whole process group (it and whatever it started) is killed with SIGKILL: status 137.
    @discardableResult
    public func wait(timeout: TimeInterval = 120) -> Int32 {
        if let finished { return finished }
        let end = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { status = 0x7f00; break }  // not ours to reap: report 127
            if Date() >= end {
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                break
            }
            usleep(5_000)
        }
        let signaled = status & 0x7f != 0 && status & 0x7f != 0x7f
        let result = signaled ? 128 + (status & 0x7f) : (status >> 8) & 0xff
        finished = result
        return result
    }

    /// What it wrote to stdout so far.
    public var stdout: String { String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self) }
    /// What it wrote to stderr so far.
    public var stderr: String { String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self) }
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

    /// Whether `pid` has a handler installed for `signal` (its bit in `SigCgt`, /proc/PID/status).
    public static func catches(_ signal: Int32, _ pid: Int32) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
              let mask = UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
        return mask & (1 << UInt64(signal - 1)) != 0
    }

    /// The number of threads of `pid` (`Threads:` in /proc/PID/status), 0 when it is gone.
    public static func threadCount(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Threads:") }) else { return 0 }
        return Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) ?? 0
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
