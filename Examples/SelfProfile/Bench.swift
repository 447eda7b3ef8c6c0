// `sprof-example --bench`: the measurements in bench/RESULTS.md (Library section). Build with -c release.
#if canImport(Glibc)
import Glibc
#endif
import Sprof

/// A CPU-bound loop with no memory traffic and no calls: what sampling interrupts cost shows in
/// it undiluted.
@inline(never)
func spin(_ iterations: Int) -> UInt64 {
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    for i in 0..<iterations {
        x = x &* 6_364_136_223_846_793_005 &+ UInt64(truncatingIfNeeded: i)
        x ^= x >> 29
    }
    return x
}

func nanoseconds(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func runBenchmarks() {
    let iterations = 400_000_000
    var sink: UInt64 = spin(iterations / 10) // warm up
    // Rounds alternate the three settings so that drift (thermal, other load) hits all alike.
    var wall: [String: [Double]] = [:], thread: [String: [Double]] = [:], helpers: [String: [Double]] = [:]
    var samples: [String: [Int]] = [:]
    let settings: [(String, Int?)] = [("off", nil), ("99 Hz", 99), ("999 Hz", 999)]
    for _ in 0..<9 {
        for (label, hz) in settings {
            var profiler: Profiler?
            let cpu0 = nanoseconds(CLOCK_PROCESS_CPUTIME_ID)
            if let hz {
                var options = Profiler.Options(rate: .frequency(hz))
                options.keepSamples = false
                profiler = Profiler(options: options)
                do { try profiler!.start() } catch { print(error); return }
            }
            let own0 = nanoseconds(CLOCK_THREAD_CPUTIME_ID), t0 = nanoseconds(CLOCK_MONOTONIC)
            sink &+= spin(iterations)
            let t1 = nanoseconds(CLOCK_MONOTONIC), own1 = nanoseconds(CLOCK_THREAD_CPUTIME_ID)
            if let profiler {
                guard let profile = try? profiler.stop() else { return }
                samples[label, default: []].append(profile.statistics.samples)
            }
            // Process CPU from before start() to after stop(), minus the loop thread's own: what
            // start, stop and sprof's threads cost (drain, unwinding, symbolization).
            let cpu1 = nanoseconds(CLOCK_PROCESS_CPUTIME_ID)
            wall[label, default: []].append(Double(t1 - t0) / 1e9)
            thread[label, default: []].append(Double(own1 - own0) / 1e9)
            helpers[label, default: []].append(Double((cpu1 - cpu0) - (own1 - own0)) / 1e9)
        }
    }
    let baseWall = median(wall["off"]!), baseThread = median(thread["off"]!)
    print("CPU-bound loop, \(iterations) iterations, median of 9 alternating rounds (sink \(sink & 1))")
    print("| setting | samples | loop thread CPU s | overhead | loop wall s | overhead | sprof CPU outside the loop s |")
    print("|---|---|---|---|---|---|---|")
    for (label, _) in settings {
        let w = median(wall[label]!), c = median(thread[label]!), h = median(helpers[label]!)
        let n = samples[label].map { String(Int(median($0.map(Double.init)))) } ?? "-"
        print(String(format: "| %@ | %@ | %.3f | %+.2f%% | %.3f | %+.2f%% | %.3f |", label, n, c, 100 * (c - baseThread) / baseThread,
                     w, 100 * (w - baseWall) / baseWall, h))
    }
    print("")
    benchmarkStartStop()
    benchmarkReads()
}

/// Cost of one counter read: CounterSet.read() (what a hot loop would call) per event kind,
/// and start/stop pairs (what measure() adds around a closure).
func benchmarkReads() {
    // The floor for any read(2)-based counter read on this machine: one trivial system call.
    let calls = 1_000_000
    var pids: Int32 = 0
    let s0 = nanoseconds(CLOCK_MONOTONIC)
    for _ in 0..<calls { pids &+= getppid() }
    let s1 = nanoseconds(CLOCK_MONOTONIC)
    print(String(format: "one trivial system call (getppid): %.0f ns%@", Double(s1 - s0) / Double(calls), pids == 42 ? " " : ""))
    print("")
    print("| counter set | path | read() ns | start+stop ns |")
    print("|---|---|---|---|")
    for events in [["instructions:u"], ["task-clock"], ["instructions:u", "cycles:u"], ["task-clock", "page-faults"]] {
        guard let set = try? CounterSet(events) else { print("| \(events) | cannot open | | |"); continue }
        if set.read().allSatisfy({ if case .notSupported = $0.status { return true } else { return false } }) {
            print("| \(events.joined(separator: ", ")) | not supported here | - | - |")
            continue
        }
        try? set.start()
        let n = 1_000_000
        var sink: UInt64 = 0
        let t0 = nanoseconds(CLOCK_MONOTONIC)
        for _ in 0..<n { sink &+= set.read()[0].raw }
        let t1 = nanoseconds(CLOCK_MONOTONIC)
        try? set.stop()
        let m = 200_000
        let t2 = nanoseconds(CLOCK_MONOTONIC)
        for _ in 0..<m { try? set.start(); try? set.stop() }
        let t3 = nanoseconds(CLOCK_MONOTONIC)
        let path = set.readsInUserSpace ? "rdpmc (user space)" : "read(2)"
        print(String(format: "| %@ | %@ | %.0f | %.0f |", events.joined(separator: ", "), path,
                     Double(t1 - t0) / Double(n), Double(t3 - t2) / Double(m)) + (sink == 42 ? " " : ""))
    }
}

/// What start() and stop() cost around a short span (median of 9): opening one event per thread
/// and CPU, mapping the buffers, reading /proc/self/maps; then draining and symbolizing.
func benchmarkStartStop() {
    var starts: [Double] = [], stops: [Double] = []
    var sink: UInt64 = 0
    for _ in 0..<9 {
        let profiler = Profiler()
        let t0 = nanoseconds(CLOCK_MONOTONIC)
        do { try profiler.start() } catch { print(error); return }
        let t1 = nanoseconds(CLOCK_MONOTONIC)
        sink &+= spin(20_000_000)
        let t2 = nanoseconds(CLOCK_MONOTONIC)
        guard let profile = try? profiler.stop() else { return }
        let t3 = nanoseconds(CLOCK_MONOTONIC)
        sink &+= UInt64(profile.statistics.samples)
        starts.append(Double(t1 - t0) / 1e6)
        stops.append(Double(t3 - t2) / 1e6)
    }
    print(String(format: "start(): %.2f ms, stop() after a ~20 ms span at 999 Hz: %.2f ms (median of 9)%@",
                 median(starts), median(stops), sink == 42 ? " " : ""))
    print("")
}
