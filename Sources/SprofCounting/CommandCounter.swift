#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore
import SprofRecording

/// What one counted run of a command (or one attach session) produced.
public struct CountedRun: Sendable {
    /// One value per event, in the order of the groups given.
    public var values: [CounterValue]
    /// Wall-clock seconds from exec (or attach) to exit (or Ctrl-C).
    public var elapsedSeconds: Double
    /// User CPU seconds of the command and its waited-for children (nil when attached with `-p`).
    public var userSeconds: Double?
    /// System CPU seconds, likewise.
    public var systemSeconds: Double?
    /// How the command ended (nil when attached to a process we did not start).
    public var exitStatus: ExitStatus?
    /// True when Ctrl-C (or SIGTERM/SIGHUP/SIGQUIT) ended the run.
    public var interrupted: Bool

    /// Creates a run (tests build synthetic ones).
    public init(values: [CounterValue], elapsedSeconds: Double, userSeconds: Double? = nil, systemSeconds: Double? = nil,
                exitStatus: ExitStatus? = .exited(0), interrupted: Bool = false) {
        self.values = values
        self.elapsedSeconds = elapsedSeconds
        self.userSeconds = userSeconds
        self.systemSeconds = systemSeconds
        self.exitStatus = exitStatus
        self.interrupted = interrupted
    }
}

/// Counts events for a command and every process and thread it creates, or for a running process:
/// the engine behind `sprof stat`.
public enum CommandCounter {
    /// Runs `arguments` once with `groups` counting from exec to exit (`inherit` covers children
    /// and threads; nothing of sprof's own fork/exec stub is counted). Ctrl-C reaches the command;
    /// the counts gathered so far are returned.
    ///
    /// - Throws: ``LaunchError`` when the command cannot be run (exit status 127/126),
    ///   `SyscallError` when the kernel refuses the events (with the paranoid fix in its hint).
    public static func count(_ arguments: [String], groups: [CounterGroup]) throws -> CountedRun {
        let settings = KernelSettings.current()
        let command = try WaitingCommand(arguments: arguments)
        let counters: OpenCounters
        do {
            counters = try OpenCounters(groups: groups,
                                        attachment: .init(tids: [command.pid], inherit: true, enableOnExec: true),
                                        settings: settings)
        } catch {
            command.cancel()
            throw error
        }
        let usageBefore = childrenUsage()
        command.forwardSignals()
        defer { command.stopForwardingSignals() }
        let started = monotonicSeconds()
        try command.start()
        let status = command.wait()
        let elapsed = monotonicSeconds() - started
        let usageAfter = childrenUsage()
        let values = counters.read()
        let interrupted: Bool
        if case .signaled(let s) = status, s == SIGINT || s == SIGTERM || s == SIGHUP || s == SIGQUIT { interrupted = true } else { interrupted = false }
        return CountedRun(values: values, elapsedSeconds: elapsed,
                          userSeconds: usageAfter.user - usageBefore.user,
                          systemSeconds: usageAfter.system - usageBefore.system,
                          exitStatus: status, interrupted: interrupted)
    }

    /// Attaches to process `pid`: one event per existing thread (each inheriting into threads and
    /// children created later), counting until the process exits or Ctrl-C (SIGINT, SIGTERM,
    /// SIGHUP, SIGQUIT), whichever comes first. The process itself is left alone.
    ///
    /// - Throws: `SyscallError` with errno ESRCH when there is no such process, or when the kernel
    ///   refuses the events.
    public static func attach(pid: Int32, groups: [CounterGroup]) throws(SyscallError) -> CountedRun {
        let tids = threadIDs(of: pid)
        guard !tids.isEmpty, kill(pid, 0) == 0 || errno == EPERM else {
            throw SyscallError(call: "attach", errno: ESRCH, hint: "no process \(pid) (check the pid with 'ps')")
        }
        let settings = KernelSettings.current()
        let counters = try OpenCounters(groups: groups, attachment: .init(tids: tids, inherit: true, enableOnExec: false),
                                        settings: settings)
        // A pidfd becomes readable when the process exits, also for a process that is not our child.
        let exitFD = try InterruptForwarding.exitDescriptor(of: pid)
        defer { close(exitFD) }
        // pid 0: no one to forward to; the handler writes the eventfd, which wakes the poll below.
        let signalFD = try sysCall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC)) }
        defer { close(signalFD) }
        InterruptForwarding.install(notifying: signalFD)
        defer { InterruptForwarding.restore() }
        let started = monotonicSeconds()
        try counters.enable()
        var interrupted = false
        var fds = [pollfd(fd: exitFD, events: Int16(POLLIN), revents: 0), pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let n = poll(&fds, 2, -1)
            if n < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 { interrupted = true; break }
            if n != 0 { break }
        }
        let elapsed = monotonicSeconds() - started
        try? counters.disable()
        return CountedRun(values: counters.read(), elapsedSeconds: elapsed, exitStatus: nil, interrupted: interrupted)
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// User and system seconds of all waited-for children so far (wait4's rusage, accumulated).
    static func childrenUsage() -> (user: Double, system: Double) {
        var usage = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return (seconds(usage.ru_utime), seconds(usage.ru_stime))
    }
}
