#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import SprofTestSupport

/// `sprof stat` as a command, through the built CLI: the exit status passes through, the CSV and
/// JSON formats of docs/stat-output.md, `-r`, `-p`, and the `--baseline` gate's exit status.
///
/// Counts come from the `faults` fixture, whose page faults are known (PAGES × ROUNDS plus the
/// program's start-up), so they are checked with bands on both sides.
final class StatCommandTests: XCTestCase {
    override func setUpWithError() throws {
        try SprofCLI.requirePerfEvents()
    }

    /// Page faults of `faults PAGES` beyond PAGES: ld.so, libc and the stack (about 60 here).
    private let startupFaults = 0.0...250.0

    /// With --json, stderr is JSON and nothing else, even with an unsupported counter asked by
    /// name and a --baseline verdict: those go into the JSON (issue 20).
    func testJSONOutputIsOnlyJSON() throws {
        try SprofCLI.requirePerfEvents()
        let base = SprofCLI.outputPrefix("statjson") + ".json"
        let events = "task-clock,cycles:u,page-faults"
        let first = try SprofCLI.run(["stat", "-e", events, "--json", "-o", base, "--", "true"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let r = try SprofCLI.run(["stat", "-e", events, "--json", "--baseline", base, "--threshold", "1000", "--", "true"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stderr.utf8)) as? [String: Any], "stderr is not JSON alone: \(r.stderr)")
        let counters = try XCTUnwrap(object["counters"] as? [[String: Any]])
        XCTAssertEqual(counters.count, 3)
        for c in counters where c["status"] as? String == "not supported" {
            XCTAssertNotNil(c["reason"] as? String, "\(c)")
        }
        let notices = try XCTUnwrap(object["notices"] as? [String], "the baseline verdict goes into the JSON: \(r.stderr)")
        XCTAssertTrue(notices.contains { $0.contains("task-clock") }, "\(notices)")
    }

    private func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], "not a JSON object: \(path)")
    }

    private func counter(_ report: [String: Any], _ event: String) throws -> [String: Any] {
        let counters = try XCTUnwrap(report["counters"] as? [[String: Any]], "\(report)")
        return try XCTUnwrap(counters.first { ($0["event"] as? String) == event }, "no \(event) in \(counters)")
    }

    private func assertFaults(_ value: Double?, pages: Int, _ context: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let value else { return XCTFail("no page-faults value: \(context)", file: file, line: line) }
        let extra = value - Double(pages)
        XCTAssertTrue(startupFaults.contains(extra), "\(value) page faults for \(pages) pages: \(context)", file: file, line: line)
    }

    // MARK: - Exit status

    func testCommandExitStatusPassesThrough() throws {
        let exited = try SprofCLI.run(["stat", "-e", "task-clock", "--", "/bin/sh", "-c", "exit 3"])
        XCTAssertEqual(exited.status, 3, exited.stderr)
        XCTAssertTrue(exited.stderr.contains("task-clock"), "the counts are still printed: \(exited.stderr)")
        let killed = try SprofCLI.run(["stat", "-e", "task-clock", "--", "/bin/sh", "-c", "kill -TERM $$"])
        XCTAssertEqual(killed.status, 128 + SIGTERM, killed.stderr)
        let fine = try SprofCLI.run(["stat", "-e", "task-clock", "--", "/bin/sh", "-c", "exit 0"])
        XCTAssertEqual(fine.status, 0, fine.stderr)
        let missing = try SprofCLI.run(["stat", "--", "sprof-no-such-command-xyz"])
        XCTAssertEqual(missing.status, 127, missing.stderr)
    }

    // MARK: - Formats

    func testCSVWithASeparator() throws {
        let faults = try SprofCLI.buildC("faults")
        let r = try SprofCLI.run(["stat", "-e", "task-clock,page-faults", "-x", ";", "--", faults, "2000"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stderr.split(separator: "\n").map { $0.split(separator: ";", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(lines.count, 2, "one line per counter, nothing else: \(r.stderr)")
        // perf 6.1's layout (docs/stat-output.md): 7 fields for one run.
        XCTAssertTrue(lines.allSatisfy { $0.count == 7 }, "7 fields per line: \(r.stderr)")
        guard lines.count == 2, lines.allSatisfy({ $0.count == 7 }) else { return }
        XCTAssertEqual(lines[0][2], "task-clock")
        XCTAssertEqual(lines[0][1], "msec")
        XCTAssertEqual(lines[1][2], "page-faults")
        XCTAssertEqual(lines[1][1], "")
        assertFaults(Double(lines[1][0]), pages: 2000, r.stderr)
        let msec = try XCTUnwrap(Double(lines[0][0]), r.stderr)
        XCTAssertGreaterThan(msec, 0)
        XCTAssertEqual(lines[0][6], "CPUs utilized")
        XCTAssertEqual(Double(lines[1][4]) ?? 0, 100, accuracy: 0.01, "software counters are never multiplexed")
    }

    func testJSONOutput() throws {
        let faults = try SprofCLI.buildC("faults")
        let out = SprofCLI.outputPrefix("stat") + ".json"
        let r = try SprofCLI.run(["stat", "-e", "task-clock,page-faults", "--json", "-o", out, "--", faults, "3000"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertFalse(r.stderr.contains("page-faults"), "with -o the counts go to the file only: \(r.stderr)")
        let report = try json(out)
        XCTAssertEqual(report["format"] as? String, "sprof-stat")
        XCTAssertEqual(report["version"] as? Int, 1)
        XCTAssertEqual(report["command"] as? [String], [faults, "3000"])
        XCTAssertEqual(report["repeats"] as? Int, 1)
        XCTAssertEqual(report["exit_status"] as? Int, 0)
        XCTAssertNil(report["pid"])
        let pf = try counter(report, "page-faults")
        XCTAssertEqual(pf["status"] as? String, "counted")
        assertFaults(pf["value"] as? Double, pages: 3000, "\(pf)")
        XCTAssertEqual((pf["values"] as? [Double])?.count, 1)
        let clock = try counter(report, "task-clock")
        XCTAssertEqual(clock["unit"] as? String, "msec")
        let elapsed = try XCTUnwrap(report["elapsed_seconds"] as? [String: Any])
        XCTAssertGreaterThan(elapsed["mean"] as? Double ?? 0, 0)
    }

    func testRepeatsGiveOneValuePerRunAndTheirSpread() throws {
        let faults = try SprofCLI.buildC("faults")
        let out = SprofCLI.outputPrefix("repeat") + ".json"
        let r = try SprofCLI.run(["stat", "-r", "3", "-e", "page-faults", "--json", "-o", out, "--", faults, "1500"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(out)
        XCTAssertEqual(report["repeats"] as? Int, 3)
        let pf = try counter(report, "page-faults")
        let values = try XCTUnwrap(pf["values"] as? [Double])
        XCTAssertEqual(values.count, 3, "one value per run: \(pf)")
        for v in values { assertFaults(v, pages: 1500, "\(values)") }
        let mean = values.reduce(0, +) / Double(values.count)
        XCTAssertEqual(pf["value"] as? Double ?? 0, mean, accuracy: 0.01, "value is the mean of the runs")
        let spread = try XCTUnwrap(pf["stddev_percent"] as? Double, "a series has a stddev: \(pf)")
        XCTAssertLessThan(spread, 5, "page faults of the same program barely vary: \(values)")
        XCTAssertEqual((report["elapsed_seconds"] as? [String: Any])?["values"].flatMap { $0 as? [Double] }?.count, 3)
    }

    // MARK: - Attaching

    func testAttachCountsTheProcessUntilItExits() throws {
        let busy = try SprofCLI.buildC("busy")
        let target = try BackgroundProcess(busy, ["0"])
        defer { target.send(SIGKILL) }
        let out = SprofCLI.outputPrefix("statp") + ".json"
        let stat = try BackgroundProcess(try TestFixtures.sprofPath(), ["stat", "-e", "task-clock,context-switches", "--json", "-o", out,
                                                                      "-p", String(target.pid)])
        XCTAssertTrue(ProcInfo.waitUntil { ProcInfo.perfEventCount(stat.pid) > 0 }, "sprof stat never opened its counters: \(stat.stderr)")
        let start = ProcInfo.cpuTicks(target.pid) ?? 0
        XCTAssertTrue(ProcInfo.waitUntil { (ProcInfo.cpuTicks(target.pid) ?? 0) >= start + 30 })
        let end = ProcInfo.cpuTicks(target.pid) ?? 0
        target.send(SIGKILL)
        XCTAssertEqual(stat.wait(timeout: 60), 0, "the attached process ended: stat reports and exits 0: \(stat.stderr)")
        let report = try json(out)
        XCTAssertEqual(report["pid"] as? Int, Int(target.pid))
        XCTAssertNil(report["command"])
        let clock = try XCTUnwrap(try counter(report, "task-clock")["value"] as? Double)
        let tick = 1000 / Double(ProcInfo.ticksPerSecond)
        // At least the 0.3 s of CPU time watched while attached; at most all the target ever had.
        XCTAssertGreaterThanOrEqual(clock, 30 * tick - 2 * tick, "task-clock \(clock) ms")
        XCTAssertLessThanOrEqual(clock, Double(end) * tick + 100, "task-clock \(clock) ms for \(end) ticks")
    }

    // MARK: - Regression gate

    func testBaselineGateExitsTwoOnARegressionAndZeroWhenUnchanged() throws {
        let faults = try SprofCLI.buildC("faults")
        let base = SprofCLI.outputPrefix("base") + ".json"
        let made = try SprofCLI.run(["stat", "-e", "page-faults", "--json", "-o", base, "--", faults, "4000"])
        XCTAssertEqual(made.status, 0, made.stderr)

        let same = try SprofCLI.run(["stat", "-e", "page-faults", "--baseline", base, "--", faults, "4000"])
        XCTAssertEqual(same.status, 0, "an unchanged count passes the gate: \(same.stderr)")
        XCTAssertTrue(same.stderr.contains("unchanged: page-faults"), same.stderr)
        XCTAssertFalse(same.stderr.contains("REGRESSED"), same.stderr)

        // A baseline with half the faults: now the program looks twice as costly.
        var report = try json(base)
        var counters = try XCTUnwrap(report["counters"] as? [[String: Any]])
        let value = try XCTUnwrap(counters[0]["value"] as? Double)
        counters[0]["value"] = value / 2
        counters[0]["values"] = [value / 2]
        report["counters"] = counters
        let doctored = SprofCLI.outputPrefix("doctored") + ".json"
        try JSONSerialization.data(withJSONObject: report).write(to: URL(fileURLWithPath: doctored))
        let worse = try SprofCLI.run(["stat", "-e", "page-faults", "--baseline", doctored, "--", faults, "4000"])
        XCTAssertEqual(worse.status, 2, "a regression fails the gate with 2: \(worse.stderr)")
        XCTAssertTrue(worse.stderr.contains("REGRESSED: page-faults"), worse.stderr)

        // The threshold decides: +100% is within a 150% threshold.
        let lenient = try SprofCLI.run(["stat", "-e", "page-faults", "--baseline", doctored, "--threshold", "150", "--", faults, "4000"])
        XCTAssertEqual(lenient.status, 0, lenient.stderr)

        // A failing command's own status wins over the gate's.
        let failing = try SprofCLI.run(["stat", "-e", "page-faults", "--baseline", doctored, "--", "/bin/sh", "-c", "\"$0\" 4000; exit 5", faults])
        XCTAssertEqual(failing.status, 5, failing.stderr)
    }

    /// A gate that can compare nothing is refused before the command runs (status 2, as usage
    /// errors are: nothing ran), where it used to run the command and then say so; a baseline
    /// that cannot be read is status 1, as unreadable input is for diff and report.
    func testBaselineProblemsAreFoundBeforeTheCommandRuns() throws {
        let dir = SprofCLI.outputPrefix("gate-first")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = dir + "/sb.json"
        let made = try SprofCLI.run(["stat", "-e", "task-clock", "--json", "-o", base, "--", "true"])
        XCTAssertEqual(made.status, 0, made.stderr)
        let ran = dir + "/ran"
        func stat(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try SprofCLI.run(["stat", "-e", "task-clock"] + arguments + ["--", "touch", ran])
        }
        let notComparable = try stat(["--baseline", base, "--gate", "instructions:u"])
        XCTAssertEqual(notComparable.status, 2, notComparable.stderr)
        XCTAssertEqual(notComparable.stderr.split(separator: "\n").count, 1, notComparable.stderr)
        XCTAssertTrue(notComparable.stderr.contains("no counter to compare") && notComparable.stderr.contains("instructions:u")
                      && notComparable.stderr.contains("task-clock"), notComparable.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: ran), "the command ran before the gate was refused")

        try Data("not json".utf8).write(to: URL(fileURLWithPath: dir + "/bad.json"))
        for (path, why) in [(dir + "/missing.json", "cannot read the file"), (dir + "/bad.json", "not a 'sprof stat --json' result")] {
            let r = try stat(["--baseline", path])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("sprof: --baseline \(path): \(why)"), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: ran), "the command ran with an unreadable baseline")
        }

        let fine = try stat(["--baseline", base, "--gate", "task-clock", "--threshold", "100000"])
        XCTAssertEqual(fine.status, 0, fine.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ran))
    }
}
