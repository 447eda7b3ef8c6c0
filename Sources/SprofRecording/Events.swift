internal import CSprof

/// A perf event as the kernel sees it (`type`, `config`) plus the privilege-level modifiers the
/// user asked for (`cycles:u`).
public struct EventSpec: Hashable, Sendable, CustomStringConvertible {
    /// The canonical name without modifiers, e.g. `cycles`, `r00c0`, `cpu/event=0xc0/`.
    public var name: String
    /// `perf_event_attr.type` (PERF_TYPE_*, or a dynamic PMU type from sysfs).
    public var type: UInt32
    /// `perf_event_attr.config`.
    public var config: UInt64
    /// `perf_event_attr.config1` (PMU events whose format uses it).
    public var config1: UInt64 = 0
    /// `perf_event_attr.config2`.
    public var config2: UInt64 = 0
    /// Count only user space (`:u`).
    public var excludeKernel = false
    /// Count only the kernel (`:k`).
    public var excludeUser = false
    /// Exclude the hypervisor (set with `:u`, as perf does).
    public var excludeHypervisor = false
    /// The modifier letters as the user wrote them (`u`, `k`, `uk`), kept for display.
    public var modifiers: String = ""
    /// Whether samples of this event copy the user stack (when the stack mode copies one). A
    /// probe whose samples are only read for a register (a heap profile's `free` and return
    /// probes) turns it off: a copied stack per call would fill the ring buffer for nothing.
    public var copiesUserStack = true
    /// Whether samples of this event carry the kernel's frame-pointer walk of the user stack even
    /// in DWARF mode (where the user part of the callchain is otherwise left out). The entry
    /// probes of an attached heap profile turn it on, with ``copiesUserStack`` off: every
    /// allocator call is a record there, and a callchain of a few hundred bytes keeps the ring
    /// buffer from overflowing where a stack copy per call (kilobytes) does not.
    public var walksUserFramePointers = false

    /// Creates an event.
    public init(name: String, type: UInt32, config: UInt64) {
        self.name = name
        self.type = type
        self.config = config
    }

    /// `name` plus `:modifiers`, as perf prints it.
    public var description: String { modifiers.isEmpty ? name : "\(name):\(modifiers)" }

    /// True for events counted by the PMU (they can be missing in VMs and containers).
    public var isHardware: Bool { type != PERF_TYPE_SOFTWARE.rawValue && type != PERF_TYPE_TRACEPOINT.rawValue }

    /// True for the timer-based software events whose period is in nanoseconds.
    public var isClock: Bool {
        type == PERF_TYPE_SOFTWARE.rawValue
            && (config == UInt64(PERF_COUNT_SW_CPU_CLOCK.rawValue) || config == UInt64(PERF_COUNT_SW_TASK_CLOCK.rawValue))
    }

    /// The default sampling event: a timer that works everywhere.
    public static var cpuClock: EventSpec { EventCatalog.named("cpu-clock")! }

    /// `context-switches`: one count per switch-out of a thread (`--off-cpu` samples it with period 1).
    public static var contextSwitches: EventSpec {
        EventSpec(name: "context-switches", type: PERF_TYPE_SOFTWARE.rawValue, config: UInt64(PERF_COUNT_SW_CONTEXT_SWITCHES.rawValue))
    }
}

/// An event string that could not be understood.
public struct EventError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One line saying what is wrong and what is valid.
    public var description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}

/// The events sprof knows by name, and the parser for `-e` strings.
public enum EventCatalog {
    /// One named event: its names, kernel encoding and a one-line description.
    public struct Entry: Sendable {
        /// The canonical name.
        public var name: String
        /// Other accepted spellings.
        public var aliases: [String]
        /// `perf_event_attr.type`.
        public var type: UInt32
        /// `perf_event_attr.config`.
        public var config: UInt64
        /// What it counts.
        public var summary: String
        /// Hardware or software, for `sprof list`.
        public var kind: String { type == PERF_TYPE_SOFTWARE.rawValue ? "Software event" : "Hardware event" }
    }

    private static func hw(_ name: String, _ aliases: [String], _ c: perf_hw_id, _ summary: String) -> Entry {
        Entry(name: name, aliases: aliases, type: PERF_TYPE_HARDWARE.rawValue, config: UInt64(c.rawValue), summary: summary)
    }
    private static func sw(_ name: String, _ aliases: [String], _ c: perf_sw_ids, _ summary: String) -> Entry {
        Entry(name: name, aliases: aliases, type: PERF_TYPE_SOFTWARE.rawValue, config: UInt64(c.rawValue), summary: summary)
    }

    /// Every named event, in `sprof list` order.
    public static let entries: [Entry] = [
        hw("cycles", ["cpu-cycles"], PERF_COUNT_HW_CPU_CYCLES, "CPU cycles"),
        hw("instructions", [], PERF_COUNT_HW_INSTRUCTIONS, "retired instructions"),
        hw("branches", ["branch-instructions"], PERF_COUNT_HW_BRANCH_INSTRUCTIONS, "retired branch instructions"),
        hw("branch-misses", [], PERF_COUNT_HW_BRANCH_MISSES, "mispredicted branches"),
        hw("cache-references", [], PERF_COUNT_HW_CACHE_REFERENCES, "last-level cache accesses"),
        hw("cache-misses", [], PERF_COUNT_HW_CACHE_MISSES, "last-level cache misses"),
        hw("bus-cycles", [], PERF_COUNT_HW_BUS_CYCLES, "bus cycles"),
        hw("ref-cycles", [], PERF_COUNT_HW_REF_CPU_CYCLES, "reference cycles, unaffected by frequency scaling"),
        hw("stalled-cycles-frontend", ["idle-cycles-frontend"], PERF_COUNT_HW_STALLED_CYCLES_FRONTEND, "cycles stalled in the front end"),
        hw("stalled-cycles-backend", ["idle-cycles-backend"], PERF_COUNT_HW_STALLED_CYCLES_BACKEND, "cycles stalled in the back end"),
        sw("cpu-clock", [], PERF_COUNT_SW_CPU_CLOCK, "a per-CPU high-resolution timer (the default)"),
        sw("task-clock", [], PERF_COUNT_SW_TASK_CLOCK, "a timer that runs while the task runs"),
        sw("page-faults", ["faults"], PERF_COUNT_SW_PAGE_FAULTS, "page faults"),
        sw("minor-faults", [], PERF_COUNT_SW_PAGE_FAULTS_MIN, "page faults served without I/O"),
        sw("major-faults", [], PERF_COUNT_SW_PAGE_FAULTS_MAJ, "page faults that needed I/O"),
        sw("context-switches", ["cs"], PERF_COUNT_SW_CONTEXT_SWITCHES, "context switches"),
        sw("cpu-migrations", ["migrations"], PERF_COUNT_SW_CPU_MIGRATIONS, "moves between CPUs"),
        sw("alignment-faults", [], PERF_COUNT_SW_ALIGNMENT_FAULTS, "alignment faults"),
        sw("emulation-faults", [], PERF_COUNT_SW_EMULATION_FAULTS, "emulation faults"),
    ]

    /// The named event, without modifiers, or nil.
    public static func named(_ name: String) -> EventSpec? {
        let lower = name.lowercased()
        guard let e = entries.first(where: { $0.name == lower || $0.aliases.contains(lower) }) else { return nil }
        return EventSpec(name: e.name, type: e.type, config: e.config)
    }

    /// All canonical names, for error messages.
    public static var validNames: String { entries.map(\.name).joined(separator: ", ") }

    /// Parses one event: a name from ``entries``, `rHEX` (a raw PMU event), or a sysfs PMU event
    /// `pmu/term=value,…/`, each optionally followed by `:u`, `:k`, `:h` modifiers.
    public static func parse(_ text: String) throws(EventError) -> EventSpec {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty else { throw EventError("empty event name; valid events: \(validNames)") }
        var base = trimmed
        var mods = ""
        // PMU syntax ends with '/', possibly followed by ':mods' or bare mods (cpu/…/u).
        if let slash = trimmed.lastIndex(of: "/"), trimmed.contains("/") && trimmed.firstIndex(of: "/") != slash {
            base = String(trimmed[...slash])
            var rest = String(trimmed[trimmed.index(after: slash)...])
            if rest.hasPrefix(":") { rest.removeFirst() }
            mods = rest
        } else if let colon = trimmed.firstIndex(of: ":") {
            base = String(trimmed[..<colon])
            mods = String(trimmed[trimmed.index(after: colon)...])
        }
        var spec: EventSpec
        if let named = named(base) {
            spec = named
        } else if base.hasPrefix("/") == false, base.contains("/") {
            spec = try PMUEvents.parse(base)
        } else if base.count > 1, base.first == "r", let raw = UInt64(base.dropFirst(), radix: 16) {
            spec = EventSpec(name: base, type: PERF_TYPE_RAW.rawValue, config: raw)
        } else {
            throw EventError("unknown event '\(base)'; valid events: \(validNames), rHEX (raw), pmu/event=…,umask=…/ (run 'sprof list')")
        }
        try apply(modifiers: mods, to: &spec, original: trimmed)
        return spec
    }

    private static func apply(modifiers: String, to spec: inout EventSpec, original: String) throws(EventError) {
        guard !modifiers.isEmpty else { return }
        var user = false, kernel = false, hyper = false
        for ch in modifiers {
            switch ch {
            case "u": user = true
            case "k": kernel = true
            case "h": hyper = true
            case "p", "P", "G", "H", "S", "D", "I", "W": continue // precision/host/guest modifiers: accepted, not needed
            default:
                throw EventError("unknown modifier '\(ch)' in '\(original)'; valid modifiers: u (user), k (kernel), h (hypervisor)")
            }
        }
        if user || kernel || hyper {
            spec.excludeUser = !user
            spec.excludeKernel = !kernel
            spec.excludeHypervisor = !hyper
        }
        spec.modifiers = modifiers
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
