import Foundation
import Hummingbird
import HummingbirdTesting
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// Writes a CPU profile, a heap profile with Go's four sample types and its in-use timeline, as
/// `sprof run --heap` leaves them: the heap views read them without recording.
final class FakeHeapEngine: JobEngine, @unchecked Sendable {
    /// Stacks (root first) with alloc_objects, alloc_space, inuse_objects, inuse_space.
    static let stacks: [([String], [Int64])] = [
        (["main", "parse", "malloc"], [100, 6_000_000, 0, 0]),
        (["main", "index", "malloc"], [50, 3_000_000, 10, 600_000]),
        (["main", "leak_three", "malloc"], [1, 3_145_728, 1, 3_145_728]),
    ]

    static func heapProfile() -> Profile {
        var b = ProfileBuilding(sampleTypes: ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes"].map {
            let parts = $0.split(separator: "/")
            return Profile.ValueType(type: String(parts[0]), unit: String(parts[1]))
        }, defaultSampleType: 1, periodType: Profile.ValueType(type: "space", unit: "bytes"), period: 524_288)
        let thread = b.thread(Profile.Thread(pid: 1, tid: 1, name: "app", processName: "app"))
        for (frames, values) in stacks {
            let leafFirst = frames.reversed().map { b.location(Profile.Location(lines: [Profile.Line(function: b.function(named: $0))], kind: .user)) }
            b.add(stack: b.stack(leafFirst), thread: thread, values: values)
        }
        return b.build(metadata: ProfileMetadata())
    }

    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        try? Data("app;main;work 30\n".utf8).write(to: URL(fileURLWithPath: directory + "/profile.folded"))
        if options.heap == true {
            let bytes = (try? PprofFormat.encode(Self.heapProfile())) ?? []
            try? Data(bytes).write(to: URL(fileURLWithPath: directory + "/profile.heap.pb.gz"))
            try? Data("time_s\tinuse_bytes\n0.010\t1000000\n0.250\t3745728\n".utf8).write(to: URL(fileURLWithPath: directory + "/profile.heap.tsv"))
        }
        return RunOutcome(profileWritten: true, exitStatus: 0, samples: 30, lost: 0)
    }
    func cancel() {}
}

final class HeapViewTests: XCTestCase {
    var dataDir = ""

    override func setUp() { dataDir = NSTemporaryDirectory() + "sprof-serve-heap-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dataDir) }

    private func withServer(heapCapable: Bool = true, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let store = try JobStore(dataDirectory: dataDir, engine: FakeHeapEngine())
        await store.start()
        let router = ServeApp.router(store: store, validator: JobValidator(capabilities: SprofCapabilities(heap: heapCapable)),
                                     configuration: ServeConfiguration(token: "secret-token"))
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body(client) }
        await store.shutdown()
    }

    private func object(_ client: any TestClientProtocol, _ uri: String) async throws -> [String: Any] {
        let any = try await ServeAPITests.getJSON(client, uri)
        return try XCTUnwrap(any as? [String: Any], "\(uri): \(any)")
    }

    private func job(_ client: any TestClientProtocol, options: String) async throws -> String {
        let created = try await ServeAPITests.create(client, #"{"command": ["/bin/true"], "options": "# + options + "}")
        let id = try XCTUnwrap((try ServeAPITests.json(created) as? [String: Any])?["id"] as? String, String(buffer: created.body))
        _ = try await ServeAPITests.waitForEnd(client, id)
        return id
    }

    /// A heap job's views: the allocation and in-use flame trees in bytes, the totals, the
    /// timeline in nanoseconds and the leaks, most bytes first with their objects.
    func testHeapViewsOfAHeapJob() async throws {
        try await withServer { client in
            let id = try await self.job(client, options: #"{"heap": true}"#)
            let job = try await self.object(client, "/api/jobs/\(id)")
            XCTAssertEqual((job["options"] as? [String: Any])?["heap"] as? Bool, true)
            let alloc = try await self.object(client, "/api/jobs/\(id)/runs/1/view/heap-alloc")
            XCTAssertEqual(alloc["unit"] as? String, "bytes")
            XCTAssertEqual(alloc["total"] as? Int, 12_145_728)
            let inuse = try await self.object(client, "/api/jobs/\(id)/runs/1/view/heap-inuse")
            XCTAssertEqual(inuse["total"] as? Int, 3_745_728)
            let summary = try await self.object(client, "/api/jobs/\(id)/runs/1/view/heap")
            XCTAssertEqual(summary["alloc_objects"] as? Int, 151)
            XCTAssertEqual(summary["alloc_space"] as? Int, 12_145_728)
            XCTAssertEqual(summary["inuse_objects"] as? Int, 11)
            XCTAssertEqual(summary["inuse_space"] as? Int, 3_745_728)
            XCTAssertEqual(summary["rate"] as? Int, 524_288)
            XCTAssertEqual(summary["timeline"] as? [[Int]], [[10_000_000, 1_000_000], [250_000_000, 3_745_728]])
            let leaks = try XCTUnwrap(summary["leaks"] as? [[String: Any]])
            XCTAssertEqual(leaks.map { $0["function"] as? String }, ["leak_three", "index"], "stacks still holding memory, most bytes first; parse freed everything")
            XCTAssertEqual(leaks.map { $0["bytes"] as? Int }, [3_145_728, 600_000])
            XCTAssertEqual(leaks.map { $0["objects"] as? Int }, [1, 10])
            XCTAssertEqual(leaks.first?["stack"] as? [String], ["app", "main", "leak_three", "malloc"])
        }
    }

    /// A job without --heap says how to get a heap profile; a sprof without --heap refuses the option.
    func testWithoutHeapTheViewSaysWhyAndAnOldSprofRefusesIt() async throws {
        try await withServer { client in
            let id = try await self.job(client, options: "{}")
            let summary = try await self.object(client, "/api/jobs/\(id)/runs/1/view/heap")
            XCTAssertTrue((summary["empty"] as? String ?? "").contains("Heap checked"), "\(summary)")
        }
        try await withServer(heapCapable: false) { client in
            let r = try await ServeAPITests.create(client, #"{"command": ["/bin/true"], "options": {"heap": true}}"#)
            XCTAssertEqual(r.status, .badRequest)
            XCTAssertTrue(String(buffer: r.body).contains("--heap: this sprof build cannot record heap profiles"), String(buffer: r.body))
        }
    }

    /// The engine passes --heap to sprof run.
    func testHeapOptionBecomesTheFlag() {
        let engine = SprofProcessEngine(sprofPath: "/bin/false", capabilities: SprofCapabilities(heap: true))
        XCTAssertTrue(engine.arguments(options: JobOptions(heap: true), directory: "/d", progressFD: nil).contains("--heap"))
        XCTAssertFalse(engine.arguments(options: JobOptions(), directory: "/d", progressFD: nil).contains("--heap"))
        XCTAssertTrue(SprofCapabilities(helpText: "  --heap   Also record a heap profile").heap)
    }
}
