import Foundation
import XCTest
import SprofTestSupport

/// One recording, many views: `sprof run` writes folded, SVG and pprof from the same profile;
/// `report`, `diff`, `convert` and `flamegraph` read it back; `go tool pprof` and speedscope's
/// schema check the formats with the ecosystems' own tools.
final class ViewsTests: XCTestCase {
    private static let rounds = "20000"

    /// Records the `shift` fixture (`before`: parse_input 70%, build_index 30%; `after`: 30/70).
    private func recordShift(_ version: String, extra: [String] = []) throws -> String {
        try SprofCLI.requirePerfEvents()
        let binary = try TestFixtures.buildC("shift", flags: TestFixtures.framePointerFlags)
        let prefix = SprofCLI.outputPrefix("shift-\(version)")
        let r = try SprofCLI.run(["run", "-g", "-o", prefix] + extra + ["--", binary, version, Self.rounds])
        XCTAssertEqual(r.status, 0, r.stderr)
        return prefix
    }

    func testRunWritesFoldedSvgAndPprofFromOneProfile() throws {
        let prefix = try recordShift("before")
        for suffix in [".folded", ".svg", ".pb.gz"] {
            let size = (try? FileManager.default.attributesOfItem(atPath: prefix + suffix)[.size] as? Int) ?? 0
            XCTAssertGreaterThan(size, 100, "\(prefix + suffix) missing or empty")
        }
        // The folded text read back from pprof is the folded file: one model behind both.
        let converted = prefix + ".converted.folded"
        let c = try SprofCLI.run(["convert", prefix + ".pb.gz", "--to", "folded", "-o", converted])
        XCTAssertEqual(c.status, 0, c.stderr)
        XCTAssertEqual(try String(contentsOfFile: converted, encoding: .utf8), try String(contentsOfFile: prefix + ".folded", encoding: .utf8))
        // Provenance: the SVG and the report header say what was measured.
        let svg = try String(contentsOfFile: prefix + ".svg", encoding: .utf8)
        XCTAssertTrue(svg.contains("event: cpu-clock (software event)"), "SVG details block")
        XCTAssertFalse(svg.lowercased().contains("hardware pmu event"), "a software profile is never called a PMU profile")
        let header = try SprofCLI.run(["report", prefix + ".pb.gz", "--header", "--limit", "3"])
        XCTAssertEqual(header.status, 0, header.stderr)
        for key in ["# sprof: ", "# command: ", "# event: cpu-clock (software event)", "# rate: 999 Hz", "# call graph: fp",
                    "# lost: ", "# kernel: ", "# perf_event_paranoid: ", "# exit status: exit 0"] {
            XCTAssertTrue(header.stdout.contains(key), "report --header lacks '\(key)':\n\(header.stdout)")
        }
    }

    /// Each sample falls in parse_input with probability 0.7: at the default 999 Hz (~680 samples
    /// a side) a share has σ ≈ 1.8 points, so ±5 on the split was 2.8σ and ±8 on a change between
    /// two runs (σ ≈ 2.5) 3.2σ. At 4,999 Hz (~3,600 a side) σ ≈ 0.8: ±5 is 6.3σ, ±8 is 7.2σ.
    private static let splitRate = ["-F", "4999"]

    func testReportShowsTheDesignedSplit() throws {
        let prefix = try recordShift("before", extra: Self.splitRate)
        let r = try SprofCLI.run(["report", prefix + ".pb.gz", "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        let rows = json["functions"] as! [[String: Any]]
        func share(_ name: String) -> Double {
            rows.first { ($0["key"] as! [String]).last == name }?["selfPercent"] as? Double ?? 0
        }
        let parse = share("parse_input"), index = share("build_index")
        XCTAssertEqual(parse / (parse + index) * 100, 70, accuracy: 5, "\(rows.prefix(5))")
        XCTAssertEqual((rows.first?["key"] as? [String])?.last, "parse_input")
        let runRow = rows.first { ($0["key"] as! [String]).last == "run" }
        XCTAssertGreaterThanOrEqual(runRow?["totalPercent"] as? Double ?? 0, parse + index - 0.01, "run is below both leaves")
        XCTAssertLessThanOrEqual(runRow?["totalPercent"] as? Double ?? 1000, 100)
        // CSV and thread totals.
        let csv = try SprofCLI.run(["report", prefix + ".pb.gz", "--format", "csv", "--sort", "dso,sym", "--limit", "2"])
        XCTAssertEqual(csv.stdout.split(separator: "\n").first, "self,self_percent,total,total_percent,dso,sym")
        XCTAssertEqual(csv.stdout.split(separator: "\n").count, 3)
        let threads = try SprofCLI.run(["report", prefix + ".pb.gz", "--threads"])
        let threadRows = threads.stdout.split(separator: "\n").filter { $0.contains("(pid ") }
        XCTAssertEqual(threadRows.count, 1, "one thread:\n\(threads.stdout)")
        XCTAssertTrue(threadRows.first?.contains("100.00%") ?? false, threads.stdout)
    }

    func testDiffShowsTheChangedHotFunctionAndGates() throws {
        let before = try recordShift("before", extra: Self.splitRate), after = try recordShift("after", extra: Self.splitRate)
        let svg = SprofCLI.outputPrefix("diff") + ".svg"
        let d = try SprofCLI.run(["diff", before + ".pb.gz", after + ".folded", "-o", svg])
        XCTAssertEqual(d.status, 0, d.stderr)
        let rows: [(name: String, delta: Double)] = d.stdout.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 7, let delta = Double(f[2]) else { return nil }
            return (f[6...].joined(separator: " "), delta)
        }
        XCTAssertEqual(Set(rows.prefix(2).map(\.name)), ["build_index", "parse_input"], "largest changes first:\n\(d.stdout)")
        let grew = rows.max { $0.delta < $1.delta }
        XCTAssertEqual(grew?.name, "build_index", "the largest growth:\n\(d.stdout)")
        XCTAssertEqual(grew?.delta ?? 0, 40, accuracy: 8, d.stdout)
        XCTAssertEqual(rows.first { $0.name == "parse_input" }?.delta ?? 0, -40, accuracy: 8, d.stdout)
        // In the SVG, build_index is the reddest frame, parse_input blue.
        let graph = try String(contentsOfFile: svg, encoding: .utf8)
        XCTAssertTrue(graph.contains(">build_index (") || graph.contains("<title>build_index ("), "frame drawn")
        // The widest frame of each name (a function can also appear in small side paths).
        func fill(of name: String) -> String? {
            var best: (count: Int, fill: String)?
            var rest = graph[...]
            while let r = rest.range(of: "<title>\(name) (") {
                let after = rest[r.upperBound...]
                let count = Int(after.prefix { $0.isNumber || $0 == "," }.filter(\.isNumber)) ?? 0
                if let f = after.range(of: "fill=\"#"), count > (best?.count ?? -1) {
                    best = (count, String(after[f.upperBound...].prefix(6)))
                }
                rest = after
            }
            return best?.fill
        }
        func channels(_ hex: String?) -> [Int] {
            guard let hex, hex.count == 6 else { return [] }
            return stride(from: 0, to: 6, by: 2).map { Int(hex.dropFirst($0).prefix(2), radix: 16) ?? -1 }
        }
        let red = channels(fill(of: "build_index")), blue = channels(fill(of: "parse_input"))
        XCTAssertEqual(red.first, 255, "red for the function that grew: \(red)")
        XCTAssertLessThan(red.dropFirst().max() ?? 255, 0x60, "saturated: \(red)")
        XCTAssertEqual(blue.last, 255, "blue for the function that shrank: \(blue)")
        XCTAssertLessThan(blue.dropLast().max() ?? 255, 0x60, "saturated: \(blue)")
        // The gate.
        let gate = try SprofCLI.run(["diff", before + ".pb.gz", after + ".pb.gz", "-o", svg, "--fail-above", "10"])
        XCTAssertEqual(gate.status, 2, gate.stderr)
        XCTAssertTrue(gate.stderr.contains("build_index"), gate.stderr)
        XCTAssertFalse(gate.stderr.contains("parse_input"), "only functions that grew")
        let pass = try SprofCLI.run(["diff", before + ".pb.gz", after + ".pb.gz", "-o", svg, "--fail-above", "60"])
        XCTAssertEqual(pass.status, 0, pass.stderr)
        let same = try SprofCLI.run(["diff", before + ".pb.gz", before + ".pb.gz", "-o", svg, "--fail-above", "0.5"])
        XCTAssertEqual(same.status, 0, "a profile against itself changes nothing: \(same.stdout)")
    }

    func testGoToolPprofReadsTheFileAndAgreesWithReport() throws {
        guard let go = TestFixtures.findExecutable("go") else {
            throw XCTSkip("go is not installed (CI installs golang-go): go tool pprof cannot check the file")
        }
        let prefix = try recordShift("after")
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-go-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        let env = TestFixtures.environment(adding: ["HOME": home, "GOCACHE": home + "/cache", "GOPATH": home + "/go", "GOFLAGS": "-mod=mod"])
        let raw = try TestFixtures.run(go, ["tool", "pprof", "-raw", prefix + ".pb.gz"], environment: env)
        XCTAssertEqual(raw.status, 0, raw.stderr)
        XCTAssertTrue(raw.stdout.contains("samples/count"), raw.stdout.prefix(500).description)
        let top = try TestFixtures.run(go, ["tool", "pprof", "-top", "-nodecount=10", "-sample_index=samples", prefix + ".pb.gz"], environment: env)
        XCTAssertEqual(top.status, 0, top.stderr)
        // pprof: "flat flat% sum% cum cum% name"; compare names and flat% with sprof report.
        let pprofRows: [(String, Double)] = top.stdout.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 6, f[1].hasSuffix("%"), let flat = Double(f[1].dropLast()) else { return nil }
            return (f[5...].joined(separator: " "), flat)
        }
        let ours = try SprofCLI.run(["report", prefix + ".pb.gz", "--format", "csv", "--limit", "10"])
        let ourRows: [(String, Double)] = ours.stdout.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: ",", maxSplits: 4)
            guard f.count == 5, let p = Double(f[1]) else { return nil }
            return (String(f[4]), p)
        }
        XCTAssertGreaterThanOrEqual(pprofRows.count, 2, top.stdout)
        let ourShare = Dictionary(ourRows, uniquingKeysWith: { a, _ in a })
        for (name, flat) in pprofRows where flat >= 1 {
            XCTAssertEqual(ourShare[name] ?? -100, flat, accuracy: 0.06, "\(name): pprof \(flat)% vs sprof report\n\(top.stdout)\n\(ours.stdout)")
        }
    }

    func testSpeedscopeExportValidatesAgainstTheSchema() throws {
        let python = "/usr/bin/python3"
        let check = try TestFixtures.run(python, ["-c", "import jsonschema"])
        guard check.status == 0 else { throw XCTSkip("python3-jsonschema is not installed (CI installs it): \(check.stderr)") }
        let schema = TestFixtures.packageRoot.appendingPathComponent("Tests/SprofFormatsTests/Fixtures/speedscope-file-format-schema.json").path
        let prefix = try recordShift("before")
        let out = prefix + ".speedscope.json"
        let c = try SprofCLI.run(["convert", prefix + ".pb.gz", "--to", "speedscope", "-o", out])
        XCTAssertEqual(c.status, 0, c.stderr)
        let v = try TestFixtures.run(python, ["-c", """
            import json, sys, jsonschema
            jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))
            print("valid")
            """, schema, out])
        XCTAssertEqual(v.status, 0, v.stderr)
        XCTAssertEqual(v.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "valid")
    }

    func testMinSamplesFailsAndKeepsThePreviousOutputs() throws {
        let prefix = try recordShift("before")
        let before = try Data(contentsOf: URL(fileURLWithPath: prefix + ".pb.gz"))
        let binary = try TestFixtures.buildC("shift", flags: TestFixtures.framePointerFlags)
        let r = try SprofCLI.run(["run", "-g", "-o", prefix, "--min-samples", "1000000", "--", binary, "before", "200"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("--min-samples"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: prefix + ".pb.gz")), before, "previous profile kept")
    }

    func testFlamegraphReadsPprofAndPerThreadRoots() throws {
        let prefix = try recordShift("before")
        let svg = prefix + ".again.svg"
        let f = try SprofCLI.run(["flamegraph", prefix + ".pb.gz", "-o", svg])
        XCTAssertEqual(f.status, 0, f.stderr)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("parse_input"))
        let threaded = prefix + ".threads.folded"
        let c = try SprofCLI.run(["convert", prefix + ".pb.gz", "--to", "folded", "--per-thread", "-o", threaded])
        XCTAssertEqual(c.status, 0, c.stderr)
        let lines = try String(contentsOfFile: threaded, encoding: .utf8).split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        // process;thread-TID: the fixture's one thread is named like its process.
        let roots = Set(lines.map { $0.split(separator: ";").prefix(2).joined(separator: ";") })
        XCTAssertEqual(roots.count, 1, "\(roots)")
        let parts = roots.first?.split(separator: ";") ?? []
        XCTAssertEqual(parts.count, 2)
        XCTAssertTrue(parts.count == 2 && parts[1].hasPrefix(parts[0] + "-") && Int(parts[1].dropFirst(parts[0].count + 1)) != nil, "\(roots)")
    }

    func testBadInputIsOneLineNamingTheFile() throws {
        let dir = SprofCLI.outputPrefix("bad")
        let junk = dir + ".bin"
        FileManager.default.createFile(atPath: junk, contents: Data([0x1f, 0x8b, 0, 1, 2, 3]))
        for args in [["report", junk], ["report", dir + ".missing"], ["diff", junk, junk, "-o", dir + ".svg"]] {
            let r = try SprofCLI.run(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(args[1]), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + ".svg"), "no diff SVG from unreadable input")
        // The file's problem is said once, not "not a readable pprof profile: not a readable pprof file".
        let r = try SprofCLI.run(["report", junk])
        XCTAssertEqual(r.stderr.components(separatedBy: "pprof").count - 1, 1, r.stderr)
        // A view the profile lacks: no off-CPU advice unless wall or off-CPU was asked for.
        let folded = dir + ".folded"
        FileManager.default.createFile(atPath: folded, contents: Data("app;main 3\n".utf8))
        let bogus = try SprofCLI.run(["report", folded, "--view", "bogus"])
        XCTAssertEqual(bogus.status, 2, bogus.stderr)
        XCTAssertFalse(bogus.stderr.contains("--off-cpu"), bogus.stderr)
        XCTAssertTrue(try SprofCLI.run(["report", folded, "--view", "wall"]).stderr.contains("--off-cpu"))
    }

    /// `convert -o -` writes to standard output, as `flamegraph -o -` does (never a file named "-").
    func testConvertToStandardOutput() throws {
        let dir = SprofCLI.outputPrefix("stdout")
        let folded = dir + ".folded"
        FileManager.default.createFile(atPath: folded, contents: Data("app;main;work 3\napp;main 1\n".utf8))
        let r = try SprofCLI.run(["convert", folded, "--to", "folded", "-o", "-"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "app;main 1\napp;main;work 3\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "-"))
    }
}
