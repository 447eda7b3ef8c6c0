import Foundation
import XCTest
@testable import SprofCounting

/// `sprof stat -x SEP` against lines perf 6.1's `perf stat -x SEP` printed
/// (Tests/Fixtures/perf-stat-csv, captured as its README says): same values in, same bytes out.
final class PerfCSVCompatibilityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/perf-stat-csv")

    /// A counter holding what a perf line says, in sprof's terms.
    private func counter(fromPerfLine fields: [String], repeated: Bool) throws -> StatReport.Counter {
        var f = fields
        let stddev = repeated ? f.remove(at: 3) : nil
        XCTAssertEqual(f.count, 7, "perf's layout has 7 fields (8 with -r): \(fields)")
        let (value, unit, event, runtime, percent, metricValue, metricUnit) = (f[0], f[1], f[2], f[3], f[4], f[5], f[6])
        let status = value.hasPrefix("<") ? String(value.dropFirst().dropLast()) : "counted"
        var metric: StatReport.Metric?
        if let m = Double(metricValue) {
            switch metricUnit {
            case "K/sec": metric = .init(value: m * 1e3, unit: "/sec")
            case "M/sec": metric = .init(value: m * 1e6, unit: "/sec")
            case "G/sec": metric = .init(value: m * 1e9, unit: "/sec")
            case "of all branches", "of all cache refs": metric = .init(value: m, unit: "% " + metricUnit)
            default: metric = .init(value: m, unit: metricUnit)
            }
        }
        return StatReport.Counter(
            event: event, group: 0, status: status, value: Double(value), values: Double(value).map { [$0] } ?? [],
            unit: unit, runningPercent: status == "counted" ? Double(percent) : nil,
            runningNanoseconds: status == "counted" ? Double(runtime) : nil,
            stddevPercent: stddev.flatMap { Double($0.dropLast()) }, metric: metric, reason: nil)
    }

    func testEveryCapturedPerfLineIsReproducedByteForByte() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path).filter { $0.hasSuffix(".csv") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 5, "fixtures missing in \(Self.fixtures.path)")
        var lines = 0
        for file in files {
            let separator = file.contains("semicolon") ? ";" : ","
            let repeated = file.contains("repeated")
            let text = try String(contentsOf: Self.fixtures.appendingPathComponent(file), encoding: .utf8)
            let perfLines = text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            var report = StatReport(runs: [CountedRun(values: [], elapsedSeconds: 1)], groups: [])
            report.repeats = repeated ? 3 : 1
            report.counters = try perfLines.map {
                try counter(fromPerfLine: $0.split(separator: Character(separator), omittingEmptySubsequences: false).map(String.init),
                            repeated: repeated)
            }
            let sprof = StatFormatter.csv(report, separator: separator)
            XCTAssertEqual(sprof, perfLines.map { $0 + "\n" }.joined(), "\(file)")
            lines += perfLines.count
        }
        XCTAssertGreaterThanOrEqual(lines, 12)
    }

    /// Rates are scaled as perf scales them: /sec, K/sec, M/sec, G/sec with three decimals.
    func testRatesAreScaledToPerfsUnits() {
        XCTAssertEqual(StatFormatter.csvMetric(.init(value: 0, unit: "/sec")).unit, "/sec")
        XCTAssertTrue(StatFormatter.csvMetric(.init(value: 126_201, unit: "/sec")) == ("126.201", "K/sec"))
        XCTAssertTrue(StatFormatter.csvMetric(.init(value: 2_500_000, unit: "/sec")) == ("2.500", "M/sec"))
        XCTAssertTrue(StatFormatter.csvMetric(.init(value: 3e9, unit: "/sec")) == ("3.000", "G/sec"))
        XCTAssertTrue(StatFormatter.csvMetric(.init(value: 2.345, unit: "% of all branches")) == ("2.35", "of all branches"))
        XCTAssertTrue(StatFormatter.csvMetric(.init(value: 1.8512, unit: "insn per cycle")) == ("1.85", "insn per cycle"))
    }
}
