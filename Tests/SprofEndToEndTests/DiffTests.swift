import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `sprof diff` on self and total shares, repeated runs (`sprof run -r N`), significance,
/// incompatible sample types and the CI artifact layout.
final class DiffTests: XCTestCase {
    /// Goldens of `--artifacts` (checked in; `SPROF_BLESS=1` rewrites them and fails).
    private static let goldens = TestFixtures.packageRoot.appendingPathComponent("Tests/Fixtures/diff-artifacts")
    private static let blessing = ProcessInfo.processInfo.environment["SPROF_BLESS"] == "1"

    private func write(_ text: String, _ path: String) {
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    private func rows(_ stdout: String) -> [(name: String, fields: [Double])] {
        stdout.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            let numbers = f.prefix { Double($0.filter { $0 != "*" }.split(separator: "±").first ?? "") != nil }
            guard numbers.count >= 6 else { return nil }
            return (f[numbers.count...].joined(separator: " "),
                    numbers.map { Double($0.filter { $0 != "*" }.split(separator: "±").first ?? "") ?? .nan })
        }
    }

    /// The issue's case: two callers of one leaf, hot spots moving 75/25 → 25/75. The leaf's
    /// self share does not move; the callers' totals do, and they lead the table.
    func testShiftBetweenCallersLeadsTheTableAndTheTotalGateCatchesIt() throws {
        try SprofCLI.requirePerfEvents()
        let binary = try SprofCLI.buildC("shift")
        let dir = SprofCLI.outputPrefix("callers")
        // Each sample falls under caller_a with probability PERCENT/100, so at the default 999 Hz
        // (~270 samples a side) the change in caller_a's total has σ ≈ 3.7 points and ±8 failed
        // about 3% of runs (CI, 67398ec). At 5,000 Hz (~1,350 a side) σ ≈ 1.7 and ±8 is 4.8σ.
        for (name, percent) in [("before", "75"), ("after", "25")] {
            let r = try SprofCLI.run(["run", "-g", "-q", "-F", "5000", "-o", "\(dir).\(name)", "--", binary, "shared", percent, "8000"])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        // Every row (--limit 0): spin's change is ~0, so in the default 20 rows it can be crowded
        // out by kernel frames with changes of a few samples (CI, under load).
        let d = try SprofCLI.run(["diff", dir + ".before.pb.gz", dir + ".after.pb.gz", "-o", dir + ".svg", "--limit", "0"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let table = rows(d.stdout)
        XCTAssertEqual(Set(table.prefix(2).map(\.name)), ["caller_a", "caller_b"], d.stdout)
        let a = try XCTUnwrap(table.first { $0.name == "caller_a" }, d.stdout)
        XCTAssertEqual(a.fields[5], -50, accuracy: 8, "caller_a's total: \(d.stdout)")
        let spin = try XCTUnwrap(table.first { $0.name == "spin" }, d.stdout)
        XCTAssertEqual(spin.fields[2], 0, accuracy: 3, "spin's self share holds: \(d.stdout)")
        XCTAssertTrue(d.stderr.contains("no significance can be computed"), d.stderr)
        XCTAssertEqual(d.stderr.split(separator: "\n").count, 1, d.stderr)
        // The default gate watches total shares: caller_b grew by ~50 points.
        let gate = try SprofCLI.run(["diff", dir + ".before.pb.gz", dir + ".after.pb.gz", "-o", dir + ".svg", "--fail-above", "10"])
        XCTAssertEqual(gate.status, 2, gate.stderr)
        XCTAssertTrue(gate.stderr.contains("caller_b"), gate.stderr)
        XCTAssertFalse(gate.stderr.contains("caller_a"), gate.stderr)
        let selfGate = try SprofCLI.run(["diff", dir + ".before.pb.gz", dir + ".after.pb.gz", "-o", dir + ".svg",
                                         "--fail-above", "10", "--gate", "self"])
        XCTAssertEqual(selfGate.status, 0, "no self share grew by 10 points: \(selfGate.stderr)")
        let bySelf = try SprofCLI.run(["diff", dir + ".before.pb.gz", dir + ".after.pb.gz", "-o", dir + ".svg", "--sort", "self"])
        let selfRows = rows(bySelf.stdout)
        XCTAssertEqual(selfRows.map { abs($0.fields[2]) }, selfRows.map { abs($0.fields[2]) }.sorted(by: >), bySelf.stdout)
        for bad in [["--sort", "cum"], ["--gate", "flat"]] {
            let r = try SprofCLI.run(["diff", dir + ".before.pb.gz", dir + ".after.pb.gz", "-o", dir + ".svg"] + bad)
            XCTAssertEqual(r.status, 2, r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
    }

    /// `run -r 5`: one profile with five labelled runs, a per-run summary, the first failing
    /// run's status, and a file `go tool pprof -tagfocus=run=3` reads.
    func testRepeatedRunsAreLabelledAndGoToolPprofFocusesOnOne() throws {
        try SprofCLI.requirePerfEvents()
        let binary = try SprofCLI.buildC("shift")
        let prefix = SprofCLI.outputPrefix("repeat")
        let r = try SprofCLI.run(["run", "-g", "-r", "5", "-o", prefix, "--", binary, "shared", "50", "2000"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("5 runs"), r.stderr)
        XCTAssertTrue(r.stderr.contains("#5 "), r.stderr)
        let profile = try PprofFormat.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: prefix + ".pb.gz"))))
        XCTAssertEqual(profile.runs, [1, 2, 3, 4, 5])
        XCTAssertEqual(Set(profile.samples.compactMap { $0.thread.map { profile.threads[$0].pid } }).count, 5, "five processes")
        let third = profile.onlyRun(3).total()
        XCTAssertGreaterThan(third, 0)
        if let go = TestFixtures.findExecutable("go") {
            let home = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-go-\(UUID().uuidString)").path
            let env = TestFixtures.environment(adding: ["HOME": home, "GOCACHE": home + "/cache", "GOPATH": home + "/go"])
            let top = try TestFixtures.run(go, ["tool", "pprof", "-top", "-sample_index=samples", "-tagfocus=run=3", prefix + ".pb.gz"], environment: env)
            XCTAssertEqual(top.status, 0, top.stderr)
            XCTAssertTrue(top.stdout.contains("accounting for \(third), "), "run 3 holds \(third) samples:\n\(top.stdout)")
        }
        // Status: the first run that did not exit 0 (run 2 exits 5, run 3 exits 7).
        let counter = prefix + ".count"
        let script = "n=$(cat \(counter) 2>/dev/null || echo 0); n=$((n+1)); echo $n > \(counter); [ $n -eq 2 ] && exit 5; [ $n -eq 3 ] && exit 7; exit 0"
        let failing = try SprofCLI.run(["run", "-g", "-r", "4", "-o", prefix + ".fail", "--", "/bin/sh", "-c", script])
        XCTAssertEqual(failing.status, 5, failing.stderr)
        XCTAssertEqual(try String(contentsOfFile: counter, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), "4", "every run ran")
        XCTAssertTrue(failing.stderr.contains("#2 ") && failing.stderr.contains("exit 5"), failing.stderr)
        for bad in [["-r", "0"], ["-r", "2", "-p", "1"]] {
            let u = try SprofCLI.run(["run", "-o", prefix + ".bad"] + bad + (bad.contains("-p") ? [] : ["--", "/bin/true"]))
            XCTAssertEqual(u.status, 2, u.stderr)
        }
    }

    /// Ctrl-C during run 3 of `run -r 5`: runs 1 and 2 are the runs; run 3, cut short, would
    /// skew the per-run shares (a handful of samples beside full runs), so its samples stay in
    /// the profile without a run label, and the summary says so. Status 130 as for any Ctrl-C.
    func testARunCutShortByCtrlCIsNotARun() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("cut")
        let counter = prefix + ".count"
        // Each run notes its number, then spins about a second in the shell; run 3 spins until
        // the signal ends it (a loaded machine noticed the counter late, and run 3 had ended by
        // itself before the Ctrl-C came).
        let script = "n=$(cat \(counter) 2>/dev/null || echo 0); n=$((n+1)); echo $n > \(counter); i=0; while [ $i -lt 300000 ] || [ $n -eq 3 ]; do i=$((i+1)); done"
        let sprof = try BackgroundProcess(try TestFixtures.sprofPath(), ["run", "-g", "-r", "5", "-o", prefix, "--", "/bin/sh", "-c", script])
        XCTAssertTrue(ProcInfo.waitUntil(limit: 120) {
            ((try? String(contentsOfFile: counter, encoding: .utf8)) ?? "").hasPrefix("3")
        }, "run 3 never started: \(sprof.stderr)")
        Thread.sleep(forTimeInterval: 0.2)
        sprof.send(SIGINT)
        XCTAssertEqual(sprof.wait(timeout: 60), 128 + SIGINT, sprof.stderr)
        let profile = try PprofFormat.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: prefix + ".pb.gz"))))
        XCTAssertEqual(profile.runs, [1, 2], "the cut run is not a run: \(sprof.stderr)")
        XCTAssertTrue(sprof.stderr.contains("2 runs of 5 (interrupted)"), sprof.stderr)
        XCTAssertTrue(sprof.stderr.contains("run 3 was cut short (killed by signal 2"), sprof.stderr)
        let summary = try RunSummary(stderr: sprof.stderr)
        XCTAssertEqual(UInt64(profile.total()), summary.samples, "its samples are still in the profile")
        XCTAssertGreaterThan(profile.total(), profile.onlyRun(1).total() + profile.onlyRun(2).total(), "run 3's samples are kept, unlabelled")
    }

    /// The short A/A and A/B of bench/diff-truth.sh: 10 runs per side, gate at 2 points. A/A must
    /// not fire; a designed 3-point shift between two callers of one leaf must, naming caller_a.
    func testRepeatedRunsGateNoiseOutAndCatchAThreePointShift() throws {
        try SprofCLI.requirePerfEvents()
        let binary = try SprofCLI.buildC("shift")
        let dir = SprofCLI.outputPrefix("truth")
        // The gate fires on the pooled change of caller_a's total share (the designed 3 points
        // measure 2.88: run_shared and the kernel take a little). Bernoulli per sample, at
        // 20,000 Hz (~55,000 samples a side) that change has σ ≈ 0.30 points, and it stayed above
        // the 2-point gate by only (2.88 - 2)/0.30 = 2.9σ. At 40,000 Hz (~170,000 a side: the
        // sampling's own cost lengthens the runs) σ ≈ 0.17, 5.3σ; the A/A side is 12σ under the
        // gate. (The runs' own spread, ±0.05-0.08 here, is below the binomial bound.)
        func record(_ name: String, _ percent: String) throws -> String {
            let r = try SprofCLI.run(["run", "-g", "-q", "-e", "cpu-clock:u", "-F", "40000", "-r", "10", "-o", "\(dir).\(name)", "--",
                                      binary, "shared", percent, "6000"], timeout: 600)
            XCTAssertEqual(r.status, 0, r.stderr)
            return "\(dir).\(name).pb.gz"
        }
        let base = try record("base", "50"), same = try record("same", "50"), shifted = try record("shifted", "53")
        let aa = try SprofCLI.run(["diff", base, same, "-o", dir + ".svg", "--fail-above", "2"])
        XCTAssertEqual(aa.status, 0, "A/A must not fire:\n\(aa.stdout)\n\(aa.stderr)")
        XCTAssertTrue(aa.stderr.contains("significance: 10 runs"), aa.stderr)
        let ab = try SprofCLI.run(["diff", base, shifted, "-o", dir + ".svg", "--fail-above", "2"])
        XCTAssertEqual(ab.status, 2, "A/B must fire:\n\(ab.stdout)\n\(ab.stderr)")
        XCTAssertTrue(ab.stderr.contains("caller_a") && ab.stderr.contains("q="), ab.stderr)
        XCTAssertTrue(ab.stdout.contains("*"), "the table marks the significant change:\n\(ab.stdout)")
    }

    /// A CPU profile against a heap profile: refused with one line, as `go tool pprof
    /// -diff_base` refuses incompatible profiles; and values of different units likewise.
    func testIncompatibleSampleTypesAreRefused() throws {
        let dir = SprofCLI.outputPrefix("kinds")
        write("app;main;work 7\napp;main 3\n", dir + ".cpu.folded")
        try Data(try PprofFormat.encode(Self.heapProfile(scale: 1))).write(to: URL(fileURLWithPath: dir + ".heap.pb.gz"))
        for (a, b) in [(".cpu.folded", ".heap.pb.gz"), (".heap.pb.gz", ".cpu.folded")] {
            let r = try SprofCLI.run(["diff", dir + a, dir + b, "-o", dir + ".svg", "--fail-above", "5"])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("incompatible sample types"), r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + ".svg"))
        }
        // Heap against heap, per sample type.
        try Data(try PprofFormat.encode(Self.heapProfile(scale: 2))).write(to: URL(fileURLWithPath: dir + ".heap2.pb.gz"))
        let ok = try SprofCLI.run(["diff", dir + ".heap.pb.gz", dir + ".heap2.pb.gz", "-o", dir + ".svg", "--sample-type", "alloc_space"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("grow"), ok.stdout)
    }

    /// Two CPU profiles of different events (cpu-clock against page-faults, as `sprof run -e`
    /// writes them): both have `samples`/`count`, which was compared without complaint, though a
    /// page fault is not a slice of CPU time. Refused like heap against CPU; one event on both
    /// sides, or folded stacks (samples alone) against either, still compare.
    func testProfilesOfDifferentEventsAreRefused() throws {
        let dir = SprofCLI.outputPrefix("events")
        func save(_ measure: Profile.ValueType, _ event: String, _ name: String) throws {
            var p = Self.cpuProfile(measure: measure)
            p.metadata.event = event
            try Data(try PprofFormat.encode(p)).write(to: URL(fileURLWithPath: dir + name))
        }
        try save(.init(type: "cpu", unit: "nanoseconds"), "cpu-clock", ".cpu.pb.gz")
        try save(.init(type: "cpu", unit: "nanoseconds"), "task-clock", ".task.pb.gz")
        try save(.init(type: "page-faults", unit: "count"), "page-faults", ".pf.pb.gz")
        write("app;main;work 7\napp;main 3\n", dir + ".folded")
        for (a, b) in [(".cpu.pb.gz", ".pf.pb.gz"), (".pf.pb.gz", ".task.pb.gz")] {
            let r = try SprofCLI.run(["diff", dir + a, dir + b, "-o", dir + ".svg", "--fail-above", "5"])
            XCTAssertEqual(r.status, 1, "\(a) against \(b): \(r.stdout)\(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("sprof: incompatible sample types: ") && r.stderr.contains("page-faults (page-faults/count)"), r.stderr)
            XCTAssertTrue(r.stdout.isEmpty, r.stdout)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + ".svg"))
        }
        for (a, b) in [(".cpu.pb.gz", ".task.pb.gz"), (".folded", ".pf.pb.gz"), (".cpu.pb.gz", ".folded")] {
            let r = try SprofCLI.run(["diff", dir + a, dir + b, "-o", dir + ".svg"])
            XCTAssertEqual(r.status, 0, "\(a) against \(b): \(r.stderr)")
        }
    }

    /// A CPU profile as `sprof run` writes one: samples/count and the event's measure, which is
    /// the period type.
    static func cpuProfile(measure: Profile.ValueType) -> Profile {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count"), measure], defaultSampleType: 0,
                                periodType: measure, period: 1)
        func stack(_ names: [String]) -> Int {
            b.stack(names.reversed().map { b.location(.init(lines: [.init(function: b.function(named: $0))])) })
        }
        b.add(stack: stack(["main", "work"]), thread: nil, values: [7, 7])
        b.add(stack: stack(["main"]), thread: nil, values: [3, 3])
        return b.build(metadata: .init())
    }

    /// A heap profile as Go writes one: four sample types, period type space/bytes.
    static func heapProfile(scale: Int64) -> Profile {
        var b = ProfileBuilding(sampleTypes: [.init(type: "alloc_objects", unit: "count"), .init(type: "alloc_space", unit: "bytes"),
                                              .init(type: "inuse_objects", unit: "count"), .init(type: "inuse_space", unit: "bytes")],
                                defaultSampleType: 3, periodType: .init(type: "space", unit: "bytes"), period: 524_288)
        func stack(_ names: [String]) -> Int {
            b.stack(names.reversed().map { b.location(.init(lines: [.init(function: b.function(named: $0))])) })
        }
        b.add(stack: stack(["main", "load", "grow"]), thread: nil, values: [10 * scale, 3_145_728 * scale, 4, 1_048_576])
        b.add(stack: stack(["main", "parse"]), thread: nil, values: [40, 2_097_152, 10, 524_288 * scale])
        return b.build(metadata: .init())
    }

    /// A change too small to show is +0.00, never -0.00 (as the artifacts' tables print it).
    func testNoNegativeZeroInTheTable() throws {
        let dir = SprofCLI.outputPrefix("negzero")
        write("app;main;x 1\napp;main;y 99999\n", dir + ".base.folded")
        write("app;main;x 1\napp;main;y 100000\n", dir + ".new.folded")
        let r = try SprofCLI.run(["diff", dir + ".base.folded", dir + ".new.folded", "-o", dir + ".svg"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("  x\n"), r.stdout)
        XCTAssertFalse(r.stdout.contains("-0.00 "), r.stdout)
    }

    /// `sprof run --heap -o checkout` writes `checkout.heap.pb.gz`: its artifacts are named
    /// `checkout_mem_*`, not `checkout.heap_mem_*`.
    func testArtifactsOfSprofsHeapProfileAreNamedWithoutHeapSuffix() throws {
        let dir = SprofCLI.outputPrefix("heapname")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data(try PprofFormat.encode(Self.heapProfile(scale: 1))).write(to: URL(fileURLWithPath: dir + "/base.heap.pb.gz"))
        try Data(try PprofFormat.encode(Self.heapProfile(scale: 2))).write(to: URL(fileURLWithPath: dir + "/checkout.heap.pb.gz"))
        let r = try SprofCLI.run(["diff", dir + "/base.heap.pb.gz", dir + "/checkout.heap.pb.gz", "--sample-type", "alloc_space",
                                  "--artifacts", dir + "/out"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let files = try FileManager.default.subpathsOfDirectory(atPath: dir + "/out").sorted()
        XCTAssertEqual(files, ["checkout_mem_diff_top.txt", "checkout_mem_top.txt", "flamegraphs", "flamegraphs/checkout_mem.svg"])
    }

    /// `--artifacts DIR` writes the workflow's layout, the same bytes for the same inputs, pinned
    /// by goldens under Tests/Fixtures/diff-artifacts (`SPROF_BLESS=1` rewrites them and fails).
    func testArtifactsLayoutIsPinnedByGoldens() throws {
        let work = URL(fileURLWithPath: SprofCLI.outputPrefix("artifacts"))
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        write("shift;main;run_shared;caller_a;spin 750\nshift;main;run_shared;caller_b;spin 250\nshift;main;run_shared 3\n",
              work.appendingPathComponent("base.folded").path)
        write("shift;main;run_shared;caller_a;spin 260\nshift;main;run_shared;caller_b;spin 740\nshift;main;setup 5\n",
              work.appendingPathComponent("checkout.folded").path)
        try Data(try PprofFormat.encode(Self.heapProfile(scale: 1))).write(to: work.appendingPathComponent("heap-base.pb.gz"))
        try Data(try PprofFormat.encode(Self.heapProfile(scale: 3))).write(to: work.appendingPathComponent("heap-new.pb.gz"))
        let sprof = try TestFixtures.sprofPath()
        func artifacts(_ out: String, _ extra: [String]) throws -> [String: [UInt8]] {
            let r = try TestFixtures.run(sprof, ["diff"] + extra + ["--artifacts", out], currentDirectory: work.path)
            XCTAssertEqual(r.status, 0, r.stderr)
            var files: [String: [UInt8]] = [:]
            let root = work.appendingPathComponent(out)
            for case let path as String in FileManager.default.enumerator(atPath: root.path)! {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path, isDirectory: &isDir), !isDir.boolValue {
                    files[path] = [UInt8](FileManager.default.contents(atPath: root.appendingPathComponent(path).path)!)
                }
            }
            return files
        }
        let cpu = try artifacts("out", ["base.folded", "checkout.folded"])
        XCTAssertEqual(cpu.keys.sorted(), ["checkout_cpu_diff_top.txt", "checkout_cpu_top.txt", "flamegraphs/checkout_cpu.svg"])
        XCTAssertEqual(try artifacts("again", ["base.folded", "checkout.folded"]), cpu, "same inputs, same bytes")
        let mem = try artifacts("mem", ["heap-base.pb.gz", "heap-new.pb.gz", "--name", "service", "--sample-type", "alloc_space"])
        XCTAssertEqual(mem.keys.sorted(), ["flamegraphs/service_mem.svg", "service_mem_diff_top.txt", "service_mem_top.txt"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("diff.svg").path), "no diff.svg unless -o")
        XCTAssertTrue(String(decoding: cpu["checkout_cpu_top.txt"]!, as: UTF8.self).contains("      flat  flat%   sum%        cum   cum%"))
        var blessed: [String] = []
        for (name, bytes) in cpu.merging(mem, uniquingKeysWith: { a, _ in a }).sorted(by: { $0.key < $1.key }) {
            let golden = Self.goldens.appendingPathComponent(name)
            if Self.blessing {
                try FileManager.default.createDirectory(at: golden.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(bytes).write(to: golden)
                blessed.append(name)
                continue
            }
            guard let expected = FileManager.default.contents(atPath: golden.path) else {
                XCTFail("missing golden \(name): run with SPROF_BLESS=1 to create it")
                continue
            }
            XCTAssertEqual(String(decoding: bytes, as: UTF8.self), String(decoding: expected, as: UTF8.self),
                           "\(name) differs from its golden (SPROF_BLESS=1 rewrites goldens after a deliberate change)")
        }
        if Self.blessing {
            XCTFail("SPROF_BLESS=1: rewrote \(blessed.joined(separator: ", ")); review `git diff Tests/Fixtures/diff-artifacts`, then run again without SPROF_BLESS (bless mode always fails)")
        }
    }
}
