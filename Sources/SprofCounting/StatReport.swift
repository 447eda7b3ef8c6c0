import Foundation
import SprofRecording

/// The result of `sprof stat`, over one or more runs: what the text, CSV and JSON outputs show,
/// and what `--baseline` reads back.
///
/// JSON field names (stable; documented in docs/stat-output.md):
/// - `format`: always `"sprof-stat"`; `version`: 1.
/// - `command`: the command line (absent with `pid`); `pid`: the attached process (absent for a command).
/// - `repeats`: the number of runs that completed.
/// - `exit_status`: the status sprof passes on (shell convention, 128+N for signal N); absent with `pid`.
/// - `elapsed_seconds`, `user_seconds`, `system_seconds`: ``Series`` objects.
/// - `counters`: ``Counter`` objects in the order asked.
public struct StatReport: Codable, Sendable, Equatable {
    /// Mean, per-run values and spread of one figure.
    ///
    /// JSON: `{"mean": 1.5, "values": [1.4, 1.6], "stddev_percent": 9.43}` (`stddev_percent` is
    /// the relative sample standard deviation in percent; null for a single run).
    public struct Series: Codable, Sendable, Equatable {
        /// The mean over runs.
        public var mean: Double
        /// One value per run.
        public var values: [Double]
        /// `100 * stddev / mean`, nil for one run.
        public var stddevPercent: Double?

        /// Summarizes `values`.
        public init(_ values: [Double]) {
            self.values = values
            mean = StatMath.mean(values)
            stddevPercent = StatMath.relativeStandardDeviationPercent(values)
        }

        enum CodingKeys: String, CodingKey {
            case mean, values
            case stddevPercent = "stddev_percent"
        }
    }

    /// A derived figure such as instructions per cycle. JSON: `{"value": 1.85, "unit": "insn per cycle"}`.
    public struct Metric: Codable, Sendable, Equatable {
        /// The figure.
        public var value: Double
        /// What it is: `CPUs utilized`, `GHz`, `insn per cycle`, `% of all branches`, `/sec`.
        public var unit: String
    }

    /// One counter over all runs.
    ///
    /// JSON: `event` (name with modifiers, e.g. `instructions:u`), `group` (index of its
    /// scheduling group; events written in one `{…}` share it), `status` (`counted`, `not counted`,
    /// `not supported`), `value` (mean of the counted runs, scaled for multiplexing; null unless
    /// counted), `values` (per counted run), `unit` (`msec` for clocks, else empty),
    /// `running_percent` (mean share of enabled time the counter was on the PMU; null unless
    /// counted), `stddev_percent` (null for one run), `metric` (null or a ``Metric``),
    /// `reason` (why it is not supported, else null).
    public struct Counter: Codable, Sendable, Equatable {
        /// The event name with modifiers.
        public var event: String
        /// The scheduling group's index.
        public var group: Int
        /// `counted`, `not counted`, `not supported`.
        public var status: String
        /// The mean scaled value (nil unless counted).
        public var value: Double?
        /// The per-run values of the runs where it was counted.
        public var values: [Double]
        /// `msec` for clocks, otherwise empty.
        public var unit: String
        /// Mean running percentage (100 unless multiplexed).
        public var runningPercent: Double?
        /// Mean running time in nanoseconds (the CSV's `running_time_ns`).
        public var runningNanoseconds: Double?
        /// Relative standard deviation over runs, in percent.
        public var stddevPercent: Double?
        /// The derived figure.
        public var metric: Metric?
        /// Why the event is not supported.
        public var reason: String?

        enum CodingKeys: String, CodingKey {
            case event, group, status, value, values, unit, metric, reason
            case runningPercent = "running_percent"
            case runningNanoseconds = "running_time_ns"
            case stddevPercent = "stddev_percent"
        }

        /// Writes every field, nulls included, so that consumers see a fixed set of keys.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(event, forKey: .event)
            try c.encode(group, forKey: .group)
            try c.encode(status, forKey: .status)
            try c.encode(value, forKey: .value)
            try c.encode(values, forKey: .values)
            try c.encode(unit, forKey: .unit)
            try c.encode(runningPercent, forKey: .runningPercent)
            try c.encode(runningNanoseconds, forKey: .runningNanoseconds)
            try c.encode(stddevPercent, forKey: .stddevPercent)
            try c.encode(metric, forKey: .metric)
            try c.encode(reason, forKey: .reason)
        }

        /// True when the PMU multiplexed it (running below 100%).
        public var isMultiplexed: Bool { (runningPercent ?? 100) < 99.995 }
    }

    /// `"sprof-stat"`.
    public var format = "sprof-stat"
    /// The JSON format version.
    public var version = 1
    /// The command line, when sprof ran a command.
    public var command: [String]?
    /// The process attached to with `-p`.
    public var pid: Int32?
    /// Completed runs.
    public var repeats: Int
    /// The exit status passed on (nil when attached).
    public var exitStatus: Int32?
    /// Wall-clock time.
    public var elapsedSeconds: Series
    /// User CPU time (nil when attached).
    public var userSeconds: Series?
    /// System CPU time (nil when attached).
    public var systemSeconds: Series?
    /// The counters.
    public var counters: [Counter]
    /// What `sprof stat` would otherwise print as notice lines beside the counts (a restricted
    /// event list, a counter's reason for `not supported`, the `--baseline` verdict), so that with
    /// `--json` the output is JSON alone; nil (absent from the JSON) when there is none.
    public var notices: [String]?

    enum CodingKeys: String, CodingKey {
        case format, version, command, pid, repeats, counters, notices
        case exitStatus = "exit_status"
        case elapsedSeconds = "elapsed_seconds"
        case userSeconds = "user_seconds"
        case systemSeconds = "system_seconds"
    }

    /// Summarizes `runs` (all counting the same `groups`). The exit status is the first non-zero
    /// one among the runs, so that a failure in any repeat is not lost.
    public init(runs: [CountedRun], groups: [CounterGroup], command: [String]? = nil, pid: Int32? = nil) {
        self.command = command
        self.pid = pid
        repeats = runs.count
        let statuses = runs.compactMap(\.exitStatus).map(\.shellStatus)
        exitStatus = statuses.isEmpty ? nil : (statuses.first { $0 != 0 } ?? 0)
        elapsedSeconds = Series(runs.map(\.elapsedSeconds))
        let users = runs.compactMap(\.userSeconds), systems = runs.compactMap(\.systemSeconds)
        userSeconds = users.count == runs.count && !runs.isEmpty ? Series(users) : nil
        systemSeconds = systems.count == runs.count && !runs.isEmpty ? Series(systems) : nil

        var groupIndex: [Int] = []
        for (g, group) in groups.enumerated() { groupIndex += Array(repeating: g, count: group.events.count) }
        let eventCount = runs.first?.values.count ?? groupIndex.count
        counters = (0..<eventCount).map { i in
            let readings = runs.map { $0.values[i] }
            let event = readings.first?.event ?? groups.flatMap(\.events)[i]
            let isClock = event.isClock
            let counted = readings.filter { $0.status == .counted }
            let values = counted.map { ($0.value ?? 0) / (isClock ? 1e6 : 1) }
            var status = "not counted"
            var reason: String?
            if !counted.isEmpty {
                status = "counted"
            } else if let unsupported = readings.first(where: { if case .notSupported = $0.status { return true } else { return false } }),
                      case .notSupported(let why) = unsupported.status {
                status = "not supported"
                reason = why
            }
            let series = Series(values)
            return Counter(
                event: event.description, group: i < groupIndex.count ? groupIndex[i] : i, status: status,
                value: counted.isEmpty ? nil : series.mean, values: values, unit: isClock ? "msec" : "",
                runningPercent: counted.isEmpty ? nil : StatMath.mean(counted.map { $0.runningPercent ?? 100 }),
                runningNanoseconds: counted.isEmpty ? nil : StatMath.mean(counted.map { Double($0.running) }),
                stddevPercent: counted.isEmpty ? nil : series.stddevPercent, metric: nil, reason: reason)
        }
        addMetrics()
    }

    /// The derived figures perf stat users expect, computed from the means.
    private mutating func addMetrics() {
        func baseName(_ event: String) -> (String, String) {
            if let colon = event.firstIndex(of: ":"), !event.hasSuffix("/") {
                return (String(event[..<colon]), String(event[event.index(after: colon)...]))
            }
            return (event, "")
        }
        // The counter named `name`, preferring the same modifiers (cycles:u for instructions:u).
        func counted(_ name: String, modifiers: String) -> Double? {
            let candidates = counters.filter { baseName($0.event).0 == name && $0.value != nil }
            return (candidates.first { baseName($0.event).1 == modifiers } ?? candidates.first)?.value
        }
        let taskClockMsec = counted("task-clock", modifiers: "") ?? counted("cpu-clock", modifiers: "")
        for i in counters.indices {
            guard let value = counters[i].value else { continue }
            let (name, mods) = baseName(counters[i].event)
            switch name {
            case "task-clock", "cpu-clock":
                if elapsedSeconds.mean > 0 { counters[i].metric = Metric(value: value / 1000 / elapsedSeconds.mean, unit: "CPUs utilized") }
            case "cycles":
                if let ms = taskClockMsec, ms > 0 { counters[i].metric = Metric(value: value / (ms * 1e6), unit: "GHz") }
            case "instructions":
                if let cycles = counted("cycles", modifiers: mods), cycles > 0 {
                    counters[i].metric = Metric(value: value / cycles, unit: "insn per cycle")
                }
            case "branch-misses":
                if let branches = counted("branches", modifiers: mods), branches > 0 {
                    counters[i].metric = Metric(value: 100 * value / branches, unit: "% of all branches")
                }
            case "cache-misses":
                if let refs = counted("cache-references", modifiers: mods), refs > 0 {
                    counters[i].metric = Metric(value: 100 * value / refs, unit: "% of all cache refs")
                }
            default:
                if let ms = taskClockMsec, ms > 0, counters[i].unit.isEmpty {
                    counters[i].metric = Metric(value: value / (ms / 1000), unit: "/sec")
                }
            }
        }
    }

    /// The counter named `event` (exactly as printed, e.g. `instructions:u`).
    public func counter(_ event: String) -> Counter? { counters.first { $0.event == event } }

    /// Pretty, key-sorted JSON (stable to diff).
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a report written by ``jsonData()`` (`sprof stat --json`).
    public static func decode(_ data: Data) throws -> StatReport {
        try JSONDecoder().decode(StatReport.self, from: data)
    }
}
