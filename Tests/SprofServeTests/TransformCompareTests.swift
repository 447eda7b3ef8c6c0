import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// Transforms as query parameters of every view, uploads to compare with, the significance of
/// a comparison of repeat jobs, and the merged profile of a repeat job among the downloads.
final class TransformCompareTests: XCTestCase {
    var dataDir = ""

    override func setUp() { dataDir = NSTemporaryDirectory() + "sprof-serve-tc-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dataDir) }

    static let folded = "app;main;work;lex 30\napp;main;idle 10\napp;main;parse;lex 5\n"
    static let auth: HTTPFields = [.authorization: "Bearer secret-token", .contentType: "application/json"]

    func withServer(maxUpload: Int = 1 << 20, _ body: @escaping @Sendable (any TestClientProtocol, JobStore, String) async throws -> Void) async throws {
        try await Self.withServer(dataDir: dataDir, maxUpload: maxUpload, body)
    }

    /// A server over a fake engine in `dataDir`, with one job done (its id given to `body`).
    static func withServer(dataDir: String, maxUpload: Int = 1 << 20, engine: any JobEngine = FakeEngine(folded: folded),
                           _ body: @escaping @Sendable (any TestClientProtocol, JobStore, String) async throws -> Void) async throws {
        let store = try JobStore(dataDirectory: dataDir, engine: engine)
        await store.start()
        var config = ServeConfiguration(token: "secret-token")
        config.maxUploadBytes = maxUpload
        let router = ServeApp.router(store: store, validator: JobValidator(capabilities: SprofCapabilities()), configuration: config)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let created = try await client.execute(uri: "/api/jobs", method: .post, headers: Self.auth,
                                                   body: ByteBuffer(string: #"{"command": ["/bin/true"]}"#))
            let id = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(buffer: created.body)) as? [String: Any])?["id"] as? String)
            for _ in 0..<200 {
                let j = try await client.execute(uri: "/api/jobs/\(id)", method: .get, headers: Self.auth)
                if String(buffer: j.body).contains(#""state":"done""#) { break }
                try await Task.sleep(nanoseconds: 20_000_000)
            }
            try await body(client, store, id)
        }
        await store.shutdown()
    }

    static func get(_ client: any TestClientProtocol, _ uri: String) async throws -> (HTTPResponse.Status, Any?) {
        let r = try await client.execute(uri: uri, method: .get, headers: auth)
        return (r.status, try? JSONSerialization.jsonObject(with: Data(buffer: r.body)))
    }

    func testEveryViewAppliesTheTransformsOfItsQuery() async throws {
        try await withServer { client, _, id in
            let run = "/api/jobs/\(id)/runs/1/view"
            let (_, plain) = try await Self.get(client, "\(run)/cpu")
            XCTAssertEqual((plain as? [String: Any])?["total"] as? Int, 45)
            // Focus on lex: the total is lex's total (35), lex the root below the process.
            let (s1, focus) = try await Self.get(client, "\(run)/cpu?tf=focus:lex")
            XCTAssertEqual(s1, .ok)
            XCTAssertEqual((focus as? [String: Any])?["total"] as? Int, 35)
            XCTAssertEqual((focus as? [String: Any])?["names"] as? [String], ["app", "lex"])
            // Merge lex, then drop idle: in the top table, work and parse now hold lex's self.
            let (_, top) = try await Self.get(client, "\(run)/top?tf=merge:lex&tf=ignore:idle")
            let rows = try XCTUnwrap(top as? [[String: Any]])
            XCTAssertNil(rows.first { $0["name"] as? String == "lex" })
            XCTAssertNil(rows.first { $0["name"] as? String == "idle" })
            XCTAssertEqual(rows.first { $0["name"] as? String == "work" }?["self"] as? Int, 30)
            XCTAssertEqual(rows.first { $0["name"] as? String == "main" }?["total"] as? Int, 35)
            let (_, callers) = try await Self.get(client, "\(run)/callers?fn=lex&tf=ignore:parse")
            XCTAssertEqual((callers as? [String: Any])?["total"] as? Int, 30)
            let (_, inverted) = try await Self.get(client, "\(run)/inverted?tf=focus:parse")
            XCTAssertEqual((inverted as? [String: Any])?["total"] as? Int, 5)
            let (s2, bad) = try await Self.get(client, "\(run)/cpu?tf=zoom:main")
            XCTAssertEqual(s2, .badRequest)
            XCTAssertTrue(((bad as? [String: Any])?["error"] as? String ?? "").contains("unknown transform"), "\(String(describing: bad))")
        }
    }

    /// Names holding `;` (Rust's `[u8; 32]`, C++ templates) and `\`: a `subtree:` path escapes
    /// them (`\;`, `\\`), and the server reads the path back name for name; a path without
    /// escapes reads as before.
    func testASubtreePathEscapesSemicolonsAndBackslashes() async throws {
        let a = "process<[u8; 32]>", b = #"C:\dir;x::run"#, c = #"leaf\;tail"#
        let profile = Profile(folded: [(frames: ["app", "main", a, b, c], count: 30), (frames: ["app", "main", "other"], count: 10)])
        let path = StackTransform.joinedPath(["main", a, b])
        XCTAssertEqual(path, #"main;process<[u8\; 32]>;C:\\dir\;x::run"#)
        XCTAssertEqual(StackTransform.splitPath(path), ["main", a, b])
        XCTAssertEqual(StackTransform.splitPath(StackTransform.joinedPath([c, "", "\\"])), [c, "", "\\"])
        XCTAssertEqual(StackTransform.splitPath(#"main;a\b;c"#), ["main", #"a\b"#, "c"], "a \\ before anything else stays")
        XCTAssertEqual(try StackTransform(parsing: "subtree:" + path), .focusSubtree(["main", a, b]))
        XCTAssertEqual(StackTransform.focusSubtree(["main", a, b]).description, "subtree:" + path)
        try await Self.withServer(dataDir: dataDir, engine: PprofEngine(profile)) { client, _, id in
            let run = "/api/jobs/\(id)/runs/1/view"
            let query = ("subtree:" + path).addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let (status, tree) = try await Self.get(client, "\(run)/cpu?tf=\(query)")
            XCTAssertEqual(status, .ok)
            let names = try XCTUnwrap((tree as? [String: Any])?["names"] as? [String])
            XCTAssertEqual((tree as? [String: Any])?["total"] as? Int, 30, "\(names)")
            XCTAssertTrue(names.contains(b) && names.contains(c), "\(names)")
            let (_, old) = try await Self.get(client, "\(run)/cpu?tf=subtree%3Amain%3Bother")
            XCTAssertEqual((old as? [String: Any])?["total"] as? Int, 10)
        }
    }

    func testAnUploadIsComparedAndABadFileIsRefusedInOneLine() async throws {
        try await withServer(maxUpload: 4096) { client, _, id in
            let up = try await client.execute(uri: "/api/uploads?name=base.folded", method: .post, headers: Self.auth,
                                              body: ByteBuffer(string: "app;main;work 10\napp;main;idle 30\n"))
            XCTAssertEqual(up.status, .created, String(buffer: up.body))
            let upload = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(buffer: up.body)) as? [String: Any])
            XCTAssertEqual(upload["samples"] as? Int, 40)
            XCTAssertEqual(upload["format"] as? String, "folded")
            let uid = try XCTUnwrap(upload["id"] as? String)
            let (_, list) = try await Self.get(client, "/api/uploads")
            XCTAssertEqual((list as? [[String: Any]])?.compactMap { $0["id"] as? String }, [uid])
            let (status, compare) = try await Self.get(client, "/api/jobs/\(id)/runs/1/compare?base_upload=\(uid)")
            XCTAssertEqual(status, .ok)
            let table = try XCTUnwrap((compare as? [String: Any])?["table"] as? [[String: Any]])
            let idle = try XCTUnwrap(table.first { $0["name"] as? String == "idle" })
            XCTAssertEqual(idle["base_self"] as? Double ?? 0, 75, accuracy: 1e-9)
            XCTAssertEqual((compare as? [String: Any])?["tested"] as? Bool, false)
            // Transforms apply to both sides of a comparison: idle is gone from both.
            let (_, dropped) = try await Self.get(client, "/api/jobs/\(id)/runs/1/compare?base_upload=\(uid)&tf=ignore:idle")
            let flame = try XCTUnwrap((dropped as? [String: Any])?["flame"] as? [String: Any])
            XCTAssertEqual(flame["total"] as? Int, 35)
            let rows2 = try XCTUnwrap((dropped as? [String: Any])?["table"] as? [[String: Any]])
            XCTAssertNil(rows2.first { $0["name"] as? String == "idle" })
            XCTAssertEqual(rows2.first { $0["name"] as? String == "work" }?["base_total"] as? Double ?? 0, 100, accuracy: 1e-9)
            // A pprof upload works as well.
            let pprof = try PprofFormat.encode(Profile(folded: [(frames: ["app", "main", "work"], count: 3)]))
            let up2 = try await client.execute(uri: "/api/uploads?name=x.pb.gz", method: .post, headers: Self.auth, body: ByteBuffer(bytes: pprof))
            XCTAssertEqual(up2.status, .created, String(buffer: up2.body))
            // Bad files: one line saying what and how to fix; too large: 413 with the limit.
            // The line every sprof command gives for the same file (FILE:LINE: reason).
            for (body, want) in [("not a profile at all", "bad:1: "), ("\u{1}\u{2}garbage", "bad:1: "), ("app;main 0\n", "no samples")] {
                let r = try await client.execute(uri: "/api/uploads?name=bad", method: .post, headers: Self.auth, body: ByteBuffer(string: body))
                XCTAssertEqual(r.status, .badRequest, body)
                let msg = (try? JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])?["error"] as? String ?? ""
                XCTAssertTrue(msg.contains(want) && !msg.contains("\n"), msg)
            }
            let big = try await client.execute(uri: "/api/uploads?name=big", method: .post, headers: Self.auth,
                                               body: ByteBuffer(string: String(repeating: "app;main 1\n", count: 1000)))
            XCTAssertEqual(big.status, .contentTooLarge)
            XCTAssertTrue(String(buffer: big.body).contains("uploads are at most"), String(buffer: big.body))
            let (missing, _) = try await Self.get(client, "/api/jobs/\(id)/runs/1/compare?base_upload=u..%2F..%2Fjobs")
            XCTAssertEqual(missing, .notFound)
            // An upload can be deleted (with the token only); it is gone from the list and as a base.
            let anonymous = try await client.execute(uri: "/api/uploads/\(uid)", method: .delete)
            XCTAssertEqual(anonymous.status, .unauthorized, String(buffer: anonymous.body))
            let deleted = try await client.execute(uri: "/api/uploads/\(uid)", method: .delete, headers: Self.auth)
            XCTAssertEqual(deleted.status, .ok, String(buffer: deleted.body))
            let (_, after) = try await Self.get(client, "/api/uploads")
            XCTAssertFalse(((after as? [[String: Any]]) ?? []).contains { $0["id"] as? String == uid })
            let (gone, _) = try await Self.get(client, "/api/jobs/\(id)/runs/1/compare?base_upload=\(uid)")
            XCTAssertEqual(gone, .notFound)
            let again = try await client.execute(uri: "/api/uploads/\(uid)", method: .delete, headers: Self.auth)
            XCTAssertEqual(again.status, .notFound)
            let escape = try await client.execute(uri: "/api/uploads/..%2Fjobs", method: .delete, headers: Self.auth)
            XCTAssertEqual(escape.status, .notFound)
        }
    }

    /// Runs whose shares differ clearly (80/20 against 20/80, with a little noise).
    static func runs(_ a: [Int64], _ b: [Int64]) -> Profile {
        Profile(runs: zip(a, b).map { x, y in Profile(folded: [(frames: ["app", "main", "a"], count: x), (frames: ["app", "main", "b"], count: y)]) })
    }

    func testRepeatJobsCompareWithSignificanceAndOfferTheirMergedProfile() async throws {
        try await withServer { client, store, id in
            let dir = try await store.directory(of: id)
            let base = Self.runs([80, 82, 79, 81], [20, 18, 21, 19]), new = Self.runs([20, 22, 19, 21], [80, 78, 81, 79])
            try Data(try PprofFormat.encode(new)).write(to: URL(fileURLWithPath: dir + "/profile.pb.gz"))
            // The same job on both sides here is enough for the route: its merged runs against an upload of the base.
            let up = try await client.execute(uri: "/api/uploads?name=base.pb.gz", method: .post, headers: Self.auth,
                                              body: ByteBuffer(bytes: try PprofFormat.encode(base)))
            let uid = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(buffer: up.body)) as? [String: Any])?["id"] as? String)
            let (status, c) = try await Self.get(client, "/api/jobs/\(id)/runs/1/compare?base_upload=\(uid)&all=1")
            XCTAssertEqual(status, .ok)
            let compare = try XCTUnwrap(c as? [String: Any])
            XCTAssertEqual(compare["tested"] as? Bool, true)
            XCTAssertEqual(compare["base_runs"] as? Int, 4)
            let rows = try XCTUnwrap(compare["table"] as? [[String: Any]])
            let a = try XCTUnwrap(rows.first { $0["name"] as? String == "a" })
            XCTAssertEqual(a["significant"] as? Bool, true)
            XCTAssertLessThan(a["q_self"] as? Double ?? 1, 0.05)
            XCTAssertEqual(a["delta_self"] as? Double ?? 0, -60, accuracy: 2)
            // The job's runs merged, base_run=all, against themselves: nothing significant.
            let (_, same) = try await Self.get(client, "/api/jobs/\(id)/runs/1/compare?base=\(id)&base_run=all&all=1")
            let sameRows = try XCTUnwrap((same as? [String: Any])?["table"] as? [[String: Any]])
            XCTAssertFalse(sameRows.contains { $0["significant"] as? Bool == true })
            // Downloads: the merged profile is offered with the run's files, and served.
            let (_, files) = try await Self.get(client, "/api/jobs/\(id)/runs/1/files")
            XCTAssertTrue((files as? [String] ?? []).contains("profile.runs.pb.gz"), "\(String(describing: files))")
            let file = try await client.execute(uri: "/api/jobs/\(id)/runs/1/files/profile.runs.pb.gz", method: .get, headers: Self.auth)
            XCTAssertEqual(file.status, .ok)
            XCTAssertEqual(try PprofFormat.decode([UInt8](Data(buffer: file.body))).runs, [1, 2, 3, 4])
        }
    }
}

/// Writes `profile` as the run's `profile.pb.gz`: names a folded file cannot hold (`;`).
final class PprofEngine: JobEngine, @unchecked Sendable {
    let profile: Profile
    init(_ profile: Profile) { self.profile = profile }
    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        try? Data(PprofFormat.encode(profile)).write(to: URL(fileURLWithPath: directory + "/profile.pb.gz"))
        return RunOutcome(profileWritten: true, exitStatus: 0)
    }
    func cancel() {}
}
