import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `sprof annotate` prints values in the sample type's unit as `sprof report` does: a Go CPU
/// profile's nanoseconds as seconds (`1.010s`), not as raw integers; sample counts as
/// `go tool pprof -list` prints them.
final class AnnotateUnitsTests: XCTestCase {
    private func profile() -> Profile {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count"), .init(type: "cpu", unit: "nanoseconds")],
                                defaultSampleType: 1)
        let main = b.function(Profile.Function(name: "main", file: "m.c"))
        let work = b.function(Profile.Function(name: "work", file: "w.c"))
        let inMain = b.location(Profile.Location(address: 0x1100, lines: [.init(function: main, line: 3)]))
        let inWork = b.location(Profile.Location(address: 0x1000, lines: [.init(function: work, line: 10)]))
        b.add(stack: b.stack([inWork, inMain]), thread: nil, values: [101, 1_010_000_000])
        b.add(stack: b.stack([inMain]), thread: nil, values: [7, 70_000_000])
        return b.build(metadata: .init())
    }

    func testNanosecondsArePrintedAsSeconds() throws {
        let path = SprofCLI.outputPrefix("units") + ".pb.gz"
        try Data(try PprofFormat.encode(profile())).write(to: URL(fileURLWithPath: path))
        let cpu = try SprofCLI.run(["annotate", "^work$", path])
        XCTAssertEqual(cpu.status, 0, cpu.stderr)
        XCTAssertFalse(cpu.stdout.contains("1010000000"), cpu.stdout)
        XCTAssertTrue(cpu.stdout.contains("    1.010s  93.52%     1.010s  93.52%  (cpu/nanoseconds, self and total, of 1.080s)\n"), cpu.stdout)
        XCTAssertTrue(cpu.stdout.contains("    1.010s  93.52%     1.010s  93.52%     10  "), cpu.stdout)
        let samples = try SprofCLI.run(["annotate", "^work$", path, "--view", "samples"])
        XCTAssertEqual(samples.status, 0, samples.stderr)
        XCTAssertTrue(samples.stdout.contains("       101  93.52%        101  93.52%  (samples, self and total, of 108)\n"), samples.stdout)
    }
}
