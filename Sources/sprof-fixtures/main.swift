// sprof-fixtures: workloads with known shapes, profiled by sprof's end-to-end tests.
//
// Usage: sprof-fixtures MODE [ARGS...]
//   split [SECONDS=1.0]        main → fixtureSplit → splitSixty/splitThirty/splitTen → burnSixty/burnThirty/burnTen
//                              (designed CPU split 60/30/10, time-sliced so it holds at any duration)
//   chain [SECONDS=0.5]        main → fixtureChain → chainLevel1 → … → chainLevel8 → chainLeaf
//   threads [N=4] [SECONDS=0.6] N threads; thread i spins in threadWork{i % 4}; all joined
//   forkexec [SECONDS=0.5]     posix_spawn of this binary with `child`; parent spins in parentWork meanwhile
//   child [SECONDS=0.5]        spins in childWork (the forkexec child)
//   exit N                     spins ~0.1 s in exitWork, then exits with status N
//   signal N                   spins ~0.1 s in signalWork, then raises signal N with its default action
//   recurse DEPTH [SECONDS=0.5] fixtureRecurse → recurseStep × DEPTH → recurseBottom (spins)
//
// Notes for tests:
// - SECONDS are seconds of the spinning thread's own CPU time (CLOCK_THREAD_CPUTIME_ID), not of the
//   wall clock, so the samples to expect (CPU time × rate) do not depend on the machine's load.
// - SwiftPM renames an executable's entry point: the root Swift frame is the symbol `sprof_fixtures_main`,
//   which is an alias (same address) of `main`. Accept either name.
// - Every named function is a free function marked `@inline(never)`. Each non-leaf does work after its
//   call (so no tail calls), and each spinning leaf calls `consume` at the end so that even at -O it is
//   not a frameless leaf: frame-pointer stacks keep the leaf's caller.
// - Spin loops use only `while` and integer operators (which are mandatory-inlined even at -Onone), so
//   in a debug build the samples land in the named leaf itself, not in standard-library helpers.
// - Every mode prints one line `sprof-fixtures MODE: … sink=…` to stdout when done (except exit/signal).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// MARK: - Sinks and clocks

/// Results land here so that the optimizer cannot delete the work. One slot per thread (64 slots).
let sinkSlots: UnsafeMutablePointer<UInt64> = {
    let p = UnsafeMutablePointer<UInt64>.allocate(capacity: 64 * 8)
    p.initialize(repeating: 0, count: 64 * 8)
    return p
}()

/// Folds a value into the sink slot of `slot` (slots are a cache line apart). Not inlined: it is an
/// opaque call that the spinning leaves make last, so they keep their frames.
@inline(never)
func consume(_ value: UInt64, slot: Int = 0) -> UInt64 {
    let p = sinkSlots + (slot & 63) * 8
    p.pointee = (p.pointee &* 0x0000_0100_0000_01B3) &+ (value ^ 0x9E37_79B9_7F4A_7C15)
    return p.pointee
}

func sinkTotal() -> UInt64 {
    var h: UInt64 = 0
    var i = 0
    while i < 64 {
        h ^= sinkSlots[i * 8]
        i += 1
    }
    return h
}

/// The calling thread's CPU time in seconds, not the wall clock: every "S seconds" of a mode is S
/// seconds of CPU time for the thread that spins, so the samples a test can expect (CPU time × rate)
/// hold however loaded the machine is; a loaded machine only makes the run take longer.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Iterations of the spin kernel per unit of a time slice. One round of `split` runs 10 units.
let sliceUnit: UInt64 = 5_000

/// The spin kernel: one xorshift64 step per iteration, a serial dependency chain the optimizer
/// cannot fold. `@_transparent` inlines it even at -Onone, so its samples stay in the calling leaf.
@_transparent
func burn(_ iterations: UInt64, seed: UInt64) -> UInt64 {
    var x = seed | 1
    var acc: UInt64 = 0
    var i: UInt64 = 0
    while i < iterations {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        acc &+= x
        i &+= 1
    }
    return acc
}

// MARK: - split: 60/30/10

@inline(never)
func burnSixty(_ iterations: UInt64, _ seed: UInt64) -> UInt64 {
    return consume(burn(iterations, seed: seed))
}

@inline(never)
func burnThirty(_ iterations32: UInt32, _ seed: UInt64) -> UInt64 {
    let iterations = UInt64(iterations32)
    return consume(burn(iterations, seed: seed))
}

@inline(never)
func burnTen(_ iterations16: UInt16, _ seed: UInt64) -> UInt64 {
    let iterations = UInt64(iterations16)
    return consume(burn(iterations, seed: seed))
}

@inline(never)
func splitSixty(_ round: UInt64) -> UInt64 {
    let r = burnSixty(6 * sliceUnit, round &+ 1)
    return r ^ (round &* 6)  // work after the call: no tail call
}

@inline(never)
func splitThirty(_ round: UInt64) -> UInt64 {
    let r = burnThirty(UInt32(3 * sliceUnit), round &+ 2)
    return r ^ (round &* 3)
}

@inline(never)
func splitTen(_ round: UInt64) -> UInt64 {
    let r = burnTen(UInt16(1 * sliceUnit), round &+ 3)
    return r ^ round
}

@inline(never)
func fixtureSplit(seconds: Double) -> UInt64 {
    let deadline = now() + seconds
    var round: UInt64 = 0
    var h: UInt64 = 0
    // A pseudo-random order per round keeps the rounds from phase-locking with the sampling
    // timer, which would skew the split from run to run.
    var order: UInt64 = 0x9E37_79B9_7F4A_7C15
    repeat {
        order ^= order << 13
        order ^= order >> 7
        order ^= order << 17
        switch order % 3 {
        case 0:
            h ^= splitSixty(round)
            h ^= splitThirty(round)
            h ^= splitTen(round)
        case 1:
            h ^= splitThirty(round)
            h ^= splitTen(round)
            h ^= splitSixty(round)
        default:
            h ^= splitTen(round)
            h ^= splitSixty(round)
            h ^= splitThirty(round)
        }
        round &+= 1
    } while now() < deadline
    _ = consume(h)
    return round
}

// MARK: - chain: 8 levels + leaf

@inline(never)
func chainLeaf(_ seconds: Double, _ level: UInt32) -> UInt64 {
    let deadline = now() + seconds
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    var acc: UInt64 = 0
    repeat {
        var i: UInt64 = 0
        while i < 10 * sliceUnit {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            acc &+= x
            i &+= 1
        }
    } while now() < deadline
    return consume(acc ^ UInt64(level))
}

@inline(never) func chainLevel8(_ s: Double) -> UInt64 { let r = chainLeaf(s, 9); return r ^ 8 }
@inline(never) func chainLevel7(_ s: Double) -> UInt64 { let r = chainLevel8(s); return r ^ 7 }
@inline(never) func chainLevel6(_ s: Double) -> UInt64 { let r = chainLevel7(s); return r ^ 6 }
@inline(never) func chainLevel5(_ s: Double) -> UInt64 { let r = chainLevel6(s); return r ^ 5 }
@inline(never) func chainLevel4(_ s: Double) -> UInt64 { let r = chainLevel5(s); return r ^ 4 }
@inline(never) func chainLevel3(_ s: Double) -> UInt64 { let r = chainLevel4(s); return r ^ 3 }
@inline(never) func chainLevel2(_ s: Double) -> UInt64 { let r = chainLevel3(s); return r ^ 2 }
@inline(never) func chainLevel1(_ s: Double) -> UInt64 { let r = chainLevel2(s); return r ^ 1 }

@inline(never)
func fixtureChain(seconds: Double) -> UInt64 {
    let r = chainLevel1(seconds)
    return consume(r)
}

// MARK: - Generic timed spin used by the remaining leaves (each copy keeps its own frame name)

/// Spins until `deadline` in the caller-named leaf. `@_transparent` forces inlining even at -Onone, so
/// the loop's samples belong to the caller.
@_transparent
func spinUntil(_ deadline: Double, slot: Int) -> UInt64 {
    var x: UInt64 = 0x2545_F491_4F6C_DD1D &+ UInt64(slot)
    var acc: UInt64 = 0
    repeat {
        var i: UInt64 = 0
        while i < 10 * sliceUnit {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            acc &+= x
            i &+= 1
        }
    } while now() < deadline
    return consume(acc, slot: slot)
}

// MARK: - threads

// The spinning leaves below run the same inlined loop, so each has a distinct signature: in -O builds
// Swift's function-merging pass would otherwise fold identical bodies into one `…Tm` function (taking
// the named frames with it). Parameter/result types are part of what it must match.
@inline(never) func threadWork0(_ deadline: Double, _ slot: Int) -> UInt64 { spinUntil(deadline, slot: slot) }
@inline(never) func threadWork1(_ deadline: Double, _ slot: Int32) -> UInt64 { spinUntil(deadline, slot: Int(slot)) }
@inline(never) func threadWork2(_ deadline: Double, _ slot: Int16) -> UInt64 { spinUntil(deadline, slot: Int(slot)) }
@inline(never) func threadWork3(_ deadline: Double, _ slot: Int8) -> UInt64 { spinUntil(deadline, slot: Int(slot)) }

/// What one thread gets: its index and how many seconds of its own CPU time to spin.
final class ThreadJob {
    let index: Int
    let seconds: Double
    init(index: Int, seconds: Double) {
        self.index = index
        self.seconds = seconds
    }
}

/// Names the calling thread (pthread_setname_np is not visible without _GNU_SOURCE; prctl is variadic).
func setThreadName(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY)
    guard fd >= 0 else { return }
    _ = name.withCString { write(fd, $0, strlen($0)) }
    close(fd)
}

@inline(never)
func threadMain(_ job: ThreadJob) -> UInt64 {
    let slot = 1 + job.index  // slot 0 belongs to the main thread
    let deadline = now() + job.seconds  // this thread's CPU clock
    let r: UInt64
    switch job.index % 4 {
    case 0: r = threadWork0(deadline, slot)
    case 1: r = threadWork1(deadline, Int32(slot))
    case 2: r = threadWork2(deadline, Int16(slot))
    default: r = threadWork3(deadline, Int8(slot))
    }
    return r ^ UInt64(job.index)
}

@inline(never)
func fixtureThreads(count: Int, seconds: Double) -> Int {
    var threads: [pthread_t] = []
    for i in 0..<count {
        let job = Unmanaged.passRetained(ThreadJob(index: i, seconds: seconds)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { raw in
            let job = Unmanaged<ThreadJob>.fromOpaque(raw!).takeRetainedValue()
            // Thread names show in COMM records: work-0, work-1, ...
            setThreadName("work-\(job.index)")
            _ = threadMain(job)
            return nil
        }, job)
        if rc != 0 {
            fputs("sprof-fixtures threads: pthread_create failed: \(String(cString: strerror(rc)))\n", stderr)
            exit(1)
        }
        threads.append(tid)
    }
    for t in threads { pthread_join(t, nil) }
    return threads.count
}

// MARK: - forkexec / child

@inline(never) func parentWork(_ deadline: Double) -> UInt64 { spinUntil(deadline, slot: 0) }
@inline(never) func childWork(_ deadline: Double) -> UInt32 { UInt32(truncatingIfNeeded: spinUntil(deadline, slot: 0)) }

/// The real path of this executable (spawning `/proc/self/exe` itself would make the child's comm `exe`).
func selfExecutablePath() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    if n <= 0 { return "/proc/self/exe" }
    buf[n] = 0
    return String(cString: buf)
}

@inline(never)
func fixtureForkExec(seconds: Double) -> Int32 {
    let path = selfExecutablePath()
    let args = [path, "child", String(seconds)]
    var cArgs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, nil, nil, &cArgs, environ)
    if rc != 0 {
        fputs("sprof-fixtures forkexec: posix_spawn \(path) failed: \(String(cString: strerror(rc)))\n", stderr)
        exit(1)
    }
    // Spin while the child runs, for a bit less than it does.
    _ = parentWork(now() + seconds * 0.6)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = status & 0x7f == 0
    return exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

// MARK: - exit / signal

@inline(never) func exitWork(_ deadline: Double) -> UInt16 { UInt16(truncatingIfNeeded: spinUntil(deadline, slot: 0)) }
@inline(never) func signalWork(_ deadline: Double) -> UInt8 { UInt8(truncatingIfNeeded: spinUntil(deadline, slot: 0)) }

// MARK: - recurse

@inline(never)
func recurseBottom(_ seconds: Double) -> Bool { spinUntil(now() + seconds, slot: 0) & 1 == 1 }

@inline(never)
func recurseStep(_ remaining: Int, _ seconds: Double) -> UInt64 {
    if remaining <= 1 {
        let r: UInt64 = recurseBottom(seconds) ? 3 : 1
        return consume(r)
    }
    let r = recurseStep(remaining - 1, seconds)
    // An opaque call after the recursive one: no tail call, no accumulator-recursion-to-loop rewrite.
    return consume(r ^ UInt64(remaining))
}

@inline(never)
func fixtureRecurse(depth: Int, seconds: Double) -> UInt64 {
    let r = recurseStep(depth, seconds)
    return consume(r)
}

// MARK: - Command line

let usage = "usage: sprof-fixtures split [SECONDS] | chain [SECONDS] | threads [N] [SECONDS] | forkexec [SECONDS]"
    + " | child [SECONDS] | exit N | signal N | recurse DEPTH [SECONDS]"

func usageError(_ message: String) -> Never {
    fputs("sprof-fixtures: \(message) (\(usage))\n", stderr)
    exit(2)
}

let arguments = Array(CommandLine.arguments.dropFirst())

func argSeconds(_ i: Int, default value: Double) -> Double {
    guard i < arguments.count else { return value }
    guard let s = Double(arguments[i]), s >= 0, s <= 3600 else { usageError("bad SECONDS '\(arguments[i])'") }
    return s
}

func argInt(_ i: Int, name: String, range: ClosedRange<Int>, default value: Int?) -> Int {
    guard i < arguments.count else {
        if let value { return value }
        usageError("missing \(name)")
    }
    guard let n = Int(arguments[i]), range.contains(n) else {
        usageError("bad \(name) '\(arguments[i])': want \(range.lowerBound)...\(range.upperBound)")
    }
    return n
}

func expectAtMost(_ n: Int) {
    if arguments.count > n { usageError("too many arguments for \(arguments[0])") }
}

func report(_ text: String) {
    print("sprof-fixtures \(arguments[0]): \(text) sink=\(String(sinkTotal(), radix: 16))")
}

guard let mode = arguments.first else { usageError("missing MODE") }

switch mode {
case "split":
    expectAtMost(2)
    let rounds = fixtureSplit(seconds: argSeconds(1, default: 1.0))
    report("rounds=\(rounds)")
case "chain":
    expectAtMost(2)
    _ = fixtureChain(seconds: argSeconds(1, default: 0.5))
    report("depth=8")
case "threads":
    expectAtMost(3)
    let n = fixtureThreads(count: argInt(1, name: "N", range: 1...63, default: 4), seconds: argSeconds(2, default: 0.6))
    report("threads=\(n)")
case "forkexec":
    expectAtMost(2)
    let status = fixtureForkExec(seconds: argSeconds(1, default: 0.5))
    report("child-status=\(status)")
    exit(status)
case "child":
    expectAtMost(2)
    _ = childWork(now() + argSeconds(1, default: 0.5))
    report("pid=\(getpid())")
case "exit":
    expectAtMost(2)
    let status = argInt(1, name: "N", range: 0...255, default: nil)
    _ = exitWork(now() + 0.1)
    exit(Int32(status))
case "signal":
    expectAtMost(2)
    let sig = argInt(1, name: "N", range: 1...64, default: nil)
    _ = signalWork(now() + 0.1)
    signal(Int32(sig), SIG_DFL)
    raise(Int32(sig))
    // Still alive: the signal's default action is to ignore it (e.g. SIGCHLD, SIGWINCH), or SIGSTOP was continued.
    fputs("sprof-fixtures signal: survived signal \(sig)\n", stderr)
    exit(0)
case "recurse":
    expectAtMost(3)
    let depth = argInt(1, name: "DEPTH", range: 1...10_000, default: nil)
    _ = fixtureRecurse(depth: depth, seconds: argSeconds(2, default: 0.5))
    report("depth=\(depth)")
default:
    usageError("unknown mode '\(mode)'")
}
