import Foundation
import Sprof
import SprofFormats
import SprofProfile
import SprofRecording

/// How one run of a job ended.
public struct RunOutcome: Sendable, Equatable {
    /// The profile was written (the run is browsable even when the command failed).
    public var profileWritten: Bool
    /// sprof's exit status: the command's own status passed through, 127 when the command was not
    /// found, 126 when it could not be executed, 2 for invalid options, 1 for sprof's own errors.
    public var exitStatus: Int32
    /// Why sprof wrote no profile: its last `sprof: …` line (its error); nil when it wrote one.
    public var lastMessage: String?
    /// Samples taken, from the profile's provenance (``ProfileStatistics/samples``).
    public var samples: UInt64?
    /// Samples and records lost, from the profile's provenance (``ProfileStatistics/lost``).
    public var lost: UInt64?
    /// sprof's notices, as `sprof run` prints them: every notice of the profile's provenance (an
    /// event it replaced, stacks cut short by the stack copy, files whose debug information could
    /// not be read), then the advice when samples were lost (``RecordingReport/lossAdvice``).
    public var notices: [String] = []

    /// Creates an outcome.
    public init(profileWritten: Bool, exitStatus: Int32, lastMessage: String? = nil, samples: UInt64? = nil, lost: UInt64? = nil) {
        self.profileWritten = profileWritten
        self.exitStatus = exitStatus
        self.lastMessage = lastMessage
        self.samples = samples
        self.lost = lost
    }
}

/// Runs one recording. The server's engine is ``SprofProcessEngine`` (the `sprof` binary as a
/// child process, so that a crash of a recording never takes the server down); tests can put a
/// fake behind this seam.
public protocol JobEngine: Sendable {
    /// Records `command` with `options` into `directory` (which exists), writing `profile.*` and
    /// `output.log` there, reporting progress as it comes.
    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome
    /// Stops the recording in progress, if any (Ctrl-C: the profile so far is still written).
    func cancel()
}

/// Runs `sprof run -o DIR/profile [--progress-fd 3] [options] -- command…` with stdin from
/// /dev/null and stdout and stderr (the command's and sprof's) into `DIR/output.log`.
public final class SprofProcessEngine: JobEngine, @unchecked Sendable {
    /// The `sprof` executable.
    public let sprofPath: String
    /// What it supports.
    public let capabilities: SprofCapabilities
    private let lock = NSLock()
    private var currentPID: pid_t = 0
    /// The run ``cancel()`` signalled already.
    private var signalledPID: pid_t = 0

    /// Creates an engine for the `sprof` at `sprofPath`.
    public init(sprofPath: String, capabilities: SprofCapabilities) {
        self.sprofPath = sprofPath
        self.capabilities = capabilities
    }

    /// Asks `sprof run --help` what this sprof supports.
    public static func capabilities(of sprofPath: String) -> SprofCapabilities {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: sprofPath)
        p.arguments = ["run", "--help"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return SprofCapabilities() }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return SprofCapabilities(helpText: String(decoding: data, as: UTF8.self))
    }

    /// The `sprof run` arguments for `options` (without the command).
    public func arguments(options: JobOptions, directory: String, progressFD: Int32?) -> [String] {
        var args = ["run", "-o", directory + "/profile"]
        if let fd = progressFD { args += ["--progress-fd", String(fd)] }
        if let e = options.event { args += ["-e", e] }
        if let f = options.frequency { args += ["-F", String(f)] }
        if let c = options.period { args += ["-c", String(c)] }
        if let g = options.callGraph { args += ["--call-graph", g] }
        if options.offCPU == true { args.append("--off-cpu") }
        if options.memory == true && capabilities.memory { args.append("--memory") }
        if capabilities.timeline { args.append("--timeline") }
        if options.heap == true { args.append("--heap") }
        return args
    }

    /// Cancelling the calling task stops the recording as ``cancel()`` does, also when it was
    /// cancelled before sprof started (then sprof gets SIGINT as soon as it runs).
    public func run(command: [String], options: JobOptions, directory: String,
                    progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        await withTaskCancellationHandler {
            await runSprof(command: command, options: options, directory: directory, progress: progress)
        } onCancel: {
            self.cancel()
        }
    }

    private func runSprof(command: [String], options: JobOptions, directory: String,
                          progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        let progressFD: Int32? = capabilities.progressFD ? 3 : nil
        let argv = [sprofPath] + arguments(options: options, directory: directory, progressFD: progressFD) + ["--"] + command
        let logPath = directory + "/output.log"
        var pipeFDs: [Int32] = [-1, -1]
        if progressFD != nil, pipe(&pipeFDs) == 0 {
            // Close-on-exec: only the dup2'd copy (fd 3) reaches sprof.
            for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        let started = DispatchTime.now().uptimeNanoseconds

        var pid: pid_t = 0
        let spawnError = spawn(argv, logPath: logPath, progressWrite: progressFD != nil ? pipeFDs[1] : nil, pid: &pid)
        if pipeFDs[1] >= 0 { close(pipeFDs[1]) }
        if spawnError != 0 {
            if pipeFDs[0] >= 0 { close(pipeFDs[0]) }
            return RunOutcome(profileWritten: false, exitStatus: 1,
                              lastMessage: "cannot start \(sprofPath): \(String(cString: strerror(spawnError)))")
        }
        lock.withLock { currentPID = pid }
        // A cancel before this point found no process to signal: it is this one's now.
        if Task.isCancelled { cancel() }
        let child = pid

        // Progress: sprof's JSON lines when it has --progress-fd, else the elapsed time from here.
        let reader: Thread?
        let ticker: Task<Void, Never>?
        if progressFD != nil {
            let fd = pipeFDs[0]
            reader = Thread {
                var pending = Data()
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = read(fd, &buffer, buffer.count)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    pending.append(contentsOf: buffer[0..<n])
                    while let nl = pending.firstIndex(of: 0x0a) {
                        let line = pending[pending.startIndex..<nl]
                        pending = Data(pending[(nl + 1)...])
                        if let p = try? JSONDecoder().decode(JobProgress.self, from: line) { progress(p) }
                    }
                }
                close(fd)
            }
            reader?.start()
            ticker = nil
        } else {
            reader = nil
            ticker = Task {
                while !Task.isCancelled {
                    progress(JobProgress(elapsedNs: DispatchTime.now().uptimeNanoseconds - started))
                    try? await Task.sleep(nanoseconds: 500_000_000)
                }
            }
        }

        // output.log is cut to its first and last MiBs while the command writes it, and once more at its end.
        let logEnded = DispatchSemaphore(value: 0), logCut = DispatchSemaphore(value: 0)
        Thread {
            var log = OutputLog.standard
            while logEnded.wait(timeout: .now() + .milliseconds(200)) == .timedOut { log.cut(logPath) }
            log.cut(logPath, final: true)
            logCut.signal()
        }.start()
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread {
                var raw: Int32 = 0
                while waitpid(child, &raw, 0) < 0 && errno == EINTR {}
                logEnded.signal()
                logCut.wait()
                // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as macros.
                let signal = raw & 0x7f
                continuation.resume(returning: signal == 0 ? (raw >> 8) & 0xff : 128 + signal)
            }.start()
        }
        lock.withLock { currentPID = 0; signalledPID = 0 }
        ticker?.cancel()
        if ticker != nil {
            progress(JobProgress(elapsedNs: DispatchTime.now().uptimeNanoseconds - started))
        }
        return Self.outcome(status: status, directory: directory, heap: options.heap == true)
    }

    /// The advice `sprof run` prints when samples were lost, made from the profile's provenance:
    /// its stack mode and rate, and the ring buffers `sprof run` chose for them on this machine
    /// (the server passes no `-m`; a heap job's are the heap's).
    static func lossAdvice(_ metadata: ProfileMetadata, heap: Bool) -> String? {
        var options = RunOptions()
        switch metadata.callGraph {
        case "fp": options.callGraph = .framePointer
        case "none": options.callGraph = .none
        default: options.callGraph = .dwarf(stackSize: metadata.stackSize.map { UInt32(clamping: $0) } ?? SamplingOptions.defaultDwarfStackSize)
        }
        switch metadata.rate {
        case .frequency(let hz)?: options.rate = .frequency(hz)
        case .period(let n)?: options.rate = .period(n)
        case nil: break
        }
        if heap { options.heap = HeapOptions() }
        return RecordingReport.lossAdvice(metadata.statistics, callGraph: options.callGraph, ringPages: options.effectiveRingPages())
    }

    /// Merges `runs/1…N/profile.pb.gz` of a job into `jobDirectory/profile.pb.gz`, whose samples
    /// carry their run number (pprof label `run`), as `sprof run -r N` writes one. Runs without
    /// a readable profile are left out (the others keep their numbers' order); nothing is
    /// written when none is readable. Returns whether the file was written.
    @discardableResult
    /// With `lastIsPartial`, the last run was cut short by a Stop: its samples are kept without
    /// a run label, as `sprof run -r N` keeps the run its Ctrl-C cut (``Profile/init(runs:lastIsPartial:)``).
    static func mergeRuns(jobDirectory: String, runs: Int, lastIsPartial: Bool = false) -> Bool {
        let profiles = (1...max(1, runs)).compactMap { run -> Profile? in
            guard let data = FileManager.default.contents(atPath: "\(jobDirectory)/runs/\(run)/profile.pb.gz") else { return nil }
            return try? PprofFormat.decode([UInt8](data))
        }
        guard !profiles.isEmpty, let bytes = try? PprofFormat.encode(Profile(runs: profiles, lastIsPartial: lastIsPartial)) else { return false }
        return (try? DataFiles.writeAtomically(Data(bytes), to: jobDirectory + "/profile.pb.gz")) != nil
    }

    public func cancel() {
        let pid: pid_t = lock.withLock {
            // sprof forwards SIGINT to the command and still writes the profile gathered so far.
            // Once per run: a stop reaches here both directly and through the run's task, and a
            // second SIGINT would reach the command too.
            guard currentPID > 0, signalledPID != currentPID else { return 0 }
            kill(currentPID, SIGINT)
            signalledPID = currentPID
            return currentPID
        }
        guard pid > 0 else { return }
        // A command that ignores SIGINT (or takes long to end) must not hold a stop, a delete or
        // a shutdown up, nor lose the recording: after 5 s, two more signals make sprof end the
        // command with SIGKILL (its third) and write the profile; only a sprof that is still
        // there 60 s later goes with its whole process group. SIGTERM and SIGHUP, not two more
        // SIGINTs: a signal sent while the same one is still pending (a loaded machine) merges
        // with it and would count once.
        DispatchQueue.global().asyncAfter(deadline: .now() + 5) { [weak self] in
            guard let self, self.lock.withLock({ self.currentPID == pid }) else { return }
            kill(pid, SIGTERM)
            kill(pid, SIGHUP)
            DispatchQueue.global().asyncAfter(deadline: .now() + 60) { [weak self] in
                guard let self, self.lock.withLock({ self.currentPID == pid }) else { return }
                kill(-pid, SIGKILL)
            }
        }
    }

    /// Reads what a finished run left in `directory`: counts, losses and notices from the
    /// profile's provenance (the model, never the log). Only when no profile was written does
    /// the reason come from sprof's last `sprof: …` line in `output.log`, since there is no
    /// profile to carry it.
    static func outcome(status: Int32, directory: String, heap: Bool = false) -> RunOutcome {
        let fm = FileManager.default
        let written = ProfileFiles.kinds.contains { fm.fileExists(atPath: directory + "/profile" + $0) }
        var outcome = RunOutcome(profileWritten: written, exitStatus: status)
        if written, let run = try? ProfileFiles.load(runDirectory: directory) {
            let metadata = run.profile.metadata
            if metadata.isRecording {
                outcome.samples = UInt64(max(0, metadata.statistics.samples))
                outcome.lost = metadata.statistics.lost
            }
            outcome.notices = metadata.notices
            if let advice = lossAdvice(metadata, heap: heap) { outcome.notices.append(advice) }
        } else if !written, let log = fm.contents(atPath: directory + "/output.log") {
            let text = String(decoding: log.suffix(64 * 1024), as: UTF8.self)
            let last = text.split(separator: "\n").last { $0.hasPrefix("sprof: ") }
            outcome.lastMessage = last.map { String($0.dropFirst(7)) }
        }
        if status == 127 { outcome.lastMessage = outcome.lastMessage ?? "command not found" }
        return outcome
    }

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34) is a GNU extension the Glibc
    /// module does not import: found with dlsym. Without it, every descriptor from `lowest` up is
    /// marked close-on-exec here instead (a descriptor opened by another thread meanwhile can
    /// still slip through, which closefrom in the child rules out).
    static func closeFrom(_ actions: inout posix_spawn_file_actions_t, _ lowest: Int32) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np"),
           unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, lowest) == 0 {
            return
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in names.compactMap({ Int32($0) }) where fd >= lowest {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    private func spawn(_ argv: [String], logPath: String, progressWrite: Int32?, pid: inout pid_t) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Appended to, so that the server can cut the log from outside (``OutputLog``).
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        if let w = progressWrite { posix_spawn_file_actions_adddup2(&actions, w, 3) }
        // sprof gets 0, 1, 2 (and 3 for progress), nothing else: SwiftNIO's listening socket,
        // epoll descriptors and socketpairs are not close-on-exec, and a job that inherits the
        // listening socket can accept() the server's requests (tokens included) or keep the port
        // after the server ends.
        Self.closeFrom(&actions, progressWrite != nil ? 4 : 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // Its own process group: a Ctrl-C meant for the server does not reach a recording, and
        // the server stops a recording with SIGINT to sprof alone (which forwards it).
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attr, 0)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attr, &defaults)

        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        return posix_spawn(&pid, argv[0], &actions, &attr, &cArgs, environ)
    }
}
