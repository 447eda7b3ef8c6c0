// sprof-stage-bench: throughput of each pipeline stage, measured offline on real records.
//
// 1. Records a workload twice with the real RecordingSession (frame-pointer call chains on an fp
//    build, DWARF registers + user stack on a no-fp build) and keeps every record in memory.
// 2. Times, each stage alone, over those records (median of REPS passes, min and max too):
//    - parse:   RecordParser.parse over the records re-serialized byte for byte (RecordBuilder),
//               fp and dwarf layouts (dwarf records carry the copied user stack, so they are big);
//    - unwind:  Callchain.frames (fp: the kernel already walked the stack) and
//               DwarfUnwinder.unwindUser (dwarf: libdw over the copied stack), cold (first pass, a
//               fresh unwinder: Dwfl set-up and CFI loading) and warm;
//    - symbols: Symbolizer lookups of every frame of every sample (no per-address cache in front,
//               unlike ProfileBuilder), cold (fresh Symbolizer: ELF loading) and warm;
//    - render:  FlameGraph.renderBytes of a synthetic FoldedStacks with STACKS distinct stacks
//               (default 100k), plus parsing and serializing its folded text.
//    - pprof:   PprofFormat.encode (protobuf + gzip) of a profile with those STACKS distinct stacks
//               (addresses, a mapping, 8 threads, samples/count + cpu/nanoseconds, as a recording
//               gives), its size against the folded text, reading it back, and speedscope output.
// 3. Prints a table on stderr and one JSON object on stdout (bench/run reads it).
//
// Usage: sprof-stage-bench [--reps N] [--stacks N] --fp-cmd "CMD ARGS" --dwarf-cmd "CMD ARGS"
//        [--freq HZ]
//        sprof-stage-bench --formats-only [--reps N] [--stacks N]   (render and pprof only: no recording)
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Sprof
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofOutput
import SprofProfile
import SprofFormats
import SprofTestSupport

// MARK: - Arguments

var reps = 7
var stackCount = 100_000
var fpCommand: [String] = []
var dwarfCommand: [String] = []
var frequency = 4000
var formatsOnly = false
do {
    var args = Array(CommandLine.arguments.dropFirst())
    func value(_ name: String) -> String {
        guard !args.isEmpty else { fputs("sprof-stage-bench: \(name) needs a value\n", stderr); exit(2) }
        return args.removeFirst()
    }
    while !args.isEmpty {
        let a = args.removeFirst()
        switch a {
        case "--reps": reps = max(1, Int(value(a)) ?? 7)
        case "--stacks": stackCount = max(1, Int(value(a)) ?? 100_000)
        case "--fp-cmd": fpCommand = value(a).split(separator: " ").map(String.init)
        case "--dwarf-cmd": dwarfCommand = value(a).split(separator: " ").map(String.init)
        case "--freq": frequency = max(1, Int(value(a)) ?? 4000)
        case "--formats-only": formatsOnly = true
        default:
            fputs("usage: sprof-stage-bench [--reps N] [--stacks N] [--freq HZ] --fp-cmd 'CMD' --dwarf-cmd 'CMD' | --formats-only\n", stderr)
            exit(2)
        }
    }
}

// MARK: - Timing

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

struct Timing {
    var seconds: [Double]
    var median: Double { let s = seconds.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
    var min: Double { seconds.min() ?? 0 }
    var max: Double { seconds.max() ?? 0 }
}

/// Runs `body` `count` times and returns the wall time of each run.
func measure(_ count: Int, _ body: () -> Void) -> Timing {
    var out: [Double] = []
    for _ in 0..<count {
        let t0 = now()
        body()
        out.append(Double(now() - t0) / 1e9)
    }
    return Timing(seconds: out)
}

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

// MARK: - Capturing real records

struct Capture {
    var layout: SampleLayout
    var records: [PerfRecord]
    var samples: [SampleRecord] { records.compactMap { if case .sample(let s) = $0 { return s } else { return nil } } }
}

func capture(_ command: [String], callGraph: SamplingOptions.CallGraph) -> Capture {
    var options = SamplingOptions(event: .cpuClock, rate: .frequency(frequency), callGraph: callGraph)
    options.ringPages = 256
    do {
        let cmd = try WaitingCommand(arguments: command)
        let session = try RecordingSession(options: options, target: .command(cmd))
        try cmd.start()
        var records: [PerfRecord] = []
        try session.record { records.append(contentsOf: $0) }
        _ = cmd.wait()
        return Capture(layout: session.layout, records: records)
    } catch {
        fputs("sprof-stage-bench: recording \(command.joined(separator: " ")) failed: \(error)\n", stderr)
        exit(1)
    }
}

/// The records laid out as the kernel writes them, and the offset of each record.
func serialize(_ c: Capture) -> (bytes: [UInt8], offsets: [Int]) {
    let b = RecordBuilder(layout: c.layout)
    var bytes: [UInt8] = []
    var offsets: [Int] = []
    for r in c.records {
        let encoded: [UInt8]
        switch r {
        case .sample(let s): encoded = b.sample(s)
        case .mmap(let m): encoded = b.mmap2(pid: m.pid, tid: m.tid, start: m.start, length: m.length, pgoff: m.pageOffset,
                                             path: m.path, buildID: m.buildID, prot: m.protection, time: m.time)
        case .comm(let cr): encoded = b.comm(pid: cr.pid, tid: cr.tid, name: cr.name, exec: cr.isExec, time: cr.time)
        case .fork(let t): encoded = b.fork(pid: t.pid, ppid: t.parentPID, tid: t.tid, ptid: t.parentTID, time: t.time)
        case .exit(let t): encoded = b.fork(pid: t.pid, ppid: t.parentPID, tid: t.tid, ptid: t.parentTID, time: t.time, exit: true)
        default: continue
        }
        offsets.append(bytes.count)
        bytes += encoded
    }
    return (bytes, offsets)
}

/// The process table after every side-band record (exits left out, so that late samples still find
/// their process), as the pipeline sees it at the end of a recording.
func processTable(_ c: Capture) -> ProcessTable {
    let table = ProcessTable()
    table.readProcForUnknown = false
    for r in c.records {
        switch r {
        case .sample, .exit: continue
        default: table.apply(r)
        }
    }
    return table
}

// MARK: - Results

var results: [String: Any] = [:]
var lines: [String] = []

func pad(_ s: String, _ width: Int = 34) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }

func report(_ key: String, _ label: String, items: Int, unit: String, _ t: Timing) {
    let rate = Double(items) / t.median
    results[key] = ["items": items, "median_s": t.median, "min_s": t.min, "max_s": t.max,
                    "per_s": rate, "per_s_min": Double(items) / t.max, "per_s_max": Double(items) / t.min, "unit": unit]
    lines.append(pad(label) + String(format: " %12.0f ", rate) + unit + "/s  "
                 + String(format: "(%.0f–%.0f)  ", Double(items) / t.max, Double(items) / t.min)
                 + "\(items) \(unit), " + String(format: "median %.4f s", t.median))
}

func reportTime(_ key: String, _ label: String, _ t: Timing, note: String) {
    results[key] = ["median_s": t.median, "min_s": t.min, "max_s": t.max, "note": note]
    lines.append(pad(label) + String(format: " %12.4f s  (%.4f–%.4f)  ", t.median, t.min, t.max) + note)
}

// MARK: - Parse

func benchParse(_ c: Capture, name: String) {
    let (bytes, offsets) = serialize(c)
    let parser = RecordParser(layout: c.layout)
    var ends = Array(offsets.dropFirst()); ends.append(bytes.count)
    let t = bytes.withUnsafeBytes { raw in
        measure(reps) {
            var n = 0
            for i in 0..<offsets.count {
                let slice = UnsafeRawBufferPointer(rebasing: raw[offsets[i]..<ends[i]])
                if case .sample = try? parser.parse(slice) { n += 1 }
            }
            blackHole(n)
        }
    }
    report("parse_\(name)", "parse (\(name), \(bytes.count / max(1, offsets.count)) B/record)", items: offsets.count, unit: "records", t)
    results["parse_\(name)_bytes"] = bytes.count
}

// MARK: - Main

// Recording-based stages (skipped with --formats-only, which needs no perf_event_open).
if !formatsOnly {
    guard !fpCommand.isEmpty, !dwarfCommand.isEmpty else {
        fputs("sprof-stage-bench: give --fp-cmd and --dwarf-cmd\n", stderr)
        exit(2)
    }
    let fp = capture(fpCommand, callGraph: .framePointer)
    let dwarf = capture(dwarfCommand, callGraph: .dwarf(stackSize: 8192))
    let fpSamples = fp.samples
    let dwarfSamples = dwarf.samples
    lines.append("captured: fp \(fpSamples.count) samples of \(fp.records.count) records; dwarf \(dwarfSamples.count) samples of \(dwarf.records.count) records")
    results["fp_samples"] = fpSamples.count
    results["dwarf_samples"] = dwarfSamples.count

    benchParse(fp, name: "fp")
    benchParse(dwarf, name: "dwarf")

    // Unwind, fp: the kernel walked the frame pointers; this is sprof's share.
    let fpTable = processTable(fp)
    var fpFrames: [(StackFrame, Int32)] = []
    let tFP = measure(reps) {
        var n = 0
        for s in fpSamples { n += Callchain.frames(of: s).frames.count }
        blackHole(n)
    }
    for s in fpSamples { for f in Callchain.frames(of: s).frames { fpFrames.append((f, s.pid)) } }
    report("unwind_fp", "unwind fp (callchain → frames)", items: fpSamples.count, unit: "samples", tFP)

    // Unwind, dwarf: cold = a fresh DwarfUnwinder (Dwfl per process, CFI loading) over all samples.
    let dwarfTable = processTable(dwarf)
    var dwarfFrames: [(StackFrame, Int32)] = []
    var dwarfFrameCount = 0
    var cold: [Double] = []
    var warm: [Double] = []
    for _ in 0..<max(3, reps / 2) {
        let unwinder = DwarfUnwinder()
        var t0 = now()
        var frames = 0
        for s in dwarfSamples { frames += unwinder.unwindUser(s, process: dwarfTable.process(s.pid, tid: s.tid)).frames.count }
        cold.append(Double(now() - t0) / 1e9)
        t0 = now()
        for s in dwarfSamples { frames += unwinder.unwindUser(s, process: dwarfTable.process(s.pid, tid: s.tid)).frames.count }
        warm.append(Double(now() - t0) / 1e9)
        dwarfFrameCount = frames / 2
    }
    do {
        let unwinder = DwarfUnwinder()
        for s in dwarfSamples {
            let p = dwarfTable.process(s.pid, tid: s.tid)
            for f in unwinder.unwindUser(s, process: p).frames { dwarfFrames.append((f, s.pid)) }
        }
    }
    report("unwind_dwarf_cold", "unwind dwarf, cold (fresh Dwfl)", items: dwarfSamples.count, unit: "samples", Timing(seconds: cold))
    report("unwind_dwarf_warm", "unwind dwarf, warm", items: dwarfSamples.count, unit: "samples", Timing(seconds: warm))
    let depth = Double(dwarfFrameCount) / Double(max(1, dwarfSamples.count))
    results["dwarf_frames_per_sample"] = depth
    lines.append(String(format: "  dwarf: %.2f user frames per sample (1.0 = leaf only: DWARF unwinding not active)", depth))

    // Symbol lookups: every frame of every fp sample, as a lookup each.
    func lookups(_ symbolizer: Symbolizer, _ frames: [(StackFrame, Int32)], _ table: ProcessTable) -> Int {
        var n = 0
        for (f, pid) in frames {
            if f.isKernel {
                n += symbolizer.symbolizeKernel(f.lookupAddress).name.count
            } else if let m = table.process(pid, tid: pid).mapping(containing: f.address) {
                n += symbolizer.symbolize(f.lookupAddress, in: m, pid: pid).count
            } else {
                n += symbolizer.symbolizeUnmapped(f.lookupAddress, pid: pid).name.count
            }
        }
        return n
    }
    var symCold: [Double] = []
    var symWarm: [Double] = []
    for _ in 0..<max(3, reps / 2) {
        let symbolizer = Symbolizer(options: SymbolizerOptions(demangle: true, inlineFrames: true))
        var t0 = now()
        blackHole(lookups(symbolizer, fpFrames, fpTable))
        symCold.append(Double(now() - t0) / 1e9)
        t0 = now()
        blackHole(lookups(symbolizer, fpFrames, fpTable))
        symWarm.append(Double(now() - t0) / 1e9)
    }
    let distinct = Set(fpFrames.map { "\($0.1):\($0.0.lookupAddress.rawValue):\($0.0.isKernel)" }).count
    results["symbol_distinct_addresses"] = distinct
    report("symbols_cold", "symbol lookups, cold (fresh)", items: fpFrames.count, unit: "lookups", Timing(seconds: symCold))
    report("symbols_warm", "symbol lookups, warm", items: fpFrames.count, unit: "lookups", Timing(seconds: symWarm))
    lines.append("  symbols: \(fpFrames.count) lookups over \(distinct) distinct addresses")
}

// SVG render of STACKS distinct stacks.
func syntheticStacks(_ count: Int) -> FoldedStacks {
    var rng = UInt64(0x2545_F491_4F6C_DD1D)
    func next() -> UInt64 { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng }
    let modules = ["OrderBook", "FeedDecoder", "Matching", "Swift", "Foundation", "libc.so.6"]
    var names: [String] = []
    for i in 0..<4000 {
        let m = modules[i % modules.count]
        names.append("\(m).Type\(i % 97).method\(i)(_:with:) -> Swift.Int")
    }
    var out = FoldedStacks()
    var stack: [String] = ["qsl-bench"]
    var seen = 0
    while seen < count {
        // A random walk over a tree: keep a prefix, add a few frames: shared prefixes like real profiles.
        let keep = 1 + Int(next() % UInt64(max(1, stack.count)))
        stack.removeLast(stack.count - keep)
        let add = 1 + Int(next() % 6)
        for _ in 0..<add where stack.count < 40 { stack.append(names[Int(next() % UInt64(names.count))]) }
        let before = out.stackCount
        out.add(stack, count: 1 + next() % 50)
        if out.stackCount > before { seen += 1 }
    }
    return out
}
let folded = syntheticStacks(stackCount)
let text = folded.serializedBytes()
results["render_stacks"] = folded.stackCount
results["render_folded_bytes"] = text.count
var svgBytes = 0
let tRender = measure(reps) { let svg = FlameGraph.renderBytes(folded, options: FlameGraphOptions()); svgBytes = svg.count }
results["render_svg_bytes"] = svgBytes
reportTime("render_svg", "SVG render, \(folded.stackCount / 1000)k stacks", tRender, note: "\(text.count / 1024) KiB folded → \(svgBytes / 1024) KiB SVG")
let tParse = measure(reps) { blackHole(try? FoldedStacks.parse(bytes: text, source: "bench")) }
reportTime("folded_parse", "folded parse, \(folded.stackCount / 1000)k stacks", tParse, note: "FoldedStacks.parse(bytes:)")
let tSer = measure(reps) { blackHole(folded.serializedBytes()) }
reportTime("folded_write", "folded serialize, \(folded.stackCount / 1000)k stacks", tSer, note: "serializedBytes()")
if let out = ProcessInfo.processInfo.environment["STAGE_BENCH_FOLDED"] {
    _ = FileManager.default.createFile(atPath: out, contents: Data(text))
}

// pprof: the profile a recording of those stacks gives (each distinct frame one function at one
// address in one mapping, stacks spread over 8 threads, counts and nanoseconds of a 1 ms period),
// written as sprof run writes PREFIX.pb.gz, then read back, then written as speedscope.
// The lead's old Sprof.Profile is also in scope here.
typealias ModelProfile = SprofProfile.Profile
func recordedProfile(_ folded: FoldedStacks) -> ModelProfile {
    let count = ModelProfile.ValueType(type: "samples", unit: "count")
    let cpu = ModelProfile.ValueType(type: "cpu", unit: "nanoseconds")
    let period: Int64 = 1_000_000
    var b = ProfileBuilding(sampleTypes: [count, cpu], defaultSampleType: 1, periodType: cpu, period: period)
    let exe = b.mapping(ModelProfile.Mapping(start: 0x55_0000_0000, limit: 0x55_1000_0000, path: "/usr/local/bin/qsl-bench",
                                        buildID: "3f1c0d9e2b7a4c5d6e8f90a1b2c3d4e5f6a7b8c9", hasFilenames: true, hasLineNumbers: true))
    let threads = (0..<8).map { b.thread(ModelProfile.Thread(pid: 4242, tid: 4242 + Int32($0), name: $0 == 0 ? "qsl-bench" : "worker-\($0)", processName: "qsl-bench")) }
    var locations: [String: Int] = [:]
    for (i, entry) in folded.stacks().enumerated() {
        var stack: [Int] = []
        for name in entry.frames.dropFirst().reversed() {
            if let l = locations[name] { stack.append(l); continue }
            let f = b.function(ModelProfile.Function(name: name, file: "/src/qsl/\(name.prefix(8)).swift", startLine: locations.count % 900 + 1))
            let l = b.location(ModelProfile.Location(address: 0x55_0000_1000 + UInt64(locations.count) * 48, mapping: exe,
                                                lines: [ModelProfile.Line(function: f, line: locations.count % 900 + 3)]))
            locations[name] = l
            stack.append(l)
        }
        let n = Int64(entry.count)
        b.add(stack: b.stack(stack), thread: threads[i % threads.count], values: [n, n * period])
    }
    var m = ProfileMetadata()
    m.sprofVersion = "stage-bench"
    m.event = "cpu-clock"
    m.rate = .frequency(1000)
    m.callGraph = "dwarf"
    return b.build(metadata: m)
}
/// CPU time of the whole process (the pprof writer compresses on several threads): on this shared
/// VM wall times of in-process stages swing with the other tenants' load, while the CPU a stage
/// itself uses swings much less.
func processCPU() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
func measureBoth(_ count: Int, _ body: () -> Void) -> (wall: Timing, cpu: Timing) {
    var wall: [Double] = [], cpu: [Double] = []
    for _ in 0..<count {
        let (w0, c0) = (now(), processCPU())
        body()
        cpu.append(Double(processCPU() - c0) / 1e9)
        wall.append(Double(now() - w0) / 1e9)
    }
    return (Timing(seconds: wall), Timing(seconds: cpu))
}
func reportBoth(_ key: String, _ label: String, _ t: (wall: Timing, cpu: Timing), note: String) {
    reportTime(key, label, t.wall, note: String(format: "CPU %.4f s (%.4f–%.4f); ", t.cpu.median, t.cpu.min, t.cpu.max) + note)
    results[key + "_cpu"] = ["median_s": t.cpu.median, "min_s": t.cpu.min, "max_s": t.cpu.max]
}
do {
    let profile = recordedProfile(folded)
    var pbBytes: [UInt8] = []
    let tEncode = measureBoth(reps) { pbBytes = (try? PprofFormat.encode(profile)) ?? [] }
    var rawBytes = 0
    let tProto = measureBoth(reps) { rawBytes = (try? PprofFormat.encodeUncompressed(profile))?.count ?? 0 }
    let tDecode = measureBoth(reps) { blackHole(try? PprofFormat.decode(pbBytes)) }
    var speedscopeBytes = 0
    let tSpeedscope = measureBoth(reps) { speedscopeBytes = SpeedscopeFormat.encode(profile, valueIndex: 1, name: "bench").count }
    results["pprof_stacks"] = profile.stacks.count
    results["pprof_samples"] = profile.samples.count
    results["pprof_gz_bytes"] = pbBytes.count
    results["pprof_raw_bytes"] = rawBytes
    results["speedscope_bytes"] = speedscopeBytes
    let k = profile.stacks.count / 1000
    if let out = ProcessInfo.processInfo.environment["STAGE_BENCH_PPROF"] {
        _ = FileManager.default.createFile(atPath: out, contents: Data(pbBytes))
    }
    reportBoth("pprof_write", "pprof write, \(k)k stacks", tEncode,
               note: "PprofFormat.encode: \(rawBytes / 1024) KiB protobuf → \(pbBytes.count / 1024) KiB gzip (folded text \(text.count / 1024) KiB)")
    reportBoth("pprof_proto", "pprof protobuf only, \(k)k stacks", tProto, note: "encodeUncompressed (no gzip)")
    reportBoth("pprof_read", "pprof read, \(k)k stacks", tDecode, note: "PprofFormat.decode (gunzip, parse, check, build)")
    reportBoth("speedscope_write", "speedscope write, \(k)k stacks", tSpeedscope, note: "\(speedscopeBytes / 1024) KiB JSON")
}

for l in lines { fputs(l + "\n", stderr) }
let json = try JSONSerialization.data(withJSONObject: results, options: [.sortedKeys])
print(String(decoding: json, as: UTF8.self))
