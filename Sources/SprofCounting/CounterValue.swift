import SprofRecording

/// Whether a counter produced a number, and if not, why.
public enum CounterStatus: Sendable, Equatable {
    /// The counter ran (possibly multiplexed) and its value is meaningful.
    case counted
    /// The counter opened but never got onto the PMU (`time_running == 0`), e.g. a group with more
    /// hardware events than the CPU has counters. Shown as `<not counted>`.
    case notCounted
    /// The kernel refused to open the event on this machine (missing PMU, unknown raw event).
    /// Shown as `<not supported>`; `reason` says what the kernel answered.
    case notSupported(reason: String)

    /// `counted`, `not counted` or `not supported`: the spelling used in JSON and CSV output.
    public var label: String {
        switch self {
        case .counted: return "counted"
        case .notCounted: return "not counted"
        case .notSupported: return "not supported"
        }
    }
}

/// One counter's reading: the raw count, the times the kernel reports, and the count scaled for
/// multiplexing.
public struct CounterValue: Sendable, Equatable {
    /// The event as opened (after any forced `:u`).
    public var event: EventSpec
    /// Whether the value is meaningful.
    public var status: CounterStatus
    /// The count as read from the kernel, summed over threads.
    public var raw: UInt64
    /// Nanoseconds the event was enabled (`time_enabled`), summed over threads.
    public var enabled: UInt64
    /// Nanoseconds the event was on the PMU (`time_running`), summed over threads.
    public var running: UInt64
    /// `raw * enabled / running`: the estimate for the whole enabled time. `nil` unless
    /// ``status`` is `.counted`, so that a missing counter can never pass for a zero.
    public var value: Double?

    /// Creates a reading from kernel figures, scaling for multiplexing. `running == 0` while
    /// `enabled > 0` yields `.notCounted` (a counter kept off the PMU has no value, not a zero
    /// value); both zero means the task never ran while counting: a true 0.
    public init(event: EventSpec, raw: UInt64, enabled: UInt64, running: UInt64) {
        self.event = event
        self.raw = raw
        self.enabled = enabled
        self.running = running
        if running == 0 && enabled == 0 {
            // The task never ran while the event was enabled (a sleeping process under -p): the
            // event was ready the whole time, so its count (0) is a real one.
            status = .counted
            value = Double(raw)
        } else if running == 0 {
            // The task ran but the counter never got onto the PMU: there is no value, and printing
            // the raw 0 would lie.
            status = .notCounted
            value = nil
        } else {
            status = .counted
            value = running >= enabled ? Double(raw) : Double(raw) * Double(enabled) / Double(running)
        }
    }

    /// A reading for an event that could not be opened.
    public init(unsupported event: EventSpec, reason: String) {
        self.event = event
        self.status = .notSupported(reason: reason)
        self.raw = 0
        self.enabled = 0
        self.running = 0
        self.value = nil
    }

    /// `100 * running / enabled`, or nil when the counter never ran.
    public var runningPercent: Double? {
        guard status == .counted else { return nil }
        return enabled == 0 ? 100 : min(100, 100 * Double(running) / Double(enabled))
    }

    /// True when the PMU shared the counter with others and ``value`` is an estimate.
    public var isMultiplexed: Bool { status == .counted && running < enabled }
}
