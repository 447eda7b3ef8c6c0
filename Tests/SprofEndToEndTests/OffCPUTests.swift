import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `--off-cpu`: the wall-clock view against a fixture with a designed split (Tests/Fixtures/c/offcpu.c).
final class OffCPUTests: XCTestCase {
    /// One more CPU-bound spinner than there are CPUs: the scheduler preempts them, and the
    /// kernel's PREEMPT flag on their switch-outs must put that off-CPU time under
    /// `[off-cpu: preempted]` (issue 20: a build that ignored the flag put 0% there).
    func testPreemptedSpinnersEndInThePreemptedLeaf() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("preempt")
        let spinners = ProcessInfo.processInfo.activeProcessorCount + 1
        let spin = "i=0; while [ $i -lt 600000 ]; do i=$((i+1)); done"
        let script = "for n in $(seq \(spinners)); do sh -c '\(spin)' & done; wait"
        let r = try SprofCLI.run(["run", "-q", "-g", "--off-cpu", "-o", prefix, "--", "sh", "-c", script], timeout: 300)
        if r.status == 1, r.stderr.contains("--off-cpu needs") || r.stderr.contains("perf_event_paranoid") {
            throw XCTSkip("off-CPU recording needs root or kernel.perf_event_paranoid <= 1: \(r.stderr)")
        }
        XCTAssertEqual(r.status, 0, r.stderr)
        let folded = try SprofCLI.run(["convert", prefix + ".pb.gz", "--view", "off-cpu", "--to", "folded", "-o", "-"])
        var total: UInt64 = 0, preempted: UInt64 = 0
        for line in folded.stdout.split(separator: "\n") {
            guard let space = line.lastIndex(of: " "), let value = UInt64(line[line.index(after: space)...]) else { continue }
            total += value
            if line[..<space].hasSuffix(";[off-cpu: preempted]") { preempted += value }
        }
        XCTAssertGreaterThan(total, 0, folded.stderr)
        // Measured: about a third to a half of the off-CPU time; 5% leaves room for a busy machine.
        XCTAssertGreaterThan(Double(preempted), 0.05 * Double(total), "preempted \(preempted) of \(total) ns off CPU")
    }

    /// Profiles `offcpu ROUNDS` with off-CPU recording through the library engine (so the test
    /// reads the `Profile` value itself); the fixture's own measurement of its split is written to
    /// a file by a shell redirection. Skips only when the kernel refuses.
    private func recordFixture(rounds: Int) throws -> (profile: Profile, measured: [Double], phaseMilliseconds: [Double]) {
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("offcpu", flags: TestFixtures.noFramePointerFlags)
        let report = SprofCLI.outputPrefix("offcpu") + ".out"
        var options = RunOptions()
        options.offCPU = true
        let recorded: RecordedCommand
        do {
            recorded = try CommandProfiler.profile(["/bin/sh", "-c", "exec \"$0\" \(rounds) > \"$1\"", binary, report], options: options)
        } catch let error as SyscallError where error.errno == EACCES || error.errno == EPERM {
            throw XCTSkip("the kernel refuses off-CPU recording here: \(error)")
        }
        XCTAssertEqual(recorded.exitStatus, .exited(0))
        // "offcpu: rounds=N spin=S sleep=L read=R (ms) share=a/b/c sink=…"
        let line = try String(contentsOfFile: report, encoding: .utf8)
        guard let share = line.split(separator: " ").first(where: { $0.hasPrefix("share=") }) else {
            throw FixtureError("offcpu printed no share: \(line)")
        }
        let measured = share.dropFirst("share=".count).split(separator: "/").compactMap { Double($0) }
        XCTAssertEqual(measured.count, 3, line)
        let words = line.split(separator: " ")
        let phases = ["spin=", "sleep=", "read="].map { key in words.first { $0.hasPrefix(key) }.flatMap { Double($0.dropFirst(key.count)) } ?? 0 }
        return (recorded.profile, measured, phases)
    }

    func testWallViewGivesTheDesignedSplitAndOffCPUViewNamesTheWaits() throws {
        let (profile, measured, phases) = try recordFixture(rounds: 20)
        let types = profile.sampleTypes.map(\.description)
        XCTAssertEqual(types, ["samples/count", "cpu/nanoseconds", "wall/nanoseconds", "off-cpu/nanoseconds"])
        let wall = try XCTUnwrap(profile.sampleTypeIndex("wall"))
        let off = try XCTUnwrap(profile.sampleTypeIndex("off-cpu"))

        // The worker's wall time, split by phase.
        let worker = profile.aggregatedStacks(valueIndex: wall).filter { $0.frames.contains("worker_main") }
        func share(_ name: String, of stacks: [(frames: [String], value: Int64)]) -> Double {
            let total = stacks.reduce(Int64(0)) { $0 + $1.value }
            let part = stacks.filter { $0.frames.contains(name) }.reduce(Int64(0)) { $0 + $1.value }
            return total > 0 ? 100 * Double(part) / Double(total) : 0
        }
        let split = ["spin_phase", "sleep_phase", "read_phase"].map { share($0, of: worker) }
        print("offcpu: wall split \(split.map { String(format: "%.1f", $0) }) vs the fixture's own \(measured) (designed 40/35/25)")
        for (got, truth) in zip(split, measured) {
            XCTAssertEqual(got, truth, accuracy: 3, "wall split \(split) vs measured \(measured)")
        }
        // The fixture did what it was designed to (a sanity check of the fixture): each phase lasted
        // at least its design. Not its shares of the design, ±5: load only ever lengthens a phase
        // (a preempted spin overshoots its 40 ms, a wakeup comes late) and not the others
        // alike; with 6 busy loops on 2 CPUs the sleep's share came out 27.7% (1 run in 3).
        for (ms, designed) in zip(phases, [40.0, 35.0, 25.0]) {
            XCTAssertGreaterThanOrEqual(ms, 20 * designed * 0.99, "phases \(phases) ms of 20 rounds vs 40/35/25 ms each")
        }

        // The off-CPU view: nanosleep and read, each under the fixture's function, ending in a marker.
        let offStacks = profile.aggregatedStacks(valueIndex: off)
        func offTime(_ chain: [String]) -> Int64 {
            offStacks.filter { stack in
                var rest = chain[...]
                for f in stack.frames where rest.first.map({ f.contains($0) }) ?? false { rest = rest.dropFirst() }
                return rest.isEmpty && (stack.frames.last?.hasPrefix("[off-cpu: ") ?? false)
            }.reduce(Int64(0)) { $0 + $1.value }
        }
        let sleepNs = offTime(["worker_main", "sleep_phase", "nanosleep", "[off-cpu: sleeping]"])
        let readNs = offTime(["worker_main", "read_phase", "read", "[off-cpu: sleeping]"])
        // 20 rounds of 35 ms and 25 ms: at least 80% of it must be found on those paths.
        XCTAssertGreaterThan(sleepNs, 20 * 35_000_000 * 8 / 10, "nanosleep path: \(offStacks.filter { $0.frames.contains("sleep_phase") })")
        XCTAssertGreaterThan(readNs, 20 * 25_000_000 * 8 / 10, "read path: \(offStacks.filter { $0.frames.contains("read_phase") })")

        // The CPU view is unchanged: no off-CPU frame carries a sample count.
        XCTAssertFalse(profile.aggregatedStacks(valueIndex: 0).contains { $0.frames.last?.hasPrefix("[off-cpu") ?? false })
        XCTAssertEqual(Int64(profile.statistics.samples), profile.total(0))
    }

    func testCLIWritesWallAndOffCPUFlameGraphs() throws {
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("offcpu", flags: TestFixtures.noFramePointerFlags)
        let prefix = SprofCLI.outputPrefix("cli")
        let r = try SprofCLI.run(["run", "--off-cpu", "-o", prefix, "--", binary, "3"])
        if r.status == 1, r.stderr.contains("--off-cpu needs kernel samples") { throw XCTSkip(r.stderr) }
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("off-CPU "), r.stderr)
        for suffix in [".svg", ".wall.svg", ".offcpu.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + suffix), suffix)
        }
        let offSVG = try String(contentsOfFile: prefix + ".offcpu.svg", encoding: .utf8)
        XCTAssertTrue(offSVG.contains("[off-cpu: sleeping]"))
        XCTAssertTrue(offSVG.contains("sleep_phase"))
        XCTAssertFalse(try String(contentsOfFile: prefix + ".svg", encoding: .utf8).contains("[off-cpu"))

        // The pprof file carries the sample types; report reads them back by view.
        let wall = try SprofCLI.run(["report", prefix + ".pb.gz", "--view", "wall", "--format", "csv", "--limit", "0"])
        XCTAssertEqual(wall.status, 0, wall.stderr)
        XCTAssertTrue(wall.stdout.contains("spin_phase") && wall.stdout.contains("[off-cpu: sleeping]"), wall.stdout)
        let off = try SprofCLI.run(["report", prefix + ".pb.gz", "--view", "offcpu", "--limit", "5"])
        XCTAssertEqual(off.status, 0, off.stderr)
        XCTAssertTrue(off.stdout.contains("off-cpu/nanoseconds"), off.stdout)
        XCTAssertTrue(off.stdout.split(separator: "\n").dropFirst(2).first?.contains("[off-cpu: sleeping]") ?? false,
                      "the top self entry of off-CPU time is the sleeping marker: \(off.stdout)")
        let cpu = try SprofCLI.run(["report", prefix + ".pb.gz", "--format", "csv", "--limit", "0"])
        XCTAssertFalse(cpu.stdout.contains("[off-cpu"), "the default view stays the CPU samples: \(cpu.stdout)")

        // go tool pprof reads the extra sample types.
        guard let go = TestFixtures.findExecutable("go") else {
            throw XCTSkip("go is not installed (CI installs golang-go): go tool pprof cannot check the file")
        }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-go-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let env = TestFixtures.environment(adding: ["HOME": home, "GOCACHE": home + "/cache", "GOPATH": home + "/go", "GOFLAGS": "-mod=mod"])
        let top = try TestFixtures.run(go, ["tool", "pprof", "-top", "-sample_index=off-cpu", prefix + ".pb.gz"], environment: env)
        XCTAssertEqual(top.status, 0, top.stderr)
        XCTAssertTrue(top.stdout.contains("[off-cpu: sleeping]"), top.stdout)
        let raw = try TestFixtures.run(go, ["tool", "pprof", "-raw", prefix + ".pb.gz"], environment: env)
        XCTAssertTrue(raw.stdout.contains("samples/count[dflt] cpu/nanoseconds wall/nanoseconds off-cpu/nanoseconds"), raw.stdout.prefix(2000).description)
    }

    /// One buffer takes both events' records, so a single lost count said nothing about either:
    /// the summary line and the provenance split it by event. A 32 KiB stack copy never fits a
    /// 32 KiB buffer, so both the on-CPU samples and the switch-outs are lost here.
    func testLossesAreReportedPerEvent() throws {
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("offcpu", flags: TestFixtures.noFramePointerFlags)
        let prefix = SprofCLI.outputPrefix("offcpu-lost")
        let r = try SprofCLI.run(["run", "--off-cpu", "--call-graph", "dwarf,32768", "-m", "8", "-o", prefix, "--", binary, "3"])
        if r.status == 1, r.stderr.contains("--off-cpu needs kernel samples") { throw XCTSkip(r.stderr) }
        guard let summary = r.stderr.split(separator: "\n").first(where: { $0.contains(" lost") && $0.contains("wrote") }) else {
            return XCTFail("no summary line: \(r.stderr)")
        }
        // "N samples (T lost: A of cpu-clock, B of context-switches) of cpu-clock …"
        func number(before suffix: String) -> UInt64? {
            guard let range = summary.range(of: suffix) else { return nil }
            return UInt64(summary[..<range.lowerBound].split(separator: " ").last?.filter(\.isNumber) ?? "")
        }
        let total = try XCTUnwrap(number(before: " lost: "), String(summary))
        let onCPU = try XCTUnwrap(number(before: " of cpu-clock, "), String(summary))
        let offCPU = try XCTUnwrap(number(before: " of context-switches)"), String(summary))
        XCTAssertEqual(onCPU + offCPU, total, String(summary))
        XCTAssertGreaterThan(onCPU, 0, String(summary))
        XCTAssertGreaterThan(offCPU, 0, String(summary))
        let header = try SprofCLI.run(["report", "--header", prefix + ".pb.gz"])
        XCTAssertTrue(header.stdout.contains("; on-cpu \(onCPU), off-cpu \(offCPU))"), header.stdout)
    }

    func testOffCPUNeedsAClockEvent() throws {
        let r = try SprofCLI.run(["run", "--off-cpu", "-e", "page-faults", "-o", SprofCLI.outputPrefix("pf"), "--", "/bin/true"])
        XCTAssertEqual(r.status, 2)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("--off-cpu needs a clock event"), r.stderr)
    }

    func testUnprivilegedUserIsToldWhichSysctl() throws {
        try Nobody.assertRefused(["run", "--off-cpu", "-o", "PREFIX", "--", "/bin/true"], allowedAtParanoid: 1)
    }
}

/// `sprof run -a`: every process on every CPU.
final class SystemWideTests: XCTestCase {
    func testSystemWideForADurationAsRoot() throws {
        guard geteuid() == 0 else { throw XCTSkip("system-wide recording needs root here (the unprivileged case is tested below)") }
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("fp_chain", flags: TestFixtures.framePointerFlags)
        // A busy process started before sprof, so it must be named from /proc.
        let busy = Process()
        busy.executableURL = URL(fileURLWithPath: binary)
        busy.arguments = ["3"]
        busy.standardOutput = FileHandle.nullDevice
        try busy.run()
        defer { busy.terminate(); busy.waitUntilExit() }
        let prefix = SprofCLI.outputPrefix("all")
        // fp stacks (the fixture keeps frame pointers): DWARF-unwinding every process on a busy
        // machine (compilers with deep stacks) makes the run slow, not more telling.
        let r = try SprofCLI.run(["run", "-a", "-g", "--duration", "1", "-o", prefix], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let shape = try ProfileShape(foldedFile: prefix + ".folded")
        XCTAssertGreaterThan(shape.samples(containing: "leaf_sixty"), 20, "the already-running fixture is sampled")
        XCTAssertTrue(shape.stacks.contains { ($0.frames.first?.hasPrefix("fp_chain") ?? false) && $0.frames.contains { $0.contains("leaf_") } },
                      "its stacks are rooted at its process name")
    }

    func testSystemWideWhileACommandRuns() throws {
        guard geteuid() == 0 else { throw XCTSkip("system-wide recording needs root here") }
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("fp_chain", flags: TestFixtures.framePointerFlags)
        let prefix = SprofCLI.outputPrefix("allcmd")
        let r = try SprofCLI.run(["run", "-a", "-g", "-o", prefix, "--", binary, "0.5"], timeout: 600)
        XCTAssertEqual(r.status, 0, r.stderr)
        let shape = try ProfileShape(foldedFile: prefix + ".folded")
        XCTAssertGreaterThan(shape.samples(withChain: ["main", "run_all", "do_round"]), 50)
    }

    func testUnprivilegedUserIsToldWhichSysctl() throws {
        try Nobody.assertRefused(["run", "-a", "--duration", "1", "-o", "PREFIX"], allowedAtParanoid: 0)
    }
}

/// Every sample's time beside the profile (`--timeline`).
final class SampleTimelineTests: XCTestCase {
    /// One line per sample of `PREFIX.pb.gz`, on the memory timeline's axis, read back against the
    /// pprof file; without the flag, no file.
    func testTimelineHoldsEverySampleOfThePprofFile() throws {
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("alloc", flags: TestFixtures.noFramePointerFlags)
        let prefix = SprofCLI.outputPrefix("timeline")
        let r = try SprofCLI.run(["run", "--timeline", "-g", "-o", prefix, "--", binary, "64", "300"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let profile = try PprofFormat.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: prefix + ".pb.gz"))))
        let timed = try SampleTimeline.parse(String(contentsOfFile: prefix + ".timeline.tsv", encoding: .utf8), matching: profile)
        XCTAssertGreaterThan(timed.count, 0)
        XCTAssertEqual(Int64(timed.count), profile.total(0), "one line per sample")
        var perStack: [Int: Int64] = [:]
        for t in timed { perStack[t.stack, default: 0] += 1 }
        var wanted: [Int: Int64] = [:]
        for s in profile.samples { wanted[s.stack, default: 0] += s.values[0] }
        XCTAssertEqual(perStack, wanted, "each stack's samples")
        XCTAssertEqual(timed.map(\.time), timed.map(\.time).sorted(), "in time order")
        XCTAssertLessThan(try XCTUnwrap(timed.last).time, profile.metadata.duration + 1_000_000_000, "counted from the start of recording")
        let plain = SprofCLI.outputPrefix("no-timeline")
        XCTAssertEqual(try SprofCLI.run(["run", "-g", "-o", plain, "--", binary, "8", "10"]).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: plain + ".timeline.tsv"))
    }
}

/// Memory over time: the RSS timeline beside the profile.
final class MemoryTimelineTests: XCTestCase {
    /// `sprof run -o PREFIX -- alloc MIB HOLD_MS`: the run, the VmRSS the fixture printed (kB)
    /// and the timeline sprof wrote.
    private func runAlloc(_ prefix: String, mib: Int, holdMS: Int) throws
        -> (run: (status: Int32, stdout: String, stderr: String), printedKB: Double, points: [Profile.MemoryPoint], names: [Int32: String]) {
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("alloc", flags: TestFixtures.noFramePointerFlags)
        let r = try SprofCLI.run(["run", "-o", prefix, "--", binary, String(mib), String(holdMS)])
        XCTAssertEqual(r.status, 0, r.stderr)
        guard let field = r.stdout.split(separator: " ").first(where: { $0.hasPrefix("vmrss_kb=") }),
              let printedKB = Double(field.dropFirst("vmrss_kb=".count)) else {
            throw FixtureError("alloc printed no vmrss_kb: \(r.stdout)")
        }
        let (points, names) = try MemoryTimeline.parse(String(contentsOfFile: prefix + ".memory.tsv", encoding: .utf8))
        return (r, printedKB, points, names)
    }

    func testPeakMatchesWhatTheFixturePrinted() throws {
        let prefix = SprofCLI.outputPrefix("mem")
        let (r, printedKB, points, names) = try runAlloc(prefix, mib: 96, holdMS: 400)
        let peak = try XCTUnwrap(MemoryTimeline.peaks(points).first)
        XCTAssertTrue(names[peak.pid]?.hasPrefix("alloc") ?? false, "\(names)") // buildC names it alloc-…
        XCTAssertEqual(Double(peak.rss) / 1024, printedKB, accuracy: printedKB * 0.10, "timeline peak vs the fixture's VmRSS")
        XCTAssertGreaterThan(printedKB, 96 * 1024 * 0.95)
        XCTAssertTrue(r.stderr.contains("peak RSS"), r.stderr)
        // Readings come at a steady rate: ~25/s over ≥ 0.4 s.
        XCTAssertGreaterThanOrEqual(points.filter { $0.pid == peak.pid }.count, 5)

        // sprof report --memory finds the timeline beside the pprof file.
        let report = try SprofCLI.run(["report", "--memory", prefix + ".pb.gz"])
        XCTAssertEqual(report.status, 0, report.stderr)
        let lines = report.stdout.split(separator: "\n")
        XCTAssertTrue(lines.count > 4 && lines[2].contains("alloc") && lines[2].contains("MiB"), report.stdout)
        XCTAssertTrue(lines.contains { $0.hasSuffix("#") }, "a timeline with bars: \(report.stdout)")
        let missing = try SprofCLI.run(["report", "--memory", prefix + "-none.pb.gz"])
        XCTAssertEqual(missing.status, 1)
        XCTAssertEqual(missing.stderr.split(separator: "\n").count, 1, missing.stderr)
    }
}

extension MemoryTimelineTests {
    /// A program that ends before the monitor's first interval (40 ms) still has a reading, taken
    /// at its exec: its memory timeline and peak RSS are never missing.
    func testAProgramShorterThanTheIntervalHasAReading() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("mem-short")
        // 30 ms, shorter than the 40 ms between readings (25 Hz). Not /bin/true: it can exit
        // before sprof's thread, back from the exec, gets a CPU to read it (1 of 3 runs at load
        // 19 had no reading), and a process that has exited has no resident memory to read.
        let r = try SprofCLI.run(["run", "-o", prefix, "--", "/bin/sleep", "0.03"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("peak RSS"), r.stderr)
        let (points, _) = try MemoryTimeline.parse(String(contentsOfFile: prefix + ".memory.tsv", encoding: .utf8))
        XCTAssertGreaterThanOrEqual(points.count, 1)
        // A single reading of a program whose wait4 mark is sprof's fork's is a lower bound, and
        // says so (a new user read 160-216 KiB as the peak of a 1.3 MiB program).
        if points.count == 1 {
            XCTAssertTrue(r.stderr.contains("peak RSS ≥ ") && r.stderr.contains("one reading"), r.stderr)
        }
    }

    /// A program that touches 64 MiB and exits between two readings: the summary's peak is the
    /// kernel's high-water mark from wait4, not the last reading (the tiny one at exec).
    func testThePeakOfAProgramBetweenReadingsIsTheKernels() throws {
        let prefix = SprofCLI.outputPrefix("mem-between")
        let (r, printedKB, _, _) = try runAlloc(prefix, mib: 64, holdMS: 0)
        let kib = try summaryPeakKiB(r.stderr)
        XCTAssertGreaterThanOrEqual(kib, printedKB * 0.95, r.stderr)
        let header = try SprofCLI.run(["report", "--header", "--limit", "1", prefix + ".pb.gz"])
        XCTAssertTrue(header.stdout.contains("command peak RSS: "), header.stdout)
    }

    /// Before its exec the command is sprof's forked child, with sprof's resident memory (several
    /// MiB, more with DWARF buffers): a reading then was reported as a small program's peak.
    func testASmallProgramsPeakIsItsOwnNotSprofsChildBeforeExec() throws {
        let (r, printedKB, points, _) = try runAlloc(SprofCLI.outputPrefix("mem-small"), mib: 1, holdMS: 300)
        XCTAssertFalse(points.isEmpty)
        let peak = try XCTUnwrap(points.map(\.rss).max())
        // The program's own peak is the VmRSS it printed while holding its block (ld.so and libc
        // pages: ~2.5 MiB); allow 512 KiB for a reading taken as it frees.
        XCTAssertLessThanOrEqual(Double(peak) / 1024, printedKB + 512, "timeline peak \(peak) bytes vs the program's \(printedKB) kB: \(points.prefix(3))")
        // The summary line too: wait4's high-water mark carries the forked child's from before
        // exec, and was reported as the program's (6.6 MiB for a 1.6 MB program).
        XCTAssertLessThanOrEqual(try summaryPeakKiB(r.stderr), printedKB + 512, r.stderr)
    }

    /// The `peak RSS N UNIT` of `sprof run`'s summary line, in KiB.
    private func summaryPeakKiB(_ stderr: String) throws -> Double {
        let range = try XCTUnwrap(stderr.range(of: "peak RSS "), "no peak RSS in the summary: \(stderr)")
        let words = stderr[range.upperBound...].split(separator: " ").filter { $0 != "≥" }
        let value = try XCTUnwrap(Double(words[0]), stderr)
        return value * (words[1].hasPrefix("GiB") ? 1024 * 1024 : words[1].hasPrefix("MiB") ? 1024 : words[1].hasPrefix("KiB") ? 1 : 1.0 / 1024)
    }
}

/// Live progress: a status line on a terminal only, JSON lines on --progress-fd.
final class ProgressTests: XCTestCase {
    func testProgressFDWritesJSONLinesEndingWithDone() throws {
        try SprofCLI.requirePerfEvents()
        guard let sh = TestFixtures.findExecutable("sh") else { throw XCTSkip("no sh") }
        let fixture = try TestFixtures.swiftFixturePath()
        let prefix = SprofCLI.outputPrefix("progress")
        let jsonl = prefix + ".jsonl"
        let sprof = try TestFixtures.sprofPath()
        let r = try TestFixtures.run(sh, ["-c", "exec \"$0\" run --progress-fd 3 -o \"$1\" -- \"$2\" split 0.8 3>\"$3\"", sprof, prefix, fixture, jsonl])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("\u{1b}[K"), "no status line when stderr is not a terminal")
        let lines = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 2)
        var lastElapsed: UInt64 = 0
        for (i, line) in lines.enumerated() {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], String(line))
            for key in ["elapsed_ns", "samples", "lost", "processes", "threads", "peak_rss_bytes"] {
                XCTAssertNotNil(object[key] as? NSNumber, "\(key) in \(line)")
            }
            let elapsed = (object["elapsed_ns"] as? NSNumber)?.uint64Value ?? 0
            XCTAssertGreaterThanOrEqual(elapsed, lastElapsed)
            lastElapsed = elapsed
            XCTAssertEqual(object["done"] as? Bool, i == lines.count - 1 ? true : nil)
        }
        // At most 4 a second (plus the first and the last line).
        XCTAssertLessThanOrEqual(Double(lines.count - 2), Double(lastElapsed) / 1e9 * 4 + 1)
        let last = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any])
        XCTAssertGreaterThan((last["samples"] as? NSNumber)?.intValue ?? 0, 0)
        XCTAssertGreaterThan((last["peak_rss_bytes"] as? NSNumber)?.intValue ?? 0, 0)
    }

    /// A --progress-fd pipe that is full and never read (issue 20): recording, the memory
    /// timeline and the outputs go on; the dropped lines are counted on stderr.
    func testFullProgressPipeNeverBlocksRecording() throws {
        try SprofCLI.requirePerfEvents()
        let fixture = try TestFixtures.swiftFixturePath()
        let prefix = SprofCLI.outputPrefix("blocked")
        let sprof = try TestFixtures.sprofPath()
        let script = "mkfifo \"$2.fifo\" && exec 3<>\"$2.fifo\" && head -c 65536 /dev/zero >&3 && exec \"$0\" run --progress-fd 3 -o \"$2\" -- \"$1\" split 1.5"
        let p = try BackgroundProcess("/bin/sh", ["-c", script, sprof, fixture, prefix])
        // A safety limit, not a measurement: before the fix sprof never returned.
        XCTAssertEqual(p.wait(timeout: 60), 0, p.stderr)
        XCTAssertTrue(p.stderr.contains("progress lines were dropped: the reader of --progress-fd 3 did not keep up"), p.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + ".pb.gz"), p.stderr)
        // The memory timeline is sampled 25 times a second all through the 1.5 s run.
        let timeline = try String(contentsOfFile: prefix + ".memory.tsv", encoding: .utf8)
        XCTAssertGreaterThan(timeline.split(separator: "\n").count, 15, timeline)
    }

    /// The profiled command inherits no descriptor of sprof's: not --progress-fd, not a perf
    /// event, eventfd or ring buffer, not a temporary output file (issue 20). The command lists its
    /// own descriptors; what the test runner itself may leak is not sprof's and is not looked at.
    func testCommandInheritsNoDescriptorOfSprofs() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("fds")
        let sprof = try TestFixtures.sprofPath()
        // ls, not $(readlink): a command substitution holds a pipe of the shell's own.
        let list = "ls -l /proc/$$/fd"
        // The shell first lists what it got from the test runner (a runner may leak a pipe or
        // two): those descriptors are passed on by sprof unchanged, as any exec does.
        let r = try TestFixtures.run("/bin/sh", ["-c", "ls -l /proc/$$/fd >\"$1.outer\"; exec \"$0\" run --progress-fd 3 -o \"$1\" -- sh -c \"$2\" 3>\"$1.jsonl\"", sprof, prefix, list])
        XCTAssertEqual(r.status, 0, r.stderr)
        // `lrwx------ 1 root root 64 Dec  6 04:07 3 -> /tmp/x.jsonl` as `fd 3 /tmp/x.jsonl`.
        func descriptors(_ text: String) -> [(name: String, target: String)] {
            text.split(separator: "\n").compactMap { line in
                guard let arrow = line.range(of: " -> ") else { return nil }
                return (String(line[..<arrow.lowerBound].split(separator: " ").last ?? ""), String(line[arrow.upperBound...]))
            }
        }
        let runners = Set(descriptors(try String(contentsOfFile: prefix + ".outer", encoding: .utf8)).filter { Int($0.name)! > 2 }.map(\.target))
        let fds = descriptors(r.stdout).filter { (Int($0.name) ?? 3) <= 2 || !runners.contains($0.target) }.map { "fd \($0.name) \($0.target)" }
        XCTAssertTrue(fds.contains { $0.hasPrefix("fd 0 ") } && fds.contains { $0.hasPrefix("fd 1 ") }, r.stdout)
        for line in fds {
            XCTAssertFalse(line.hasPrefix("fd 3 "), "the --progress-fd descriptor: \(line)")
            // Pipes beyond 0-2: the launcher's go and exec-error pipes.
            let standard = line.hasPrefix("fd 0 ") || line.hasPrefix("fd 1 ") || line.hasPrefix("fd 2 ")
            for owned in [".jsonl", "perf_event", "eventfd", ".sprof-"] + (standard ? [] : ["pipe:"]) where line.contains(owned) {
                XCTFail("a descriptor of sprof's reached the command: \(line)")
            }
        }
    }

    /// SIGTERM while the progress pipe is full ends recording with the profile written and no
    /// temporary file left behind.
    func testSIGTERMWithFullProgressPipeWritesTheProfile() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("blocked-term")
        let directory = (prefix as NSString).deletingLastPathComponent
        let sprof = try TestFixtures.sprofPath()
        let script = "mkfifo \"$1.fifo\" && exec 3<>\"$1.fifo\" && head -c 65536 /dev/zero >&3 && exec \"$0\" run --progress-fd 3 -o \"$1\" -- sleep 60"
        let p = try BackgroundProcess("/bin/sh", ["-c", script, sprof, prefix])
        // Signal once the command runs and at least one progress line was due (0.25 s).
        XCTAssertTrue(ProcInfo.waitUntil { ProcInfo.children(of: p.pid).contains { ProcInfo.comm($0) == "sleep" } })
        usleep(600_000)
        p.send(SIGTERM)
        XCTAssertEqual(p.wait(timeout: 60), 128 + SIGTERM, p.stderr)
        for suffix in [".folded", ".svg", ".pb.gz"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + suffix), suffix + ": " + p.stderr)
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".sprof-") }
        XCTAssertEqual(left, [], "temporary files left behind")
    }

    func testStatusLineShowsOnATerminalAndIsErased() throws {
        try SprofCLI.requirePerfEvents()
        guard let script = TestFixtures.findExecutable("script") else { throw XCTSkip("script(1) not installed") }
        let fixture = try TestFixtures.swiftFixturePath()
        let prefix = SprofCLI.outputPrefix("tty")
        let sprof = try TestFixtures.sprofPath()
        // script(1) gives sprof a pseudo-terminal as stderr and copies what it wrote to stdout.
        let command = "\(sprof) run -o \(prefix) -- \(fixture) split 1.2"
        let r = try TestFixtures.run(script, ["-qec", command, "/dev/null"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("\r\u{1b}[Ksprof: "), "status line drawn: \(r.stdout.debugDescription)")
        XCTAssertTrue(r.stdout.contains(" samples, "), r.stdout)
        // Erased before the summary: the summary line starts on a cleared line.
        XCTAssertTrue(r.stdout.contains("\r\u{1b}[Ksprof: ") && r.stdout.contains("wrote \(prefix).folded"), r.stdout)
        let summaryStart = try XCTUnwrap(r.stdout.range(of: "sprof: ", options: .backwards))
        XCTAssertTrue(r.stdout[..<summaryStart.lowerBound].hasSuffix("\r\u{1b}[K"), "erased before the summary")

        // -q: nothing at all.
        let quiet = try TestFixtures.run(script, ["-qec", command.replacingOccurrences(of: " run ", with: " run -q "), "/dev/null"])
        XCTAssertFalse(quiet.stdout.contains("\u{1b}[K"), quiet.stdout)
    }
}

/// Runs the built sprof as `nobody` (setpriv), from a copy readable by that user.
enum Nobody {
    /// `kernel.perf_event_paranoid` (2 when unreadable, the usual default).
    static var paranoid: Int {
        (try? String(contentsOfFile: "/proc/sys/kernel/perf_event_paranoid", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 2
    }

    /// As `nobody`, `args` must fail with status 1 and one line naming the sysctl setting
    /// (`kernel.perf_event_paranoid=N`) that would allow it; skips where that is already allowed.
    static func assertRefused(_ args: [String], allowedAtParanoid level: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        guard paranoid > level else { throw XCTSkip("perf_event_paranoid is \(paranoid): users may do this here") }
        let r = try runSprof(args)
        XCTAssertEqual(r.status, 1, r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.contains("sysctl kernel.perf_event_paranoid=\(level)"), r.stderr, file: file, line: line)
    }

    static func runSprof(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard geteuid() == 0 else { throw XCTSkip("needs root to switch to an unprivileged user") }
        guard let setpriv = TestFixtures.findExecutable("setpriv") else { throw XCTSkip("setpriv not installed") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-nobody-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        let localSprof = dir.appendingPathComponent("sprof").path
        try FileManager.default.copyItem(atPath: try TestFixtures.sprofPath(), toPath: localSprof)
        let prefix = dir.appendingPathComponent("nobody").path
        let r = try TestFixtures.run(setpriv, ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", localSprof]
                                         + args.map { $0 == "PREFIX" ? prefix : $0 })
        if r.status != 0, r.stderr.contains("error while loading shared libraries") {
            throw XCTSkip("the Swift runtime is not readable by nobody: \(r.stderr)")
        }
        return r
    }
}
