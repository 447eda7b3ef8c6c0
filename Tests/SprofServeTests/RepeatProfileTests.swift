import Foundation
import XCTest
import SprofFormats
import SprofProfile
@testable import SprofServe

/// A repeat job gives the kind of profile `sprof run -r N` writes: one pprof file whose samples
/// carry their run number.
final class RepeatProfileTests: XCTestCase {
    func testRunsOfARepeatJobMergeIntoOneLabelledProfile() throws {
        let job = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-serve-repeat-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: job) }
        for run in 1...3 {
            try FileManager.default.createDirectory(atPath: "\(job)/runs/\(run)", withIntermediateDirectories: true)
            let profile = Profile(folded: [(["app", "main", "work"], Int64(run * 10))])
            try Data(try PprofFormat.encode(profile)).write(to: URL(fileURLWithPath: "\(job)/runs/\(run)/profile.pb.gz"))
        }
        XCTAssertTrue(SprofProcessEngine.mergeRuns(jobDirectory: job, runs: 3))
        let merged = try PprofFormat.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: job + "/profile.pb.gz"))))
        XCTAssertEqual(merged.runs, [1, 2, 3])
        XCTAssertEqual(merged.onlyRun(2).total(), 20)
        XCTAssertEqual(merged.total(), 60)
        XCTAssertFalse(SprofProcessEngine.mergeRuns(jobDirectory: job + "/missing", runs: 2), "no runs, no file")
    }
}
