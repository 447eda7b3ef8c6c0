#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// How a command ended, and the status a shell would report for it.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    /// Normal exit with a code.
    case exited(Int32)
    /// Killed by a signal.
    case signaled(Int32)

    /// `code`, or 128+N for signal N, as shells report it.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let c): return c
        case .signaled(let s): return 128 + s
        }
    }

    /// Decodes a `waitpid(2)` status of a child that ended (not one that stopped: the launcher
    /// waits without WUNTRACED). Linux's layout, which glibc's WIFSIGNALED/WTERMSIG/WEXITSTATUS
    /// macros read: the terminating signal in the low 7 bits (0 for a normal exit, where bits
    /// 8-15 hold the code).
    init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal != 0 && signal != 0x7f ? .signaled(signal) : .exited((status >> 8) & 0xff)
    }

    /// `exit 3` or `killed by signal 9 (Killed)`.
    public var description: String {
        switch self {
        case .exited(let c): return "exit \(c)"
        case .signaled(let s): return "killed by signal \(s) (\(String(cString: strsignal(s))))"
        }
    }
}

/// Where exec looks for a program named without a `/`: the one search both `sprof run`'s
/// checks and `sprof serve`'s form use, so that they agree with each other and with execvp.
public enum ProgramSearch {
    /// The search path when PATH is unset: glibc's execvp default.
    public static let defaultPath = "/bin:/usr/bin"

    /// The files exec would try for `program`, in order: itself when it contains a `/`, else
    /// each non-empty directory of `path` (colon-separated; nil: this process's PATH) joined
    /// with it.
    public static func candidates(for program: String, path: String? = nil) -> [String] {
        if program.contains("/") { return [program] }
        let search = path ?? getenv("PATH").map { String(cString: $0) } ?? defaultPath
        return search.split(separator: ":").filter { !$0.isEmpty }.map { "\($0)/\(program)" }
    }
}

/// The command could not be started.
public struct LaunchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The command as given.
    public var command: String
    /// errno from exec.
    public var errno: Int32
    /// The error exec gave (or would give, for `sprof serve`'s check of a job's command before
    /// it runs) for `command`.
    public init(command: String, errno: Int32) {
        self.command = command
        self.errno = errno
    }
    /// 127 when not found, 126 when not executable (EACCES, EISDIR for a directory, ENOEXEC), as
    /// shells do.
    public var exitStatus: Int32 { errno == ENOENT || errno == ENOTDIR ? 127 : 126 }
    /// One line for the user.
    public var description: String {
        let command = ArgumentBytes.displayed(self.command)
        switch errno {
        case ENOENT, ENOTDIR:
            return command.contains("/")
                ? "\(command): no such file (check the path)"
                : "\(command): command not found (check the name or your PATH)"
        case EISDIR: return "\(command): is a directory, not a program"
        case EACCES: return "\(command): permission denied (is it executable? try chmod +x)"
        case ENOEXEC: return "\(command): not an executable format (a script needs a #! line)"
        default: return "\(command): cannot execute: \(String(cString: strerror(errno)))"
        }
    }
}

/// A forked child that waits on a pipe before exec, so events can be attached with
/// `enable_on_exec` and nothing of the profiler's own fork/exec stub is counted.
public final class WaitingCommand: @unchecked Sendable {
    /// The child's pid.
    public let pid: Int32
    /// The command line.
    public let arguments: [String]
    private var goFD: Int32
    private let errFD: Int32
    private var reaped: ExitStatus?
    /// The largest resident set the command had, in bytes, once it has been waited for: the
    /// kernel's high-water mark (`ru_maxrss` of wait4(2)), which also covers the descendants it
    /// waited for. A reading of /proc misses the peak of a process that lives between two
    /// readings; this does not. nil before ``wait()``, when the child never ran the command, or
    /// when the mark is no higher than the forked child's own before exec (which it may be).
    public private(set) var peakResidentBytes: UInt64?
    /// The forked child's own high-water mark before exec (a copy of the profiler's mappings):
    /// exec carries it into `ru_maxrss`, so a peak no higher than this may be the profiler's,
    /// not the command's (a 1.6 MB program was reported at 6.6 MiB).
    private var preExecPeak: UInt64?

    /// Forks the child; it blocks until ``start()``.
    ///
    /// - Parameter environment: the command's whole environment as `NAME=value` entries, handed
    ///   to exec; nil: sprof's own.
    public init(arguments: [String], environment: [String]? = nil) throws(SyscallError) {
        precondition(!arguments.isEmpty, "no command")
        self.arguments = arguments
        // The original argv bytes (see ArgumentBytes): a non-UTF-8 path or argument reaches exec intact.
        var cArgs: [UnsafeMutablePointer<CChar>?] = arguments.map { ArgumentBytes.cString($0) }
        cArgs.append(nil)
        defer { for p in cArgs { p?.deallocate() } }
        var cEnv: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { ArgumentBytes.cString($0) } + [nil] }
        defer { cEnv?.forEach { $0?.deallocate() } }
        var go: Int32 = -1, err: Int32 = -1
        let pid = try sysCall("fork") {
            if cEnv == nil { return csprof_spawn_waiting(cArgs[0], cArgs, nil, &go, &err) }
            return cEnv!.withUnsafeMutableBufferPointer { csprof_spawn_waiting(cArgs[0], cArgs, $0.baseAddress, &go, &err) }
        }
        self.pid = pid
        self.goFD = go
        self.errFD = err
    }

    /// Lets the child exec. Throws when exec failed (the child has exited; it is reaped here).
    public func start() throws(LaunchError) {
        preExecPeak = Self.highWaterMark(of: pid)
        var byte: UInt8 = 1
        _ = try? sysCall("write") { write(goFD, &byte, 1) }
        close(goFD)
        goFD = -1
        var code: Int32 = 0
        let n = (try? sysCall("read") { read(errFD, &code, MemoryLayout<Int32>.size) }) ?? 0
        close(errFD)
        if n == MemoryLayout<Int32>.size {
            _ = wait()
            // exec says EACCES for a directory, whose usual advice (chmod +x) would be wrong.
            var st = stat()
            let path = ArgumentBytes.cString(arguments[0])
            defer { path.deallocate() }
            if code == EACCES, arguments[0].contains("/"), stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR {
                code = EISDIR
            }
            throw LaunchError(command: arguments[0], errno: code)
        }
    }

    /// Cancels before exec: the child exits without running the command.
    public func cancel() {
        if goFD >= 0 { close(goFD); goFD = -1 }
        close(errFD)
        _ = wait()
    }

    /// Waits for the child (idempotent).
    @discardableResult
    public func wait() -> ExitStatus {
        if let reaped { return reaped }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let result = ExitStatus(waitStatus: status)
        reaped = result
        // The pages the child touches between the reading and exec: a few, at most.
        let margin: UInt64 = 512 * 1024
        if usage.ru_maxrss > 0, UInt64(usage.ru_maxrss) * 1024 > (preExecPeak ?? 0) + margin {
            peakResidentBytes = UInt64(usage.ru_maxrss) * 1024
        }
        return result
    }

    /// VmHWM of `/proc/PID/status`, in bytes; nil when it cannot be read.
    static func highWaterMark(of pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              // `VmHWM:\t    6872 kB`: a tab, then spaces only while the number is short.
              let kib = UInt64(line.dropFirst(6).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") else { return nil }
        return kib * 1024
    }

    /// A descriptor that becomes readable when the child exits.
    func exitDescriptor() throws(SyscallError) -> Int32 {
        try sysCall("pidfd_open") { csprof_pidfd_open(pid) }
    }

    /// Forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to the child until ``stopForwardingSignals()``,
    /// so Ctrl-C stops the command while the profiler lives on to write what it gathered.
    public func forwardSignals() { InterruptForwarding.install(forwardingTo: pid) }

    /// ``forwardSignals()`` for a caller that has caught signals since
    /// ``InterruptForwarding/install(forwardingTo:notifying:)`` (while it opened its events): one
    /// that already arrived is passed on now, so it ends the command (before its exec, it ends
    /// the waiting child, and the command reports that signal) rather than being lost.
    public func forwardCaughtSignals() {
        let earlier = InterruptForwarding.route(forwardingTo: pid)
        if earlier != 0 { kill(pid, earlier) }
    }

    /// Restores default signal handling.
    public func stopForwardingSignals() { InterruptForwarding.restore() }
}

/// Routes SIGINT, SIGTERM, SIGHUP and SIGQUIT to a recording or counting loop instead of killing
/// the profiler, so that Ctrl-C ends an attached session and what was gathered is still reported.
/// The handler lives in the C shim (it must be async-signal-safe); this is its only Swift door.
public enum InterruptForwarding {
    /// From now on those signals are forwarded to `pid` (when > 0) and announced by writing 8
    /// bytes to `notifyFD` (an eventfd the caller polls; -1 for none).
    public static func install(forwardingTo pid: Int32 = 0, notifying notifyFD: Int32 = -1) {
        csprof_install_signal_forwarding(pid, notifyFD)
    }

    /// Points the signals caught since ``install(forwardingTo:notifying:)`` at `pid` and
    /// `notifyFD` instead (installing the handler if it is not), without forgetting one that
    /// already arrived. Returns that signal's number, 0 when none came: a recording that starts
    /// catching before it opens its events (which takes a while with `-p` on many threads, or
    /// `-a`) learns here of a Ctrl-C that came while it opened them, and stops at once.
    public static func route(forwardingTo pid: Int32 = 0, notifying notifyFD: Int32 = -1) -> Int32 {
        csprof_route_signals(pid, notifyFD)
    }

    /// Restores default dispositions (unless ``keepCatchingAfterRecording()`` was called: then the
    /// handler stays, forwarding nowhere).
    public static func restore() { csprof_restore_default_signals() }

    /// From now on, ``restore()`` leaves the handler in place, forwarding nowhere: SIGINT, SIGTERM,
    /// SIGHUP and SIGQUIT that come after a recording are noted (``lastSignal``) and dropped. For a
    /// process that writes its outputs after recording (`sprof run`): a second Ctrl-C, or the
    /// signals with which `sprof serve`'s Stop ends a command that ignored its SIGINT, must not
    /// leave a profile half-written; with default dispositions restored in between, one arriving
    /// between the recording's end and the writes killed it.
    public static func keepCatchingAfterRecording() { csprof_keep_catching_signals() }

    /// The signal number that last arrived since ``install(forwardingTo:notifying:)`` (kept after
    /// ``restore()``), or 0 when none did: how `sprof run -p` knows Ctrl-C ended its recording, so
    /// that it exits 128+N as an interrupted command does.
    public static var lastSignal: Int32 { csprof_last_forwarded_signal() }

    /// A descriptor that becomes readable when process `pid` exits (pidfd_open).
    public static func exitDescriptor(of pid: Int32) throws(SyscallError) -> Int32 {
        try sysCall("pidfd_open", hint: { _ in "process \(pid) is gone" }) { csprof_pidfd_open(pid) }
    }
}
