import Foundation
import SprofRecording

/// The recording options of a job: the options of `sprof run` that the form and `POST /api/jobs`
/// accept. JSON keys: `event`, `frequency`, `period`, `call_graph`, `off_cpu`, `memory`, `heap`, `repeat`.
public struct JobOptions: Codable, Sendable, Equatable {
    /// Event to sample, as `sprof run -e` spells it (`cpu-clock`, `page-faults`, `cycles:u`); nil: cpu-clock.
    public var event: String?
    /// Samples per second (`-F`); nil with no period: sprof's default, 999 Hz.
    public var frequency: Int?
    /// One sample every N events (`-c`).
    public var period: UInt64?
    /// `dwarf[,SIZE]`, `fp` or `none` (`--call-graph`); nil: dwarf.
    public var callGraph: String?
    /// Record off-CPU and wall-clock time (`--off-cpu`).
    public var offCPU: Bool?
    /// Sample resident memory over time (`--memory`, when this sprof has it).
    public var memory: Bool?
    /// Also record a heap profile (`--heap`: allocations sampled by bytes, in use and leaked at
    /// exit), shown in the Memory tab. Needs a server running as root (uprobes need CAP_SYS_ADMIN).
    public var heap: Bool?
    /// Runs of the command, each kept as a run of its own (1 to ``maxRepeat``).
    public var `repeat`: Int?

    /// The most runs one job may ask for.
    public static let maxRepeat = 20

    enum CodingKeys: String, CodingKey, CaseIterable {
        case event, frequency, period
        case callGraph = "call_graph"
        case offCPU = "off_cpu"
        case memory
        case heap
        case `repeat`
    }

    /// Creates options; every field defaults to what `sprof run` does without the option.
    public init(event: String? = nil, frequency: Int? = nil, period: UInt64? = nil, callGraph: String? = nil,
                offCPU: Bool? = nil, memory: Bool? = nil, heap: Bool? = nil, repeat: Int? = nil) {
        self.event = event
        self.frequency = frequency
        self.period = period
        self.callGraph = callGraph
        self.offCPU = offCPU
        self.memory = memory
        self.heap = heap
        self.repeat = `repeat`
    }

    /// Number of runs (at least 1).
    public var runs: Int { max(1, `repeat` ?? 1) }
}

/// A job's life: `queued` → `running` → `done` | `failed`; `interrupted` when the server stopped
/// (or crashed) while it ran. The raw values are the API's `"state"` strings.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued, running, done, failed, interrupted

    /// True once the job will not change any more.
    public var isFinal: Bool { self == .done || self == .failed || self == .interrupted }
}

/// Live figures of a recording, as `sprof run --progress-fd` reports them (JSON keys as there).
public struct JobProgress: Codable, Sendable, Equatable {
    /// Nanoseconds since the run started.
    public var elapsedNs: UInt64?
    /// Samples so far.
    public var samples: UInt64?
    /// Samples lost so far.
    public var lost: UInt64?
    /// Processes followed so far.
    public var processes: Int?
    /// Threads followed so far.
    public var threads: Int?
    /// The largest resident set size of a followed process, in bytes.
    public var peakRSSBytes: UInt64?
    /// Which run of the job (1-based) the figures are for.
    public var run: Int?

    enum CodingKeys: String, CodingKey {
        case elapsedNs = "elapsed_ns", samples, lost, processes, threads
        case peakRSSBytes = "peak_rss_bytes", run
    }

    /// Creates progress figures.
    public init(elapsedNs: UInt64? = nil, samples: UInt64? = nil, lost: UInt64? = nil, processes: Int? = nil,
                threads: Int? = nil, peakRSSBytes: UInt64? = nil, run: Int? = nil) {
        self.elapsedNs = elapsedNs
        self.samples = samples
        self.lost = lost
        self.processes = processes
        self.threads = threads
        self.peakRSSBytes = peakRSSBytes
        self.run = run
    }
}

/// One job, as `GET /api/jobs/ID` shows it and as `DIR/jobs/ID/state.json` keeps it.
/// Times are milliseconds since the Unix epoch.
public struct Job: Codable, Sendable, Equatable {
    /// `[0-9a-z-]`, at most 64 characters (``JobID/isValid(_:)``).
    public var id: String
    /// The command and its arguments.
    public var command: [String]
    /// Recording options.
    public var options: JobOptions
    /// Where the job is in its life.
    public var state: JobState
    /// Why the job failed or was interrupted, one line; nil otherwise.
    public var error: String?
    /// When the job was created.
    public var createdMs: Int64
    /// When its first run started.
    public var startedMs: Int64?
    /// When it ended.
    public var finishedMs: Int64?
    /// Runs finished (each in `runs/N/`).
    public var runsDone: Int
    /// The command's exit status in the last run (sprof passes it through; 128+N for signal N).
    public var exitStatus: Int32?
    /// Samples of the last finished run.
    public var samples: UInt64?
    /// Lost samples of the last finished run.
    public var lost: UInt64?
    /// The latest progress figures.
    public var progress: JobProgress?
    /// Notices about the job (an option this sprof cannot honour, the command's exit status).
    public var notices: [String]

    enum CodingKeys: String, CodingKey {
        case id, command, options, state, error
        case createdMs = "created_ms", startedMs = "started_ms", finishedMs = "finished_ms"
        case runsDone = "runs_done", exitStatus = "exit_status", samples, lost, progress, notices
    }

    /// A new queued job.
    public init(id: String, command: [String], options: JobOptions, createdMs: Int64) {
        self.id = id
        self.command = command
        self.options = options
        self.state = .queued
        self.createdMs = createdMs
        self.runsDone = 0
        self.notices = []
    }
}

/// What a job is created from: the body of `POST /api/jobs`, kept as `DIR/jobs/ID/spec.json`.
public struct JobSpec: Codable, Sendable, Equatable {
    /// The command and its arguments (argv; no shell).
    public var command: [String]
    /// Recording options; missing means all defaults.
    public var options: JobOptions?

    /// Creates a spec.
    public init(command: [String], options: JobOptions? = nil) {
        self.command = command
        self.options = options
    }
}

/// Job identifiers: generated here, checked on every request so that no id can name a path
/// outside `DIR/jobs/`.
public enum JobID {
    /// A new id: creation time in UTC plus random hex, so that ids sort by creation
    /// (`20261129-153000-1a2b3c`).
    public static func make(now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let random = String(generator.next() & 0xff_ffff, radix: 16)
        let padded = String(repeating: "0", count: 6 - random.count) + random
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: now) + "-" + padded
    }

    /// True for 1 to 64 characters of `0-9`, `a-z` and `-`, not starting with `-` (so no `.`, `/`, `..`).
    public static func isValid(_ id: String) -> Bool {
        guard (1...64).contains(id.utf8.count), id.first != "-" else { return false }
        return id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x7a) || $0 == 0x2d }
    }
}

/// A refusal with an HTTP status: the API answers it as `{"error": message}`, the page shows the message.
public struct ServeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// HTTP status code (4xx for the caller's mistakes).
    public var status: Int
    /// One line: what is wrong and how to fix it.
    public var message: String
    /// Creates an error.
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}

/// Checks a spec before it is queued, with the one-line messages of `sprof run` where the CLI has
/// one (the job still runs the real `sprof run`, which has the last word).
public struct JobValidator: Sendable {
    /// What the `sprof` binary in use supports (from `sprof run --help`).
    public var capabilities: SprofCapabilities
    /// `PATH` used to look commands up, as execvp would.
    public var searchPath: String

    /// Creates a validator.
    public init(capabilities: SprofCapabilities, searchPath: String = ProcessInfo.processInfo.environment["PATH"] ?? ProgramSearch.defaultPath) {
        self.capabilities = capabilities
        self.searchPath = searchPath
    }

    /// Validates `spec`; returns the options with defaults filled in.
    /// - Throws: ``ServeError`` 400 for invalid options or an empty command, 422 for a command not
    ///   found, a directory or a file without execute permission (the CLI's lines, ``LaunchError``).
    public func validate(_ spec: JobSpec) throws -> JobOptions {
        guard let program = spec.command.first, !program.isEmpty else {
            throw ServeError(400, "no command given: \"command\" must be a non-empty array, e.g. [\"/bin/ls\", \"-l\"]")
        }
        if let bad = spec.command.firstIndex(where: { $0.contains("\0") }) {
            throw ServeError(400, "command argument \(bad) holds a NUL byte, which no program argument can carry")
        }
        guard spec.command.count <= 256, spec.command.allSatisfy({ $0.utf8.count <= 4096 }) else {
            throw ServeError(400, "command too long: at most 256 arguments of 4096 bytes each")
        }
        var o = spec.options ?? JobOptions()
        if let e = o.event {
            // `none` is the CLI's heap-only recording (`--heap -e none`), nothing without --heap.
            if e == "none" {
                guard o.heap == true else { throw ServeError(400, "-e none records nothing without --heap: add \"heap\": true, or name an event") }
            } else {
                // The CLI's line, which names the event itself ("-e cpu clock: unknown event 'cpu
                // clock'…" read as an event with modifiers).
                do { _ = try EventCatalog.parse(e) } catch { throw ServeError(400, error.description) }
            }
        }
        switch (o.frequency, o.period) {
        case (.some, .some): throw ServeError(400, "use either -F (frequency) or -c (period), not both")
        case (.some(let hz), nil) where hz <= 0:
            throw ServeError(400, "-F \(hz): the frequency must be a positive number of samples per second")
        case (nil, .some(0)): throw ServeError(400, "-c 0: the period must be at least 1")
        default: break
        }
        if let cg = o.callGraph {
            let parts = cg.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            guard ["dwarf", "fp", "none"].contains(parts[0]) else {
                throw ServeError(400, "--call-graph \(cg): unknown mode; valid modes: fp, dwarf[,SIZE], none")
            }
            if parts.count == 2 {
                guard parts[0] == "dwarf", let n = Int(parts[1]), n > 0, n % 8 == 0, n <= 65528 else {
                    throw ServeError(400, "--call-graph \(cg): the stack size must be a multiple of 8 from 8 to 65528")
                }
            }
        }
        if let r = o.repeat, !(1...JobOptions.maxRepeat).contains(r) {
            throw ServeError(400, "repeat \(r): the number of runs must be from 1 to \(JobOptions.maxRepeat)")
        }
        if o.offCPU == true && !capabilities.offCPU {
            throw ServeError(400, "--off-cpu: this sprof build cannot record off-CPU time (update sprof)")
        }
        if o.heap == true && !capabilities.heap {
            throw ServeError(400, "--heap: this sprof build cannot record heap profiles (update sprof)")
        }
        if o.repeat == nil { o.repeat = 1 }
        guard resolve(program) != nil else {
            // What exec would say, in the CLI's words (LaunchError): a file that is there but not
            // executable is not "not found".
            let candidates = ProgramSearch.candidates(for: program, path: searchPath)
            if let errno = Self.execError(candidates, searched: !program.contains("/")) {
                throw ServeError(422, LaunchError(command: program, errno: errno).description)
            }
            if program.contains("/") { throw ServeError(422, LaunchError(command: program, errno: ENOENT).description) }
            throw ServeError(422, "\(program): command not found (give a path, or a program on the server's PATH)")
        }
        return o
    }

    /// The errno exec gives for the first of `candidates` that exists but cannot be run: EISDIR
    /// for a directory, EACCES for a file without execute permission; nil when none exists.
    /// `searched`: the candidates are the PATH's, where a search passes directories by.
    static func execError(_ candidates: [String], searched: Bool) -> Int32? {
        for path in candidates {
            var st = stat()
            guard stat(path, &st) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                if searched { continue }
                return EISDIR
            }
            return EACCES
        }
        return nil
    }

    /// The executable `program` names: itself when it contains a `/`, else the first match on the path.
    public func resolve(_ program: String) -> String? {
        // A directory passes access(X_OK) but cannot be executed.
        ProgramSearch.candidates(for: program, path: searchPath).first { candidate in
            var st = stat()
            return stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0
        }
    }
}

/// What the `sprof` binary the server runs can do, read once from `sprof run --help`: the server
/// works with a sprof from before off-CPU recording and progress events, and says so.
public struct SprofCapabilities: Sendable, Equatable {
    /// `--progress-fd N` (live progress as JSON lines).
    public var progressFD: Bool
    /// `--off-cpu`.
    public var offCPU: Bool
    /// `--memory` (resident memory over time).
    public var memory: Bool
    /// `--timeline` (every sample's time, for the Timeline tab and time ranges).
    public var timeline: Bool
    /// `--heap` (heap profiles).
    public var heap: Bool

    /// Creates capabilities.
    public init(progressFD: Bool = false, offCPU: Bool = false, memory: Bool = false, timeline: Bool = false, heap: Bool = false) {
        self.progressFD = progressFD
        self.offCPU = offCPU
        self.memory = memory
        self.timeline = timeline
        self.heap = heap
    }

    /// Reads them from the help text of `sprof run`.
    public init(helpText: String) {
        self.init(progressFD: helpText.contains("--progress-fd"), offCPU: helpText.contains("--off-cpu"),
                  memory: helpText.contains("--memory"), timeline: helpText.contains("--timeline"), heap: helpText.contains("--heap"))
    }
}
