#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Recognisable in-process workloads for library tests that profile their own process.
//
//   workloadOuter(seconds:) → workloadMiddle(_:rounds:) → workloadLeaf(_:rounds:)   (spins until a deadline)
//   workloadOuter(rounds:)  → the same chain, spinning a fixed number of rounds (use this where a test
//                             counts samples: its CPU time does not shrink on a loaded machine)
//   workloadSpin(iterations:)                                            (a fixed amount of work)
//
// All are `@inline(never)`, do work after each call (no tail calls), and publish their results to
// `workloadSink` so the optimizer cannot delete them. The leaf ends with an opaque call, so it has a
// frame even where leaf frames are otherwise omitted. This target is built WITHOUT
// `-fno-omit-frame-pointer`: in a debug build (how tests run) Swift keeps frame pointers anyway, but a
// release build may omit them, so only count on these frames in frame-pointer stacks of debug builds.
// Spin loops use only `while` and integer operators, so their samples land in the named function
// itself rather than in standard-library helpers, even at -Onone.

/// Where workload results go. Read it (e.g. print it or compare it with 0) to keep the work alive.
nonisolated(unsafe) public var workloadSink: UInt64 = 0

@inline(never)
func workloadPublish(_ value: UInt64) -> UInt64 {
    workloadSink = (workloadSink &* 0x0000_0100_0000_01B3) &+ (value ^ 0x9E37_79B9_7F4A_7C15)
    return workloadSink
}

func workloadNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// The innermost frame: spins (xorshift64 chain) `rounds` rounds of 20,000 steps when `rounds` > 0,
/// else until `deadline` (CLOCK_MONOTONIC seconds).
@inline(never)
public func workloadLeaf(_ deadline: Double, rounds: Int = 0) -> UInt64 {
    var x: UInt64 = 0x2545_F491_4F6C_DD1D
    var acc: UInt64 = 0
    var round = 0
    repeat {
        var i = 0
        while i < 20_000 {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            acc &+= x
            i &+= 1
        }
        round &+= 1
    } while rounds > 0 ? round < rounds : workloadNow() < deadline
    return workloadPublish(acc)
}

/// The middle frame.
@inline(never)
public func workloadMiddle(_ deadline: Double, rounds: Int = 0) -> UInt64 {
    let r = workloadLeaf(deadline, rounds: rounds)
    return workloadPublish(r ^ 2)
}

/// Spins for `seconds` of wall-clock time in `workloadOuter → workloadMiddle → workloadLeaf`.
/// Returns a value derived from the work (also folded into ``workloadSink``).
@inline(never)
@discardableResult
public func workloadOuter(seconds: Double) -> UInt64 {
    let r = workloadMiddle(workloadNow() + seconds)
    return workloadPublish(r ^ 1)
}

/// Spins `rounds` rounds of 20,000 xorshift steps in `workloadOuter → workloadMiddle → workloadLeaf`:
/// a fixed amount of CPU time whatever the machine's load, so sample counts can have floors.
@inline(never)
@discardableResult
public func workloadOuter(rounds: Int) -> UInt64 {
    let r = workloadMiddle(0, rounds: max(rounds, 1))
    return workloadPublish(r ^ 1)
}

/// A fixed amount of work: `iterations` rounds of a 7-operation xorshift step (about 7-8 instructions
/// per iteration in a release build; many more at -Onone, where the loop keeps its variables in memory).
/// Deterministic: the same `iterations` always executes the same instructions.
@inline(never)
@discardableResult
public func workloadSpin(iterations: Int) -> UInt64 {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    var acc: UInt64 = 0
    var i = 0
    while i < iterations {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        acc &+= x
        i &+= 1
    }
    return workloadPublish(acc)
}
