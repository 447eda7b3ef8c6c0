#if canImport(Glibc)
import Glibc
#endif

/// Counts that describe a profile's quality: what was taken, what was lost, what was cut.
public struct ProfileStatistics: Sendable, Equatable {
    /// Samples turned into stacks.
    public var samples = 0
    /// Records the kernel dropped because a ring buffer was full (PERF_RECORD_LOST's `lost` field).
    public var lostRecords: UInt64 = 0
    /// Samples the kernel dropped before buffering (PERF_RECORD_LOST_SAMPLES).
    public var lostSamples: UInt64 = 0
    /// Times the kernel throttled the sampling rate (PERF_RECORD_THROTTLE).
    public var throttles = 0
    /// Stacks known to be incomplete (marked `[truncated]`).
    public var truncated = 0
    /// DWARF stacks unwound past the kernel's stack copy with the rest of the thread's stack,
    /// read from the live process once the copy ran out (kept only where the bytes read at the
    /// copy's end equal the copied ones).
    public var stacksReadPastCopy = 0
    /// Files whose debug info a debuginfod server supplied (`DEBUGINFOD_URLS`), by build-id.
    public var debuginfodFiles = 0
    /// Samples whose stack copy ran to its end and had the rest of the thread's stack read from
    /// the live process as the sample was taken from the ring buffer (`process_vm_readv`).
    public var liveStackReads = 0
    /// Of those reads, the ones thrown away because the live bytes at the copy's end were no
    /// longer the copied ones (the thread had returned past them): those stacks end at the copy.
    public var liveStackChanged = 0
    /// Of those reads, the ones whose bytes were those of the thread's previous read, kept once
    /// for all of them (a thread deep in one call tree has the same callers at every sample).
    public var liveStackShared = 0
    /// Rounds of the ring-buffer reader that waited long enough on the unwinder, preempted at idle
    /// priority while holding something the reader needed, for the unwinder to be lifted to
    /// normal priority until the round ended (a priority inheritance the kernel does not give).
    public var unwinderLifts = 0
    /// Processes seen.
    public var processes = 0
    /// Threads seen.
    public var threads = 0

    /// Of ``lost``, the `context-switches` event's (`--off-cpu` switch-outs); the rest are the
    /// sampled event's samples and side-band records. nil when not recorded with `--off-cpu` or
    /// when the kernel cannot tell (before Linux 6.0).
    public var lostOffCPU: UInt64?

    /// Of ``lost``, the heap probes' records (`--heap`: they share the CPU event's buffers); nil
    /// without heap probes or when the kernel cannot tell (before Linux 6.0).
    public var lostHeap: UInt64?

    /// ``lost`` without the heap probes' records: the sampled event's samples and side-band
    /// records, and the off-CPU event's.
    public var lostBesidesHeap: UInt64 { lost - min(lostHeap ?? 0, lost) }

    /// Everything lost, as one number for summaries.
    public var lost: UInt64 { lostRecords + lostSamples }

    /// Creates empty statistics.
    public init() {}
}

/// The machine a profile was recorded on.
public struct SystemInfo: Sendable, Equatable {
    /// `uname -r`.
    public var kernelRelease = ""
    /// `model name` from /proc/cpuinfo.
    public var cpuModel = ""
    /// Online CPUs.
    public var cores = 0
    /// Physical memory in bytes (`MemTotal` of /proc/meminfo).
    public var memoryBytes: UInt64 = 0
    /// `kernel.perf_event_paranoid` at recording time; nil when unknown.
    public var perfEventParanoid: Int?
    /// Whether the kernel exposes a hardware PMU (`/sys/bus/event_source/devices/cpu`).
    public var hasHardwarePMU = false
    /// Creates an empty description (readers fill what they find).
    public init() {}
}

/// How, when and where a profile was recorded: its provenance. Every view shows it (SVG details,
/// pprof `comment` strings, `sprof report --header`), so that a profile is never read without
/// knowing what kind of event and how many losses are behind it.
public struct ProfileMetadata: Sendable, Equatable {
    /// This build's sprof version: what `sprof --version` prints, what the server reports and what
    /// recordings write into ``sprofVersion``. One constant so that they cannot disagree.
    public static let currentSprofVersion = "0.3.0"

    /// The sampling rate.
    public enum Rate: Sendable, Equatable {
        /// Samples per second (perf's `-F`).
        case frequency(Int)
        /// One sample every N events (perf's `-c`).
        case period(UInt64)
    }

    /// The sprof version that recorded the profile.
    public var sprofVersion = ""
    /// The profiled command and arguments; empty when attached to a process or not known.
    public var command: [String] = []
    /// The process attached to with `-p`.
    public var attachedPID: Int32?
    /// The event actually sampled, as perf spells it (`cpu-clock`, `cycles:u`).
    public var event = ""
    /// True when ``event`` is counted by the hardware PMU; false for software events (cpu-clock,
    /// task-clock, page-faults, context-switches). A software profile is never called a PMU profile.
    public var eventIsHardware = false
    /// The event asked for when it fell back to another (a hardware event on a machine without a PMU).
    public var requestedEvent: String?
    /// The rate actually used (after clamping to `kernel.perf_event_max_sample_rate`).
    public var rate: Rate?
    /// The stack mode: `dwarf`, `fp` or `none`.
    public var callGraph = ""
    /// Bytes of user stack copied per sample in `dwarf` mode.
    public var stackSize: Int?
    /// Samples, losses, truncation, processes and threads.
    public var statistics = ProfileStatistics()
    /// Wall-clock start, nanoseconds since the Unix epoch (pprof's `time_nanos`).
    public var startTime: UInt64 = 0
    /// Recording duration in nanoseconds (pprof's `duration_nanos`).
    public var duration: UInt64 = 0
    /// How the command ended (`exit 0`, `killed by SIGINT`); nil when attached or unknown.
    public var exitStatus: String?
    /// The launched command's largest resident set in bytes and its pid: the kernel's
    /// high-water mark from wait4(2) (`ru_maxrss`, the command and the descendants it waited
    /// for), which /proc readings miss for a process shorter than their interval. nil when
    /// attached or not recorded.
    public var commandPeakRSS: UInt64?
    /// The pid of the process ``commandPeakRSS`` is of.
    public var commandPID: Int32?
    /// The machine.
    public var system = SystemInfo()
    /// Whether kernel samples and frames were left out (unprivileged at `perf_event_paranoid` >= 2).
    public var kernelExcluded = false
    /// What the recorder changed from the options or wants the reader to know, one line each.
    public var notices: [String] = []
    /// Lines of provenance this version does not know (read back from a newer file); kept and written again.
    public var extra: [String] = []

    /// Creates empty metadata.
    public init() {}

    /// The rate as perf users read it: `999 Hz`, `every 10000 events`, or for the clock events,
    /// whose count is nanoseconds of CPU time (perf_event_open(2)), `every 50000 ns`.
    public var rateText: String? {
        switch rate {
        case .frequency(let hz): return "\(hz) Hz"
        case .period(let n): return "every \(n) \(Self.countsNanoseconds(event) ? "ns" : (event == "heap" ? "byte" : "event") + (n == 1 ? "" : "s"))"
        case nil: return nil
        }
    }

    /// cpu-clock and task-clock (with or without `:u`/`:k`) count nanoseconds.
    static func countsNanoseconds(_ event: String) -> Bool {
        let name = event.prefix { $0 != ":" }
        return name == "cpu-clock" || name == "task-clock"
    }

    /// Whether this describes a sprof recording (``sprofVersion`` set), so that its statistics
    /// were counted. Profiles read from folded stacks or other tools' pprof files have no such
    /// counts: their zeros are not shown as "0 lost".
    public var isRecording: Bool { !sprofVersion.isEmpty }

    /// One line for a subtitle: event (and its kind), rate, samples, lost (the counts only for a
    /// recording, see ``isRecording``).
    public var summaryLine: String {
        var parts: [String] = []
        if !event.isEmpty {
            var e = event + (eventIsHardware ? " (hardware)" : " (software)")
            if let rateText { e += (rateText.hasPrefix("every") ? " " : " at ") + rateText }
            parts.append(e)
        }
        if let requestedEvent { parts.append("\(requestedEvent) unavailable, fell back to \(event)") }
        if isRecording {
            parts.append("\(statistics.samples) samples")
            parts.append("\(statistics.lost) lost")
            if statistics.truncated > 0 { parts.append("\(statistics.truncated) truncated") }
        }
        return parts.joined(separator: ", ")
    }

    /// The provenance as `key: value` lines, in a fixed order: pprof comments, the SVG's details,
    /// `sprof report --header`. ``init(provenanceLines:)`` reads them back.
    public var provenanceLines: [String] {
        var lines: [String] = []
        func add(_ key: String, _ value: String?) {
            guard let value, !value.isEmpty else { return }
            lines.append("\(key): \(value.replacingNewlines())")
        }
        add("sprof", sprofVersion)
        if !command.isEmpty { add("command", command.map(Self.shellQuoted).joined(separator: " ")) }
        add("pid", attachedPID.map(String.init))
        add("event", event.isEmpty ? nil : event + (eventIsHardware ? " (hardware PMU event)" : " (software event)"))
        add("requested event", requestedEvent.map { "\($0) (not available here; fell back to \(event))" })
        add("rate", rateText)
        add("call graph", callGraph + (stackSize.map { ",\($0)" } ?? ""))
        let s = statistics
        if isRecording {
            add("samples", String(s.samples))
            let split = s.lostOffCPU.map { "; on-cpu \(s.lost - min($0, s.lost)), off-cpu \($0)" } ?? ""
            add("lost", "\(s.lost) (records \(s.lostRecords), samples \(s.lostSamples)\(split))")
            add("lost heap probe records", s.lostHeap.map(String.init))
            add("command peak RSS", commandPeakRSS.map { "\($0) bytes (pid \(commandPID ?? 0), wait4's high-water mark)" })
            add("throttled", String(s.throttles))
            add("truncated", String(s.truncated))
            add("read past the stack copy", s.stacksReadPastCopy > 0 ? "\(s.stacksReadPastCopy) stacks" : nil)
            add("live stack reads", s.liveStackReads > 0 || s.liveStackChanged > 0 ? "\(s.liveStackReads) (\(s.liveStackChanged) changed, \(s.liveStackShared) shared)" : nil)
            add("debuginfod", s.debuginfodFiles > 0 ? "\(s.debuginfodFiles) files" : nil)
            add("unwinder lifted", s.unwinderLifts > 0 ? "\(s.unwinderLifts) times (the reader waited on it at idle priority)" : nil)
            add("processes", String(s.processes))
            add("threads", String(s.threads))
        }
        add("start", startTime == 0 ? nil : "\(startTime) ns since the epoch (\(Self.utcText(startTime)))")
        add("duration", duration == 0 ? nil : "\(duration) ns (\(Self.seconds(duration)) s)")
        add("exit status", exitStatus)
        add("kernel", system.kernelRelease)
        add("cpu", system.cpuModel)
        add("cores", system.cores == 0 ? nil : String(system.cores))
        add("memory", system.memoryBytes == 0 ? nil : "\(system.memoryBytes) bytes (\(Self.seconds(system.memoryBytes >> 20, scale: 1024)) GiB)")
        add("perf_event_paranoid", system.perfEventParanoid.map(String.init))
        add("hardware pmu", system.cores == 0 ? nil : (system.hasHardwarePMU ? "yes" : "no"))
        if isRecording { add("kernel frames", kernelExcluded ? "excluded" : "included") }
        for notice in notices { add("notice", notice) }
        lines.append(contentsOf: extra)
        return lines
    }

    /// Reads ``provenanceLines`` back. Unknown keys go to ``extra``; malformed values are ignored,
    /// so a foreign file's comments never make reading fail.
    public init(provenanceLines lines: [String]) {
        self.init()
        for line in lines {
            guard let colon = line.range(of: ": ") else { extra.append(line); continue }
            let key = String(line[..<colon.lowerBound])
            let value = String(line[colon.upperBound...])
            func firstNumber() -> UInt64? { UInt64(value.prefix { $0.isNumber }) }
            switch key {
            case "sprof": sprofVersion = value
            case "command": command = Self.shellSplit(value)
            case "pid": attachedPID = Int32(value)
            case "event":
                eventIsHardware = value.hasSuffix("(hardware PMU event)")
                event = String(value.prefix { $0 != " " })
            case "requested event": requestedEvent = String(value.prefix { $0 != " " })
            case "rate":
                if value.hasSuffix(" Hz"), let hz = Int(value.dropLast(3)) { rate = .frequency(hz) }
                else if value.hasPrefix("every "), let n = UInt64(value.dropFirst(6).prefix { $0.isNumber }) { rate = .period(n) }
            case "call graph":
                let parts = value.split(separator: ",", maxSplits: 1)
                callGraph = parts.first.map(String.init) ?? ""
                stackSize = parts.count == 2 ? Int(parts[1]) : nil
            case "samples": statistics.samples = Int(firstNumber() ?? 0)
            case "lost":
                // "N (records R, samples S)", "N (records R, samples S; on-cpu A, off-cpu B)"
                let numbers = value.split(whereSeparator: { !$0.isNumber }).compactMap { UInt64($0) }
                if numbers.count == 3 || numbers.count == 5 {
                    statistics.lostRecords = numbers[1]
                    statistics.lostSamples = numbers[2]
                    if numbers.count == 5 { statistics.lostOffCPU = numbers[4] }
                } else if let n = numbers.first {
                    statistics.lostRecords = n
                }
            case "lost heap probe records": statistics.lostHeap = firstNumber()
            case "command peak RSS":
                let numbers = value.split(whereSeparator: { !$0.isNumber }).compactMap { UInt64($0) }
                if numbers.count >= 2 {
                    commandPeakRSS = numbers[0]
                    commandPID = Int32(exactly: numbers[1])
                }
            case "throttled": statistics.throttles = Int(firstNumber() ?? 0)
            case "truncated": statistics.truncated = Int(firstNumber() ?? 0)
            case "read past the stack copy": statistics.stacksReadPastCopy = Int(firstNumber() ?? 0)
            case "live stack reads":
                let numbers = value.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
                statistics.liveStackReads = numbers.first ?? 0
                statistics.liveStackChanged = numbers.count > 1 ? numbers[1] : 0
                statistics.liveStackShared = numbers.count > 2 ? numbers[2] : 0
            case "debuginfod": statistics.debuginfodFiles = Int(firstNumber() ?? 0)
            case "unwinder lifted": statistics.unwinderLifts = Int(firstNumber() ?? 0)
            case "processes": statistics.processes = Int(firstNumber() ?? 0)
            case "threads": statistics.threads = Int(firstNumber() ?? 0)
            case "start": startTime = firstNumber() ?? 0
            case "duration": duration = firstNumber() ?? 0
            case "exit status": exitStatus = value
            case "kernel": system.kernelRelease = value
            case "cpu": system.cpuModel = value
            case "cores": system.cores = Int(firstNumber() ?? 0)
            case "memory": system.memoryBytes = firstNumber() ?? 0
            case "perf_event_paranoid": system.perfEventParanoid = Int(value)
            case "hardware pmu": system.hasHardwarePMU = value == "yes"
            case "kernel frames": kernelExcluded = value == "excluded"
            case "notice": notices.append(value)
            default: extra.append(line)
            }
        }
    }

    /// `1.234` for 1,234,000,000 (nanoseconds to seconds, or any value / scale^3 with 3 decimals).
    static func seconds(_ value: UInt64, scale: UInt64 = 1_000_000_000) -> String {
        let whole = value / scale
        let millis = (value % scale) * 1000 / scale
        let m = String(millis)
        return "\(whole)." + String(repeating: "0", count: 3 - m.count) + m
    }

    /// `2026-11-29 15:04:05 UTC`: UTC, so that the same profile reads the same everywhere.
    static func utcText(_ unixNanos: UInt64) -> String {
        var t = time_t(unixNanos / 1_000_000_000)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) UTC"
    }

    /// Quotes an argument the way a POSIX shell would need it, so a command line reads back exactly.
    static func shellQuoted(_ arg: String) -> String {
        let safe = arg.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
        if safe && !arg.isEmpty { return arg }
        return "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Splits what ``shellQuoted(_:)`` produced.
    static func shellSplit(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        var inQuote = false
        var hasToken = false
        var escaped = false
        for ch in text {
            if escaped {
                current.append(ch)
                escaped = false
                hasToken = true
            } else if inQuote {
                if ch == "'" { inQuote = false } else { current.append(ch) }
            } else if ch == "'" {
                inQuote = true
                hasToken = true
            } else if ch == "\\" {
                escaped = true
            } else if ch == " " {
                if hasToken { out.append(current) }
                current = ""
                hasToken = false
            } else {
                current.append(ch)
                hasToken = true
            }
        }
        if hasToken { out.append(current) }
        return out
    }
}

extension String {
    /// Provenance is line-based: a newline in a value (a command argument) must not start a new key.
    func replacingNewlines() -> String {
        guard contains(where: \.isNewline) else { return self }
        return String(map { $0.isNewline ? " " : $0 })
    }

    func replacingOccurrences(of target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        guard !target.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}

extension String {
    func range(of target: String) -> Range<Index>? {
        Substring(self).range(of: target)
    }
}
