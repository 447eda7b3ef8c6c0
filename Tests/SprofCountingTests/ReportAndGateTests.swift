import XCTest
import Foundation
import SprofRecording
@testable import SprofCounting

/// Output formats and the regression gate, on synthetic runs (no kernel needed).
final class ReportAndGateTests: XCTestCase {
    private let groups = [
        CounterGroup(events: [EventCatalog.named("task-clock")!]),
        CounterGroup(events: [EventCatalog.named("cycles")!, EventCatalog.named("instructions")!], isExplicit: true),
        CounterGroup(events: [EventCatalog.named("branches")!]),
        CounterGroup(events: [EventCatalog.named("branch-misses")!]),
        CounterGroup(events: [EventCatalog.named("page-faults")!]),
        CounterGroup(events: [EventCatalog.named("ref-cycles")!]),
    ]

    /// One run: 2 ms task-clock over 4 ms elapsed; cycles multiplexed at 50%; ref-cycles missing.
    private func run(instructions: UInt64, cycles: UInt64 = 3_000_000, status: ExitStatus = .exited(0)) -> CountedRun {
        let e = groups.flatMap(\.events)
        return CountedRun(values: [
            CounterValue(event: e[0], raw: 2_000_000, enabled: 2_000_000, running: 2_000_000),
            CounterValue(event: e[1], raw: cycles / 2, enabled: 2_000_000, running: 1_000_000),
            CounterValue(event: e[2], raw: instructions / 2, enabled: 2_000_000, running: 1_000_000),
            CounterValue(event: e[3], raw: 1_000_000, enabled: 2_000_000, running: 2_000_000),
            CounterValue(event: e[4], raw: 50, enabled: 2_000_000, running: 2_000_000),
            CounterValue(event: e[5], raw: 0, enabled: 2_000_000, running: 0),
            CounterValue(unsupported: e[6], reason: "No such file or directory"),
        ], elapsedSeconds: 0.004, userSeconds: 0.002, systemSeconds: 0.0005, exitStatus: status)
    }

    func testScalingNotCountedAndNotSupportedAreNeverZero() {
        let e = EventCatalog.named("cycles")!
        let half = CounterValue(event: e, raw: 500, enabled: 2000, running: 1000)
        XCTAssertEqual(half.value, 1000)
        XCTAssertEqual(half.runningPercent, 50)
        XCTAssertTrue(half.isMultiplexed)
        let never = CounterValue(event: e, raw: 0, enabled: 2000, running: 0)
        XCTAssertEqual(never.status, .notCounted)
        XCTAssertNil(never.value)
        // A task that never ran while counting (a sleeping process under -p): a true zero.
        let idle = CounterValue(event: e, raw: 0, enabled: 0, running: 0)
        XCTAssertEqual(idle.status, .counted)
        XCTAssertEqual(idle.value, 0)
        XCTAssertFalse(idle.isMultiplexed)
        let missing = CounterValue(unsupported: e, reason: "ENOENT")
        XCTAssertEqual(missing.status.label, "not supported")
        XCTAssertNil(missing.value)
    }

    func testDerivedFiguresAndTextOutput() throws {
        let report = StatReport(runs: [run(instructions: 6_000_000)], groups: groups, command: ["./bench", "1"])
        XCTAssertEqual(report.counter("task-clock")?.value, 2.0, "clocks are in msec")
        XCTAssertEqual(report.counter("task-clock")?.metric?.value ?? 0, 0.5, accuracy: 1e-9) // 2 ms / 4 ms
        XCTAssertEqual(report.counter("cycles")?.metric?.unit, "GHz")
        XCTAssertEqual(report.counter("cycles")?.metric?.value ?? 0, 1.5, accuracy: 1e-9) // 3e6 / 2e6 ns
        XCTAssertEqual(report.counter("instructions")?.metric?.value ?? 0, 2.0, accuracy: 1e-9)
        XCTAssertEqual(report.counter("branch-misses")?.metric?.value ?? 0, 0.005, accuracy: 1e-9) // 50 / 1e6 in %
        XCTAssertEqual(report.counter("page-faults")?.status, "not counted")
        XCTAssertEqual(report.counter("ref-cycles")?.status, "not supported")
        XCTAssertEqual(report.counter("cycles")?.runningPercent, 50)

        let text = StatFormatter.text(report)
        XCTAssertTrue(text.contains("Performance counter stats for './bench 1':"))
        XCTAssertTrue(text.contains("2.00 msec task-clock"))
        XCTAssertTrue(text.contains("CPUs utilized"))
        XCTAssertTrue(text.contains("3,000,000      cycles"), text)
        XCTAssertTrue(text.contains("1.500 GHz"))
        XCTAssertTrue(text.contains("2.00  insn per cycle"))
        XCTAssertTrue(text.contains("0.01% of all branches"))
        XCTAssertTrue(text.contains("(50.00%)"), "multiplexed counters show their running share")
        XCTAssertTrue(text.contains("<not counted>      page-faults"))
        XCTAssertTrue(text.contains("<not supported>      ref-cycles"))
        XCTAssertTrue(text.contains("seconds time elapsed"))
        XCTAssertTrue(text.contains("seconds user"))
        XCTAssertTrue(text.contains("seconds sys"))
        XCTAssertFalse(text.contains(" 0      page-faults"), "a counter that never ran is not shown as 0")
    }

    func testRepeatsShowMeanAndSpreadAndFirstFailureStatus() {
        let report = StatReport(runs: [run(instructions: 6_000_000), run(instructions: 6_600_000, status: .exited(3)), run(instructions: 6_300_000)],
                                groups: groups, command: ["x"])
        XCTAssertEqual(report.repeats, 3)
        XCTAssertEqual(report.exitStatus, 3)
        let c = report.counter("instructions")!
        XCTAssertEqual(c.values, [6_000_000, 6_600_000, 6_300_000])
        XCTAssertEqual(c.value!, 6_300_000, accuracy: 1e-6)
        XCTAssertEqual(c.stddevPercent!, 100 * 300_000 / 6_300_000, accuracy: 1e-9)
        let text = StatFormatter.text(report)
        XCTAssertTrue(text.contains("(3 runs)"))
        XCTAssertTrue(text.contains("( +-  4.76% )"), text)
    }

    func testCSVParsesWithStableFields() {
        let report = StatReport(runs: [run(instructions: 6_000_000), run(instructions: 6_000_000)], groups: groups, command: ["x"])
        let csv = StatFormatter.csv(report, separator: ";", header: true)
        let rows = csv.split(separator: "\n").map { $0.split(separator: ";", omittingEmptySubsequences: false).map(String.init) }
        let fields = StatFormatter.csvFields(repeated: true)
        XCTAssertEqual(rows[0], fields)
        XCTAssertEqual(rows.count, 1 + report.counters.count)
        for row in rows { XCTAssertEqual(row.count, fields.count, "\(row)") }
        let byEvent = Dictionary(uniqueKeysWithValues: rows.dropFirst().map { ($0[2], $0) })
        XCTAssertEqual(byEvent["instructions"]?[0], "6000000")
        XCTAssertEqual(byEvent["instructions"]?[3], "0.00%")
        XCTAssertEqual(byEvent["cycles"]?[5], "50.00")
        XCTAssertEqual(byEvent["task-clock"]?[0], "2.00")
        XCTAssertEqual(byEvent["task-clock"]?[1], "msec")
        XCTAssertEqual(byEvent["instructions"]?[7], "insn per cycle")
        XCTAssertEqual(Double(byEvent["instructions"]![6]), 2.0)
        XCTAssertEqual(byEvent["page-faults"]?[0], "<not counted>")
        XCTAssertEqual(byEvent["ref-cycles"]?[0], "<not supported>")
        XCTAssertEqual(byEvent["ref-cycles"]?[5], "100.00", "perf prints 100.00 for an event that never ran")

        // One run: perf's 7 fields, no stddev column at all.
        let single = StatFormatter.csv(StatReport(runs: [run(instructions: 6_000_000)], groups: groups, command: ["x"]), separator: ",")
        for line in single.split(separator: "\n") {
            XCTAssertEqual(line.split(separator: ",", omittingEmptySubsequences: false).count, 7, String(line))
        }
    }

    func testJSONHasDocumentedFieldsAndRoundTrips() throws {
        let report = StatReport(runs: [run(instructions: 6_000_000)], groups: groups, command: ["./bench"])
        let data = try report.jsonData()
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["format"] as? String, "sprof-stat")
        XCTAssertEqual(object["version"] as? Int, 1)
        XCTAssertEqual(object["command"] as? [String], ["./bench"])
        XCTAssertEqual(object["repeats"] as? Int, 1)
        XCTAssertEqual(object["exit_status"] as? Int, 0)
        let elapsed = try XCTUnwrap(object["elapsed_seconds"] as? [String: Any])
        XCTAssertEqual(elapsed["mean"] as? Double, 0.004)
        let counters = try XCTUnwrap(object["counters"] as? [[String: Any]])
        let keys: Set<String> = ["event", "group", "status", "value", "values", "unit", "running_percent", "running_time_ns", "stddev_percent", "metric", "reason"]
        for c in counters { XCTAssertEqual(Set(c.keys), keys, "every counter has the same keys, nulls included") }
        let instructions = try XCTUnwrap(counters.first { $0["event"] as? String == "instructions" })
        XCTAssertEqual(instructions["value"] as? Double, 6_000_000)
        XCTAssertEqual(instructions["group"] as? Int, 1)
        XCTAssertEqual((instructions["metric"] as? [String: Any])?["unit"] as? String, "insn per cycle")
        let missing = try XCTUnwrap(counters.first { $0["event"] as? String == "ref-cycles" })
        XCTAssertTrue(missing["value"] is NSNull)
        XCTAssertEqual(missing["status"] as? String, "not supported")
        XCTAssertEqual(try StatReport.decode(data), report)
    }

    private func report(instructions: [UInt64]) -> StatReport {
        StatReport(runs: instructions.map { run(instructions: $0) }, groups: groups, command: ["x"])
    }

    func testGateFailsOnASyntheticRegression() throws {
        let baseline = report(instructions: [10_000_000, 10_010_000, 9_990_000, 10_005_000, 9_995_000])
        let current = report(instructions: [10_800_000, 10_790_000, 10_810_000, 10_805_000, 10_795_000]) // +8%
        let verdict = RegressionGate().compare(current: current, baseline: baseline)
        XCTAssertTrue(verdict.failed)
        XCTAssertEqual(verdict.comparisons.map(\.event), ["instructions"], "instructions are the default gate")
        let c = verdict.comparisons[0]
        XCTAssertEqual(c.changePercent, 8, accuracy: 0.01)
        XCTAssertLessThan(c.pValue!, 0.05)
        let lines = RegressionGate.describe(verdict, thresholdPercent: 5)
        XCTAssertTrue(lines[0].hasPrefix("REGRESSED: instructions +8.00%"), lines[0])
        // The JSON round trip (what --baseline reads) gives the same verdict.
        let reread = try StatReport.decode(baseline.jsonData())
        XCTAssertTrue(RegressionGate().compare(current: current, baseline: reread).failed)
    }

    func testGatePassesOnNoiseEvenPastTheThreshold() {
        // Means differ by about 6%, but the runs scatter by ±15%: not significant.
        let baseline = report(instructions: [8_500_000, 11_500_000, 10_000_000, 9_000_000, 11_000_000])
        let current = report(instructions: [12_200_000, 9_000_000, 10_600_000, 9_500_000, 11_700_000])
        let verdict = RegressionGate().compare(current: current, baseline: baseline)
        XCTAssertGreaterThan(verdict.comparisons[0].changePercent, 5)
        XCTAssertGreaterThan(verdict.comparisons[0].pValue!, 0.05)
        XCTAssertFalse(verdict.failed)
        XCTAssertTrue(RegressionGate.describe(verdict, thresholdPercent: 5)[0].contains("within noise"))
    }

    func testGateWithSingleRunsUsesTheThresholdAloneAndReportsImprovements() {
        let baseline = report(instructions: [10_000_000])
        XCTAssertFalse(RegressionGate().compare(current: report(instructions: [10_400_000]), baseline: baseline).failed)
        XCTAssertTrue(RegressionGate().compare(current: report(instructions: [10_600_000]), baseline: baseline).failed)
        let better = RegressionGate().compare(current: report(instructions: [9_000_000]), baseline: baseline)
        XCTAssertFalse(better.failed)
        XCTAssertTrue(better.comparisons[0].improved)
        XCTAssertTrue(RegressionGate(thresholdPercent: 1).compare(current: report(instructions: [10_200_000]), baseline: baseline).failed)
    }

    func testGateOnChosenCountersAndMissingOnes() {
        let baseline = report(instructions: [10_000_000])
        let verdict = RegressionGate(events: ["cycles", "elapsed", "ref-cycles"]).compare(current: report(instructions: [20_000_000]), baseline: baseline)
        XCTAssertEqual(verdict.comparisons.map(\.event), ["cycles", "elapsed"])
        XCTAssertEqual(verdict.missing, ["ref-cycles"])
        XCTAssertFalse(verdict.failed)
    }
}
