import Foundation
import Hummingbird
import HummingbirdTesting
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// Writes a `profile.pb.gz` with samples, wall, off-CPU and a type no ``SampleTypeView`` names.
final class FakeSampleTypesEngine: JobEngine, @unchecked Sendable {
    static func profile() -> Profile {
        var b = ProfileBuilding(sampleTypes: [("samples", "count"), ("wall", "nanoseconds"), ("off-cpu", "nanoseconds"), ("alloc_space", "bytes")]
            .map { Profile.ValueType(type: $0.0, unit: $0.1) })
        let thread = b.thread(Profile.Thread(pid: 1, tid: 1, name: "app", processName: "app"))
        let main = b.location(Profile.Location(lines: [Profile.Line(function: b.function(named: "main"))], kind: .user))
        for (leaf, values) in [("work", [Int64(3), 3_000, 0, 4_096]), ("wait", [0, 7_000, 7_000, 0])] {
            let l = b.location(Profile.Location(lines: [Profile.Line(function: b.function(named: leaf))], kind: .user))
            b.add(stack: b.stack([l, main]), thread: thread, values: values)
        }
        return b.build(metadata: ProfileMetadata())
    }

    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        let bytes = (try? PprofFormat.encode(Self.profile())) ?? []
        try? Data(bytes).write(to: URL(fileURLWithPath: directory + "/profile.pb.gz"))
        return RunOutcome(profileWritten: true, exitStatus: 0, samples: 3, lost: 0)
    }
    func cancel() {}
}

final class SampleTypeViewServeTests: XCTestCase {
    var dataDir = ""

    override func setUp() { dataDir = NSTemporaryDirectory() + "sprof-serve-types-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dataDir) }

    /// The table's views (`wall`, `offcpu`) read the profile's types; `view/type?name=` shows any
    /// type of the profile, and names the types it has when asked for another.
    func testViewsOfTheProfilesSampleTypes() async throws {
        let store = try JobStore(dataDirectory: dataDir, engine: FakeSampleTypesEngine())
        await store.start()
        let router = ServeApp.router(store: store, validator: JobValidator(capabilities: SprofCapabilities()),
                                     configuration: ServeConfiguration(token: "secret-token"))
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let created = try await ServeAPITests.create(client, #"{"command": ["/bin/true"]}"#)
            let id = try XCTUnwrap((try ServeAPITests.json(created) as? [String: Any])?["id"] as? String)
            _ = try await ServeAPITests.waitForEnd(client, id)
            let base = "/api/jobs/\(id)/runs/1/view"
            func tree(_ view: String) async throws -> [String: Any] {
                let any = try await ServeAPITests.getJSON(client, base + view)
                return try XCTUnwrap(any as? [String: Any], view)
            }
            let wall = try await tree("/wall")
            XCTAssertEqual(wall["total"] as? Int, 10_000)
            XCTAssertEqual(wall["unit"] as? String, "nanoseconds")
            let off = try await tree("/offcpu")
            XCTAssertEqual(off["total"] as? Int, 7_000)
            let alias = try await tree("/type?name=offcpu")
            XCTAssertEqual(alias["total"] as? Int, 7_000, "the alias, as --sample-type takes it")
            let alloc = try await tree("/type?name=alloc_space")
            XCTAssertEqual(alloc["total"] as? Int, 4_096, "a type no row names, by name")
            XCTAssertEqual(alloc["unit"] as? String, "bytes")
            let missing = try await client.execute(uri: base + "/type?name=inuse_space", method: .get, headers: ServeAPITests.auth)
            XCTAssertEqual(missing.status, .notFound)
            XCTAssertTrue(String(buffer: missing.body).contains("(it has: samples, wall, off-cpu, alloc_space)"), String(buffer: missing.body))
            let unnamed = try await client.execute(uri: base + "/type", method: .get, headers: ServeAPITests.auth)
            XCTAssertEqual(unnamed.status, .badRequest)
            let pageResponse = try await client.execute(uri: "/jobs/\(id)", method: .get, headers: ServeAPITests.auth)
            let page = String(buffer: pageResponse.body)
            XCTAssertTrue(page.contains(#"<button data-tab="wall" data-sample-type="wall">Wall</button><button data-tab="offcpu" data-sample-type="off-cpu">Off-CPU</button>"#),
                          "a tab per row of the table")
        }
        await store.shutdown()
    }
}
