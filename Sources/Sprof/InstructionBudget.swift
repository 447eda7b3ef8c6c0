import Foundation
import SprofCore
import SprofRecording
import SprofCounting

/// The instructions an operation retired, measured so that a budget test gives the same answer
/// on a quiet laptop and a loaded CI machine.
///
/// Time is noisy on shared machines; retired user-space instructions are not: other processes,
/// interrupts and frequency changes do not add to `instructions:u` of this thread. What remains
/// is first-run work (lazy initialisation, cold caches of the program's own data structures) and
/// allocator state, so the operation is run once to warm up and then several times, and the
/// smallest count is the figure. The cost of the measurement itself (an empty closure measured
/// the same way) is subtracted.
///
/// Swift's `Hasher` is seeded randomly per process, which moves counts of code that hashes by
/// about 0.03%; set `SWIFT_DETERMINISTIC_HASHING=1` in the test environment to remove that too.
public struct InstructionCount: Sendable, Comparable, CustomStringConvertible {
    /// The figure to compare with a budget: the smallest of ``runs``.
    public var instructions: UInt64
    /// Each measured run, with ``overhead`` subtracted.
    public var runs: [UInt64]
    /// What measuring an empty closure counts (already subtracted).
    public var overhead: UInt64
    /// The event counted (`instructions:u` unless asked otherwise).
    public var event: EventSpec
    /// True when the PMU was shared and the counts are scaled estimates rather than exact counts.
    public var multiplexed: Bool

    /// Creates a count (tests of budget logic build their own).
    public init(instructions: UInt64, runs: [UInt64], overhead: UInt64, event: EventSpec, multiplexed: Bool = false) {
        self.instructions = instructions
        self.runs = runs
        self.overhead = overhead
        self.event = event
        self.multiplexed = multiplexed
    }

    /// `(largest run - smallest run) / smallest run`: how repeatable the operation is. Large values
    /// mean the operation itself varies (e.g. it allocates differently each time).
    public var spread: Double {
        guard let lo = runs.min(), let hi = runs.max(), lo > 0 else { return 0 }
        return Double(hi - lo) / Double(lo)
    }

    /// True when ``instructions`` does not exceed `budget`.
    public func isWithin(_ budget: UInt64) -> Bool { instructions <= budget }

    /// Orders by ``instructions``, so that `XCTAssertLessThanOrEqual(count, …)` reads naturally.
    public static func < (a: InstructionCount, b: InstructionCount) -> Bool { a.instructions < b.instructions }

    /// `1234 instructions:u (min of 5 runs, spread 0.01%)`, for assertion messages.
    public var description: String {
        "\(instructions) \(event) (min of \(runs.count) runs, spread \(String(format: "%.2f", spread * 100))%\(multiplexed ? ", multiplexed: scaled estimate" : ""))"
    }
}

/// Counts the user-space instructions `body` retires on the calling thread: the measurement
/// behind instruction-budget tests.
///
/// ```swift
/// let count = try instructionCount { _ = parser.parse(line) }
/// XCTAssertLessThanOrEqual(count.instructions, 20_000, "\(count)")
/// ```
///
/// - Parameters:
///   - event: what to count; `"instructions:u"` by default (user space only, so that system calls
///     and interrupts do not count).
///   - repetitions: measured runs after one warm-up run; the smallest is reported.
/// - Throws: ``SprofError/unsupported(reason:)`` on machines without hardware counters (many VMs
///   and containers), ``SprofError/refused(reason:)`` where perf_event_open is not allowed, or what
///   `body` throws.
public func instructionCount(event: String = "instructions:u", repetitions: Int = 5,
                             of body: () throws -> Void) throws -> InstructionCount {
    let set = try CounterSet([event], scope: .currentThread)
    func once(_ work: () throws -> Void) throws -> CounterValue {
        let (_, values) = try set.measure(work)
        let value = values[0]
        switch value.status {
        case .counted: return value
        case .notCounted:
            throw SprofError.unsupported(reason: "\(value.event) never got onto the PMU (all counters busy?)")
        case .notSupported(let reason):
            throw SprofError.unsupported(reason: reason)
        }
    }
    let empty: () throws -> Void = {}
    try body() // warm-up: lazy initialisation and first-touch work are not the operation's cost
    var overhead = UInt64.max
    for _ in 0..<max(3, repetitions) {
        overhead = min(overhead, UInt64(try once(empty).value ?? 0))
    }
    var readings: [CounterValue] = []
    for _ in 0..<max(1, repetitions) { readings.append(try once(body)) }
    // Exact counts beat scaled estimates; use estimates only when every run was multiplexed.
    let exact = readings.filter { !$0.isMultiplexed }
    let chosen = exact.isEmpty ? readings : exact
    let runs = chosen.map { v -> UInt64 in
        let n = UInt64(v.value ?? 0)
        return n > overhead ? n - overhead : 0
    }
    return InstructionCount(instructions: runs.min() ?? 0, runs: runs, overhead: overhead,
                            event: set.events[0], multiplexed: exact.isEmpty)
}
