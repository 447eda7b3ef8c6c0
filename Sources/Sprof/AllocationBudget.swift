#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofRecording

/// The allocations an operation made on the calling thread, counted exactly (no sampling), so
/// that a test can say "this loop allocates nothing" or "at most 3 objects per call".
///
/// Counted: calls of the allocator's malloc, calloc, realloc (not `realloc(ptr, 0)`, a free),
/// posix_memalign, aligned_alloc, memalign, valloc and pvalloc made by the calling thread while
/// the operation runs; C++ `new` and Swift's `swift_allocObject` reach malloc and count there.
/// Not counted: other threads (including ones the operation starts), memory taken with mmap or
/// brk directly, allocators with other entry points (a program linked with jemalloc's `je_`
/// prefix), and frees (a budget limits what is taken, not what is kept). See
/// ``allocationCount(repetitions:of:)`` for the mechanism.
public struct AllocationCount: Sendable, Comparable, CustomStringConvertible {
    /// Allocation calls of the run with the fewest (the figure to compare with a budget).
    public var objects: Int
    /// Bytes asked for by the calls of that run.
    public var bytes: UInt64
    /// Every measured run, in order.
    public var runs: [ThreadAllocationCounter.Reading]
    /// The allocator file probed (libc unless another allocator is preloaded or linked in).
    public var allocator: String

    /// Creates a count (tests of budget logic build their own).
    public init(objects: Int, bytes: UInt64, runs: [ThreadAllocationCounter.Reading] = [], allocator: String = "") {
        self.objects = objects
        self.bytes = bytes
        self.runs = runs
        self.allocator = allocator
    }

    /// False when a run's records were lost (more calls than the ring buffer holds, about
    /// 21,000): ``objects`` is then still exact, ``bytes`` a lower bound.
    public var complete: Bool { runs.allSatisfy(\.complete) }

    /// True when neither ``objects`` exceeds `objects` nor ``bytes`` exceeds `bytes`.
    public func isWithin(objects: Int, bytes: UInt64 = .max) -> Bool {
        self.objects <= objects && self.bytes <= bytes
    }

    /// Orders by ``objects``, then ``bytes``.
    public static func < (a: AllocationCount, b: AllocationCount) -> Bool {
        (a.objects, a.bytes) < (b.objects, b.bytes)
    }

    /// `1000 allocations, 100000 bytes (min of 3 runs; malloc=1000)`, for assertion messages.
    public var description: String {
        let calls = runs.first { $0.objects == objects && $0.bytes == bytes }?.calls ?? [:]
        let byName = calls.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let runsText = runs.count == 1 ? "1 run" : "min of \(runs.count) runs"
        return "\(objects) allocation\(objects == 1 ? "" : "s"), \(bytes) bytes (\(runsText)\(byName.isEmpty ? "" : "; " + byName)\(complete ? "" : "; records lost, bytes are a lower bound"))"
    }
}

/// A block allocated more than its budget allowed (``checkAllocationBudget(objects:bytes:repetitions:_:)``).
public struct AllocationBudgetExceeded: Error, Sendable, CustomStringConvertible {
    /// What the block allocated.
    public var count: AllocationCount
    /// The objects allowed.
    public var objects: Int
    /// The bytes allowed (`UInt64.max`: no byte budget).
    public var bytes: UInt64

    /// `allocated 1000 objects, 100000 bytes; the budget is 10 objects`.
    public var description: String {
        let budget = "\(objects) object\(objects == 1 ? "" : "s")" + (bytes == .max ? "" : " and \(bytes) bytes")
        return "allocation budget exceeded: \(count); the budget is \(budget)"
    }
}

/// Counts the allocations `body` makes on the calling thread: the measurement behind allocation
/// budgets, exact (every call counted, no sampling).
///
/// ```swift
/// let count = try allocationCount { parser.parse(line) }
/// XCTAssertEqual(count.objects, 0, "\(count)")
/// ```
///
/// The mechanism: uprobes (perf_event_open, the `uprobe` PMU) on the entries of the allocation
/// functions of the allocator this process calls (the first mapped file defining `malloc`:
/// the executable, a preloaded allocator, else libc), opened for the calling thread only and
/// counting every call, with the size arguments read from the sampled registers. It runs `body`
/// once to warm up (lazy initialisation allocates once), then `repetitions` times, and reports the
/// run with the fewest allocations. While measuring, every allocation call of the process traps
/// into the kernel (about 1.5 µs each here), on any thread; only the calling thread's are counted.
///
/// - Parameters:
///   - repetitions: measured runs after the warm-up; the smallest is reported.
///   - warmUp: run `body` once unmeasured first.
/// - Throws: ``SprofError/refused(reason:)`` without CAP_SYS_ADMIN (uprobes need it),
///   ``SprofError/unsupported(reason:)`` when the kernel has no uprobe PMU or no allocator is
///   found, ``SprofError/system(_:)`` for other kernel failures, or what `body` throws.
public func allocationCount(repetitions: Int = 3, warmUp: Bool = true, of body: () throws -> Void) throws -> AllocationCount {
    let counter = try AllocationCounters.open()
    if warmUp { try body() }
    var runs: [ThreadAllocationCounter.Reading] = []
    for _ in 0..<max(1, repetitions) { runs.append(try counter.measure(body)) }
    let best = runs.min { ($0.objects, $0.bytes) < ($1.objects, $1.bytes) }!
    return AllocationCount(objects: best.objects, bytes: best.bytes, runs: runs, allocator: counter.allocator)
}

/// Runs `body` under ``allocationCount(repetitions:warmUp:of:)`` and throws when it allocated more
/// than `objects` objects or `bytes` bytes: the one-line allocation budget of a test (a thrown
/// error fails an XCTest test with its description).
///
/// ```swift
/// try checkAllocationBudget(objects: 0) { ring.push(value) }   // "this allocates nothing"
/// ```
///
/// - Returns: the count, for further checks.
/// - Throws: ``AllocationBudgetExceeded`` over budget; what ``allocationCount(repetitions:warmUp:of:)`` throws.
@discardableResult
public func checkAllocationBudget(objects: Int, bytes: UInt64 = .max, repetitions: Int = 3,
                                  _ body: () throws -> Void) throws -> AllocationCount {
    let count = try allocationCount(repetitions: repetitions, of: body)
    guard count.isWithin(objects: objects, bytes: bytes) else {
        throw AllocationBudgetExceeded(count: count, objects: objects, bytes: bytes)
    }
    return count
}

/// Opening the counter, with the library's error type.
enum AllocationCounters {
    static func open() throws(SprofError) -> ThreadAllocationCounter {
        guard Uprobes.pmuType != nil else {
            throw .unsupported(reason: "this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe); allocation budgets need CONFIG_UPROBE_EVENTS")
        }
        guard HeapOptions.uprobesAllowed else {
            throw .refused(reason: "allocation budgets put uprobes on the allocator, which needs CAP_SYS_ADMIN: run the tests as root (or with sudo)")
        }
        guard let allocator = AllocatorProbes.allocator(of: getpid()) else {
            throw .unsupported(reason: "no mapped file of this process defines malloc; nothing to probe")
        }
        do {
            return try ThreadAllocationCounter(allocator: allocator)
        } catch {
            throw SprofError(error)
        }
    }
}
