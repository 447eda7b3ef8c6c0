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

    /// A repeat job of 3 runs stopped during run 2 gets the profile of the runs recorded, merged,
    /// as `sprof run -r 3` merges the runs before its Ctrl-C; its notice says 2 of 3, stopped.
    /// Run 2, cut short by the Stop, keeps its samples without a run label, as on the CLI (a new
    /// user saw it labelled a run of its own, which skews diff's per-run shares).
    func testARepeatJobStoppedEarlyMergesTheRunsItRecorded() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-serve-stopped-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let engine = StoppableRunsEngine(stopAt: 2)
        let store = try JobStore(dataDirectory: data, engine: engine)
        await store.start()
        let id = try await store.create(command: ["/bin/true"], options: JobOptions(repeat: 3)).id
        for _ in 0..<500 where engine.started < 2 { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertEqual(engine.started, 2)
        _ = try await store.stop(id)
        var job = try await store.job(id)
        for _ in 0..<500 where !job.state.isFinal {
            try await Task.sleep(nanoseconds: 10_000_000)
            job = try await store.job(id)
        }
        await store.shutdown()
        XCTAssertEqual(job.state, .done)
        XCTAssertEqual(job.runsDone, 2)
        XCTAssertTrue(job.notices.contains { $0.contains("2 of 3 runs, stopped") }, "\(job.notices)")
        let file = data + "/jobs/\(id)/profile.pb.gz"
        let merged = try PprofFormat.decode([UInt8](try XCTUnwrap(FileManager.default.contents(atPath: file), "no merged profile")))
        XCTAssertEqual(merged.runs, [1])
        XCTAssertEqual(merged.total(), 30)
        XCTAssertTrue(job.notices.contains { $0.contains("cut short by the Stop") }, "\(job.notices)")
    }

    /// A repeat job stopped after 2 of 3 runs by an older server has no merged profile: its runs
    /// are merged when "all runs" is first asked for (it was a 404).
    func testAnOlderStoppedRepeatJobIsMergedWhenAskedFor() async throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-serve-older-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: data) }
        let id = "20200101-000000-0000cc", dir = data + "/jobs/" + id
        for run in 1...2 {
            try FileManager.default.createDirectory(atPath: "\(dir)/runs/\(run)", withIntermediateDirectories: true)
            try Data(try PprofFormat.encode(Profile(folded: [(["app", "main"], Int64(run * 10))]))).write(to: URL(fileURLWithPath: "\(dir)/runs/\(run)/profile.pb.gz"))
        }
        var job = Job(id: id, command: ["/bin/true"], options: JobOptions(repeat: 3), createdMs: 1_577_836_800_000)
        job.state = .done
        job.runsDone = 2
        try DataFiles.writeJSON(job, to: dir + "/state.json")
        let store = try JobStore(dataDirectory: data, engine: FakeEngine())
        let merged = try await ServeApp.mergedDirectory(store, id)
        XCTAssertEqual(merged, dir)
        let profile = try PprofFormat.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/profile.pb.gz"))))
        XCTAssertEqual(profile.runs, [1, 2])
        XCTAssertEqual(profile.total(), 30)
    }
}

/// Writes run N's profile (10·N samples) at once; run `stopAt` then records until Stop.
final class StoppableRunsEngine: JobEngine, @unchecked Sendable {
    let stopAt: Int
    private let lock = NSLock()
    private var runs = 0, cancelled = false
    init(stopAt: Int) { self.stopAt = stopAt }
    var started: Int { lock.withLock { runs } }
    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        let n = lock.withLock { runs += 1; return runs }
        let profile = Profile(folded: [(["app", "main", "run\(n)"], Int64(10 * n))])
        try? Data(PprofFormat.encode(profile)).write(to: URL(fileURLWithPath: directory + "/profile.pb.gz"))
        if n == stopAt {
            while !lock.withLock({ cancelled }) { try? await Task.sleep(nanoseconds: 5_000_000) }
        }
        return RunOutcome(profileWritten: true, exitStatus: 0, samples: UInt64(10 * n))
    }
    func cancel() { lock.withLock { cancelled = true } }
}
