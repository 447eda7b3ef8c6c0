import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// A profile of two threads and three stacks with 10 timed samples, 1 ms apart from 1 ms on,
/// as `sprof run --timeline` leaves it (CLOCK_MONOTONIC times from `origin`).
enum TimelineFixture {
    static let origin: UInt64 = 5_000_000_000

    static func profile() -> Profile {
        var p = Profile(sampleTypes: [Profile.ValueType(type: "samples", unit: "count"), Profile.ValueType(type: "cpu", unit: "nanoseconds")])
        p.functions = ["main", "work", "idle"].map { Profile.Function(name: $0) }
        p.locations = (0..<3).map { Profile.Location(address: UInt64(0x1000 + $0 * 16), lines: [Profile.Line(function: $0)]) }
        p.stacks = [[1, 0], [2, 0], [0]]  // leaf first: main>work, main>idle, main
        p.threads = [Profile.Thread(pid: 100, tid: 100, name: "app", processName: "app"),
                     Profile.Thread(pid: 100, tid: 101, name: "worker", processName: "app")]
        // (thread, stack) per sample, in time order.
        let order = [(0, 0), (0, 0), (1, 1), (0, 2), (1, 0), (1, 0), (0, 0), (1, 1), (0, 2), (1, 0)]
        p.timedSamples = order.enumerated().map { i, s in
            Profile.TimedSample(thread: s.0, time: origin + UInt64(i + 1) * 1_000_000, cpu: UInt32(i % 2), stack: s.1)
        }
        var counts: [[Int]: Int64] = [:]
        for (t, s) in order { counts[[t, s], default: 0] += 1 }
        p.samples = counts.keys.sorted { $0.lexicographicallyPrecedes($1) }.map { k in
            Profile.Sample(stack: k[1], thread: k[0], values: [counts[k]!, counts[k]! * 1_000_000])
        }
        return p
    }

    /// A run directory holding ``profile()`` as `profile.pb.gz` and its `profile.timeline.tsv`, as
    /// `sprof run --timeline` leaves them; the caller removes it.
    static func writeRun(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "sprof-serve-\(name)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = profile()
        try Data(try PprofFormat.encode(p)).write(to: URL(fileURLWithPath: dir + "/profile.pb.gz"))
        try Data(SampleTimeline.text(p, origin: origin).utf8).write(to: URL(fileURLWithPath: dir + "/profile.timeline.tsv"))
        return dir
    }
}

final class TimelineTests: XCTestCase {
    /// Transforms apply to the Timeline tab as to every view: its sample count is what they keep
    /// (it drew every sample whatever the transforms).
    func testTheTimelineCountsWhatTheTransformsKeep() async throws {
        let dir = try TimelineFixture.writeRun("timeline-tf")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = ProfileCache()
        for (text, want) in [("", 10), ("ignore:work", 4), ("focus:idle", 2), ("tid:101", 5), ("merge:work", 10), ("tid:101\nignore:work", 2)] {
            let tf = try text.split(separator: "\n").map { try StackTransform(parsing: String($0)) }
            let data = try await cache.view(dir, key: "timeline|" + text) { cache in
                try ServeApp.render(view: "timeline", dir: dir, cache: cache, thread: nil, transforms: tf)
            }
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            XCTAssertEqual(json["samples"] as? Int, want, text)
            let tracks = (json["threads"] as? [[String: Any]])?.compactMap { $0["total"] as? Int }.reduce(0, +)
            XCTAssertEqual(tracks, want, text)
        }
    }

    /// A single-threaded command sampled at 999 Hz for 1 s (a period of 1,001,001 ns) in buckets
    /// of 2.5 ms: the CPU-use graph never shows more than 1 CPU (2 or 3 samples per bucket, each
    /// counted whole in its bucket, read as up to 1.2), and its area stays the CPU time recorded.
    /// Two threads that ran all along peak at 2, not above.
    func testTheCPUUseGraphNeverExceedsTheThreadsRunning() throws {
        let period: UInt64 = 1_001_001
        for threads in [1, 2] {
            var p = Profile(sampleTypes: [Profile.ValueType(type: "samples", unit: "count"), Profile.ValueType(type: "cpu", unit: "nanoseconds")])
            p.functions = [Profile.Function(name: "main")]
            p.locations = [Profile.Location(address: 0x1000, lines: [Profile.Line(function: 0)])]
            p.stacks = [[0]]
            p.threads = (0..<threads).map { Profile.Thread(pid: 100, tid: Int32(100 + $0), name: "t\($0)", processName: "app") }
            var timed: [Profile.TimedSample] = []
            for t in 0..<threads {
                // Thread t's timer is a third of a period later than thread t-1's.
                for k in 1...999 { timed.append(Profile.TimedSample(thread: t, time: UInt64(k) * period + UInt64(t) * period / 3, cpu: UInt32(t), stack: 0)) }
            }
            timed.sort { $0.time < $1.time }
            p.samples = (0..<threads).map { Profile.Sample(stack: 0, thread: $0, values: [999, 999 * Int64(period)]) }
            let timeline = ProfileViews.timeline(p, timed: timed)
            let cpu = try XCTUnwrap(timeline.cpu)
            XCTAssertTrue((2 * period..<3 * period).contains(timeline.bucket), "2 or 3 samples per bucket: \(timeline.bucket)")
            XCTAssertLessThanOrEqual(cpu.max() ?? 0, Double(threads) + 1e-9, "\(threads) thread(s): \(cpu.max() ?? 0) CPUs")
            XCTAssertGreaterThan(cpu.max() ?? 0, Double(threads) - 0.01, "busy all along")
            let area = cpu.reduce(0, +) * Double(timeline.bucket)
            XCTAssertEqual(area, Double(threads * 999) * Double(period), accuracy: Double(threads) * Double(period), "the CPU time is kept")
        }
    }

    /// Written against the model, read back against the pprof file's profile: same stacks,
    /// threads and order, times from the start of recording.
    func testSampleTimelineReadsBackAgainstThePprofFile() throws {
        let p = TimelineFixture.profile()
        let text = SampleTimeline.text(p, origin: TimelineFixture.origin)
        XCTAssertTrue(text.hasPrefix(SampleTimeline.header + "\n"))
        let decoded = try PprofFormat.decode(try PprofFormat.encode(p))
        let timed = try SampleTimeline.parse(text, matching: decoded)
        XCTAssertEqual(timed.count, 10)
        XCTAssertEqual(timed.map(\.time), (1...10).map { UInt64($0) * 1_000_000 })
        for (a, b) in zip(p.timedSamples, timed) {
            XCTAssertEqual(p.frameNames(ofStack: a.stack), decoded.frameNames(ofStack: b.stack))
            XCTAssertEqual(p.threads[a.thread].tid, decoded.threads[b.thread].tid)
            XCTAssertEqual(a.cpu, b.cpu)
        }
        // Another recording's profile: its stacks are not there.
        var other = decoded
        other.stacks = other.stacks.map { Array($0.reversed()) + [0] }
        XCTAssertThrowsError(try SampleTimeline.parse(text, matching: other)) { error in
            XCTAssertTrue("\(error)".contains("not in the profile"), "\(error)")
        }
        XCTAssertThrowsError(try SampleTimeline.parse("1\t2\t3\n", matching: decoded))
    }

    func testARangeKeepsOnlyItsSamples() {
        let p = TimelineFixture.profile()
        let timed = p.timedSamples.map { var s = $0; s.time -= TimelineFixture.origin; return s }
        // Samples at 3, 4, 5 and 6 ms: [3 ms, 7 ms).
        let r = ProfileViews.restrict(p, timed: timed, to: TimeRange(from: 3_000_000, to: 7_000_000))
        XCTAssertEqual(r.total(0), 4)
        XCTAssertEqual(r.total(1), 4_000_000, "each sample keeps its CPU nanoseconds")
        XCTAssertEqual(r.threadTotals().map(\.value), [3, 1])
        let top = Dictionary(uniqueKeysWithValues: ProfileViews.top(r).map { ($0.name, $0.selfValue) })
        XCTAssertEqual(top, ["work": 2, "idle": 1, "main": 1])
        XCTAssertEqual(ProfileViews.restrict(p, timed: timed, to: TimeRange(from: 0, to: .max)).total(0), 10)
        XCTAssertEqual(ProfileViews.restrict(p, timed: timed, to: TimeRange(from: 20_000_000, to: 30_000_000)).total(0), 0)
    }

    func testTimelineBucketsEveryThreadsSamples() throws {
        let p = TimelineFixture.profile()
        let timed = p.timedSamples.map { var s = $0; s.time -= TimelineFixture.origin; return s }
        let t = ProfileViews.timeline(p, timed: timed, buckets: 5)
        XCTAssertEqual(t.duration, 10_000_000)
        XCTAssertEqual(t.samples, 10)
        XCTAssertEqual(t.threads.map(\.tid), [100, 101], "most samples first (5 each: by tid)")
        XCTAssertEqual(t.threads.map { $0.counts.reduce(0, +) }, [5, 5])
        XCTAssertEqual(t.threads.flatMap(\.counts).count, 10)
        // 1 ms of CPU per sample: a bucket of two samples over ~2 ms is about one CPU.
        let cpu = try XCTUnwrap(t.cpu)
        XCTAssertEqual(cpu.count, 5)
        XCTAssertEqual(cpu.reduce(0, +) * Double(t.bucket), 10 * 1_000_000, accuracy: 1)
    }

    func testRangeQueryValues() throws {
        XCTAssertNil(try TimeRange.parse(from: nil, to: nil))
        XCTAssertEqual(try TimeRange.parse(from: "5", to: nil), TimeRange(from: 5, to: .max))
        XCTAssertThrowsError(try TimeRange.parse(from: "9", to: "9"))
        XCTAssertThrowsError(try TimeRange.parse(from: "-1", to: "9"))
    }

    /// Writes the fixture as `sprof run --timeline` would: pprof and the sample timeline.
    final class TimelineEngine: JobEngine, @unchecked Sendable {
        let withTimeline: Bool
        init(withTimeline: Bool) { self.withTimeline = withTimeline }
        func run(command: [String], options: JobOptions, directory: String,
                 progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
            let p = TimelineFixture.profile()
            try? Data(try! PprofFormat.encode(p)).write(to: URL(fileURLWithPath: directory + "/profile.pb.gz"))
            if withTimeline {
                try? Data(SampleTimeline.text(p, origin: TimelineFixture.origin).utf8).write(to: URL(fileURLWithPath: directory + "/profile.timeline.tsv"))
            }
            return RunOutcome(profileWritten: true, exitStatus: 0, samples: 10, lost: 0)
        }
        func cancel() {}
    }

    func testViewsCutToATimeRange() async throws {
        let dataDir = NSTemporaryDirectory() + "sprof-serve-timeline-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        for withTimeline in [true, false] {
            let store = try JobStore(dataDirectory: dataDir + "/\(withTimeline)", engine: TimelineEngine(withTimeline: withTimeline))
            await store.start()
            let router = ServeApp.router(store: store, validator: JobValidator(capabilities: SprofCapabilities()),
                                         configuration: ServeConfiguration(token: "secret-token"))
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                let created = try await ServeAPITests.create(client, #"{"command": ["/bin/true"]}"#)
                let createdJSON = try ServeAPITests.json(created)
                let id = try XCTUnwrap((createdJSON as? [String: Any])?["id"] as? String)
                _ = try await ServeAPITests.waitForEnd(client, id)
                let base = "/api/jobs/\(id)/runs/1/view"
                let allAny = try await ServeAPITests.getJSON(client, "\(base)/cpu")
                let all = try XCTUnwrap(allAny as? [String: Any])
                XCTAssertEqual(all["total"] as? Int, 10)
                let timelineAny = try await ServeAPITests.getJSON(client, "\(base)/timeline")
                let timeline = try XCTUnwrap(timelineAny as? [String: Any])
                guard withTimeline else {
                    XCTAssertTrue((timeline["empty"] as? String ?? "").contains("--timeline"), "\(timeline)")
                    let refused = try await client.execute(uri: "\(base)/cpu?from=0&to=5", method: .get, headers: ServeAPITests.auth)
                    XCTAssertEqual(refused.status, .badRequest)
                    XCTAssertTrue(String(buffer: refused.body).contains("no sample timeline"))
                    return
                }
                XCTAssertEqual(timeline["samples"] as? Int, 10)
                let cutAny = try await ServeAPITests.getJSON(client, "\(base)/cpu?from=3000000&to=7000000")
                let cut = try XCTUnwrap(cutAny as? [String: Any])
                XCTAssertEqual(cut["total"] as? Int, 4)
                let topAny = try await ServeAPITests.getJSON(client, "\(base)/top?from=3000000&to=7000000")
                let top = try XCTUnwrap(topAny as? [[String: Any]])
                XCTAssertEqual(top.reduce(0) { $0 + ($1["self"] as? Int ?? 0) }, 4)
                let threadsAny = try await ServeAPITests.getJSON(client, "\(base)/threads?from=3000000&to=7000000")
                let threads = try XCTUnwrap(threadsAny as? [[String: Any]])
                XCTAssertEqual(threads.compactMap { $0["value"] as? Int }, [3, 1])
                let callersAny = try await ServeAPITests.getJSON(client, "\(base)/callers?fn=work&from=3000000&to=7000000")
                let callers = try XCTUnwrap(callersAny as? [String: Any])
                XCTAssertEqual(callers["self"] as? Int, 2)
                let invertedAny = try await ServeAPITests.getJSON(client, "\(base)/inverted?from=0&to=2500000")
                let inverted = try XCTUnwrap(invertedAny as? [String: Any])
                XCTAssertEqual(inverted["total"] as? Int, 2)
                // The whole profile again after a range: not the cached range.
                let againAny = try await ServeAPITests.getJSON(client, "\(base)/cpu")
                let again = try XCTUnwrap(againAny as? [String: Any])
                XCTAssertEqual(again["total"] as? Int, 10)
                let bad = try await client.execute(uri: "\(base)/cpu?from=7&to=3", method: .get, headers: ServeAPITests.auth)
                XCTAssertEqual(bad.status, .badRequest)
            }
            await store.shutdown()
        }
    }

    /// The trie-built tree against its definition on random stacks: pre-order is the
    /// lexicographic order of the paths, each node's value is the sum of the stacks starting with
    /// its path, the base the rounded scaled sum per distinct stack, names in first-use order.
    func testFlameTreeMatchesItsDefinitionOnRandomStacks() {
        var g = SystemRandomNumberGenerator()
        let alphabet = ["a", "b", "B", "c", "é", "main", "zz", "a b"]
        func stacks(_ n: Int) -> [(frames: [String], value: Int64)] {
            (0..<n).map { _ in ((0..<Int.random(in: 0...6, using: &g)).map { _ in alphabet.randomElement(using: &g)! }, Int64.random(in: -1...9, using: &g)) }
        }
        for _ in 0..<20 {
            let new = stacks(60), base = stacks(40)
            let tree = ProfileViews.flameTree(new, unit: "samples", base: base)
            var paths: [[String]] = []
            for i in tree.parent.indices {
                let p = Int(tree.parent[i])
                XCTAssertLessThan(p, i, "a parent comes before its children")
                paths.append((p >= 0 ? paths[p] : []) + [tree.names[Int(tree.name[i])]])
            }
            XCTAssertEqual(paths.count, Set(paths).count, "one node per path")
            for k in paths.indices.dropFirst() { XCTAssertTrue(paths[k - 1].lexicographicallyPrecedes(paths[k]), "\(paths[k - 1]) before \(paths[k])") }
            let positive = new.filter { $0.value > 0 }, positiveBase = base.filter { $0.value > 0 }
            let newTotal = positive.reduce(Int64(0)) { $0 + $1.value }, baseTotal = positiveBase.reduce(Int64(0)) { $0 + $1.value }
            let scale = baseTotal > 0 ? Double(newTotal) / Double(baseTotal) : 1
            var baseByStack: [[String]: Int64] = [:]
            for s in positiveBase where !s.frames.isEmpty { baseByStack[s.frames, default: 0] += s.value }
            for (i, path) in paths.enumerated() {
                let want = positive.filter { $0.frames.starts(with: path) }.reduce(Int64(0)) { $0 + $1.value }
                XCTAssertEqual(tree.value[i], want, "\(path)")
                let wantBase = baseByStack.filter { $0.key.starts(with: path) }.reduce(Int64(0)) { $0 + Int64((Double($1.value) * scale).rounded()) }
                XCTAssertEqual(tree.base?[i], wantBase, "\(path)")
            }
            let everyPath = Set((positive + positiveBase).flatMap { s in (0..<s.frames.count).map { Array(s.frames[...$0]) } })
            XCTAssertEqual(Set(paths), everyPath)
            var firstUse: [String] = []
            for id in tree.name where !firstUse.contains(tree.names[Int(id)]) { firstUse.append(tree.names[Int(id)]) }
            XCTAssertEqual(firstUse, tree.names)
            XCTAssertEqual(tree.total, newTotal)
        }
    }
}
