import SprofCore
import SprofRecording
import SprofCounting

/// The values of one measurement, looked up by the event text the caller used, so that reading a
/// count back does not depend on the order the events were listed in.
public struct CounterReadings: Sendable, CustomStringConvertible {
    /// One value per event, in the order asked for: scaled value, raw count, enabled and running
    /// nanoseconds, and whether it was counted at all.
    public let values: [CounterValue]

    /// Wraps readings from ``CounterSet/read()``.
    public init(_ values: [CounterValue]) { self.values = values }

    /// The reading for `event` as written when opening (`"instructions:u"`), or its bare name
    /// (`"instructions"`) when that is unambiguous.
    public subscript(_ event: String) -> CounterValue? {
        if let exact = values.first(where: { $0.event.description == event }) { return exact }
        let byName = values.filter { $0.event.name == event }
        return byName.count == 1 ? byName[0] : nil
    }

    /// The scaled count of `event` (nil when it was not counted or not supported, so that a
    /// missing counter is never read as zero).
    public func value(_ event: String) -> Double? { self[event]?.value }

    /// `event=value (running%)` per counter, one line.
    public var description: String {
        values.map { v in
            switch v.status {
            case .counted:
                let pct = v.runningPercent.map { $0 < 99.995 ? String(format: " (%.1f%%)", $0) : "" } ?? ""
                return "\(v.event)=\(UInt64(v.value ?? 0))\(pct)"
            case .notCounted: return "\(v.event)=<not counted>"
            case .notSupported: return "\(v.event)=<not supported>"
            }
        }.joined(separator: " ")
    }
}

extension CounterSet {
    /// Opens counters from `-e` style text (`["instructions:u", "cycles:u"]`), stopped, with the
    /// library's error type. Where `kernel.perf_event_paranoid` forbids counting the kernel, events
    /// written without `:u`/`:k` count user space only (as `perf stat` does; their ``CounterValue/event``
    /// shows `:u`), instead of failing.
    ///
    /// - Throws: ``SprofError/invalidEvent(reason:)`` for text that does not name an event,
    ///   ``SprofError/refused(reason:)`` when perf_event_open is not allowed here. An event this
    ///   machine lacks does not throw: it reads as `.notSupported`.
    public convenience init(_ events: [String], scope: Scope = .currentThread) throws(SprofError) {
        var specs: [EventSpec] = []
        for text in events {
            do { specs.append(try EventCatalog.parse(text)) } catch { throw .invalidEvent(reason: error.description) }
        }
        let groups = CounterEvents.restrictedToUserSpace(specs.map { CounterGroup(events: [$0]) },
                                                         settings: KernelSettings.current()).groups
        do {
            try self.init(events: groups.flatMap(\.events), scope: scope)
        } catch {
            throw SprofError(error)
        }
    }

    /// ``read()`` wrapped for lookup by event name.
    public func readings() -> CounterReadings { CounterReadings(read()) }
}

/// Counting from inside a program in one call. For a span that does not fit in a closure, or
/// for repeated reads in a loop, open a ``CounterSet`` and use its start/stop/read.
public enum Counters {
    /// Counts `events` while `body` runs, on the calling thread only (``CounterSet/Scope/currentThread``)
    /// or across every thread of the process (``CounterSet/Scope/process``).
    ///
    /// ```swift
    /// let (sum, counts) = try Counters.measure(["instructions:u", "task-clock"]) { work() }
    /// print(counts["task-clock"]?.value ?? 0)
    /// ```
    ///
    /// - Throws: ``SprofError`` when the events cannot be opened, or what `body` throws.
    public static func measure<T>(_ events: [String], scope: CounterSet.Scope = .currentThread,
                                  _ body: () throws -> T) throws -> (result: T, counts: CounterReadings) {
        let set = try CounterSet(events, scope: scope)
        let (result, values) = try set.measure(body)
        return (result, CounterReadings(values))
    }
}
