import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// Crafted requests that once poisoned the view cache, a heap profile compared with a CPU one,
/// the URL printed at start, bad uploads' messages and the cap of a job's output.log.
final class ServeHardeningTests: XCTestCase {
    var dataDir = ""

    override func setUp() { dataDir = NSTemporaryDirectory() + "sprof-serve-hard-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dataDir) }

    func withServer(_ body: @escaping @Sendable (any TestClientProtocol, String) async throws -> Void) async throws {
        try await TransformCompareTests.withServer(dataDir: dataDir) { client, _, id in try await body(client, id) }
    }

    static func error(_ body: Any?) -> String { (body as? [String: Any])?["error"] as? String ?? "" }
    static func total(_ body: Any?) -> Int? { (body as? [String: Any])?["total"] as? Int }

    func testCraftedViewRequestsAreRefusedAndCannotPoisonTheCache() async throws {
        try await withServer { client, id in
            let run = "/api/jobs/\(id)/runs/1/view"
            // thread=-1 was cached under the plain CPU view's key (thread ?? -1): 0 samples after.
            for bad in ["-1", "x", ""] {
                let (s, b) = try await TransformCompareTests.get(client, "\(run)/cpu?thread=\(bad)")
                XCTAssertEqual(s, .badRequest, "thread=\(bad)")
                XCTAssertTrue(Self.error(b).contains("thread") && !Self.error(b).contains("\n"), Self.error(b))
            }
            let (_, plain) = try await TransformCompareTests.get(client, "\(run)/cpu")
            XCTAssertEqual(Self.total(plain), 45)
            // Transforms were joined with a newline in the key: one transform holding a newline
            // took the key of two.
            let (s2, b2) = try await TransformCompareTests.get(client, "\(run)/cpu?tf=focus:main%0Amerge:lex")
            XCTAssertEqual(s2, .badRequest)
            XCTAssertTrue(Self.error(b2).contains("control character"), Self.error(b2))
            let (_, two) = try await TransformCompareTests.get(client, "\(run)/cpu?tf=focus:main&tf=merge:lex")
            XCTAssertEqual(Self.total(two), 45)
            for bad in ["-1", "0", "x"] {
                let (s, b) = try await TransformCompareTests.get(client, "/api/jobs/\(id)/runs/1/compare?base=\(id)&base_run=\(bad)")
                XCTAssertEqual(s, .badRequest, "base_run=\(bad)")
                XCTAssertTrue(Self.error(b).contains("runs are numbered from 1"), Self.error(b))
            }
        }
    }

    func testCacheKeysOfDifferentRequestsDiffer() {
        let keys = [
            ServeApp.viewKey(view: "cpu"),
            ServeApp.viewKey(view: "cpu", thread: -1),
            ServeApp.viewKey(view: "cpu", function: ""),
            ServeApp.viewKey(view: "cpu", transforms: [.focusFunction("a\nmerge:b")]),
            ServeApp.viewKey(view: "cpu", transforms: [.focusFunction("a"), .merge("b")]),
            ServeApp.viewKey(view: "cpu", function: "a|1", sampleType: nil),
            ServeApp.viewKey(view: "cpu", function: "a", sampleType: "1"),
            ServeApp.viewKey(view: "cpu|", function: "a"),
            ServeApp.cacheKey(["compare", "/d", ServeApp.transformsKey([])]),
            ServeApp.viewKey(view: "compare", function: "/d"),
        ]
        XCTAssertEqual(Set(keys).count, keys.count, keys.joined(separator: " ; "))
    }

    func testAHeapProfileIsNotComparedWithACPUProfile() async throws {
        try await withServer { client, id in
            let heap = try PprofFormat.encode(FakeHeapEngine.heapProfile())
            let up = try await client.execute(uri: "/api/uploads?name=profile.heap.pb.gz", method: .post,
                                              headers: TransformCompareTests.auth, body: ByteBuffer(bytes: heap))
            XCTAssertEqual(up.status, .created, String(buffer: up.body))
            let uid = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(buffer: up.body)) as? [String: Any])?["id"] as? String)
            let (s, b) = try await TransformCompareTests.get(client, "/api/jobs/\(id)/runs/1/compare?base_upload=\(uid)")
            XCTAssertEqual(s, .badRequest)
            XCTAssertTrue(Self.error(b).hasPrefix("incompatible sample types: the uploaded base is a heap profile"), Self.error(b))
            XCTAssertTrue(Self.error(b).hasSuffix("compare two profiles of one kind"), Self.error(b))
        }
    }

    func testBadUploadsGetTheCommandLinesMessage() async throws {
        try await withServer { client, _ in
            let r = try await client.execute(uri: "/api/uploads?name=bad.folded", method: .post, headers: TransformCompareTests.auth,
                                             body: ByteBuffer(string: "app;main;work 10\napp;main;idle x\n"))
            XCTAssertEqual(r.status, .badRequest)
            let msg = Self.error(try? JSONSerialization.jsonObject(with: Data(buffer: r.body)))
            // FoldedParseError's own line (FILE:LINE: reason), as `sprof report bad.folded` prints it.
            XCTAssertTrue(msg.hasPrefix("bad.folded:2: "), msg)
            XCTAssertFalse(msg.contains("could not be completed"), msg)
            XCTAssertFalse(msg.contains("\n"), msg)
        }
    }

    func testADataDirectoryThatCannotBeMadeSaysWhy() {
        XCTAssertThrowsError(try JobStore(dataDirectory: "/proc/sprof-serve-test/x", engine: FakeEngine())) { error in
            let msg = "\(error)"
            XCTAssertTrue(msg.contains("/proc/sprof-serve-test"), msg)
            XCTAssertFalse(msg.contains("could not be completed"), msg)
            XCTAssertTrue(msg.contains(String(cString: strerror(ENOENT))) || msg.contains(String(cString: strerror(EACCES))), msg)
        }
    }

    func testThePrintedURLIsOneTheServerAnswers() throws {
        for (args, machine, want) in [
            (["--host", "0.0.0.0", "--allow-remote"], "box", "127.0.0.1"),
            (["--host", "0.0.0.0", "--allow-remote", "--allow-host", "other,box"], "box", "box"),
            (["--host", "0.0.0.0", "--allow-remote", "--allow-host", "other"], "box", "other"),
            (["--host", "::", "--allow-remote"], "box", "[::1]"),
            (["--host", "127.0.0.1"], "box", "127.0.0.1"),
        ] {
            let o = try XCTUnwrap(try ServeMain.parse(args))
            let (url, names) = ServeMain.startURL(o.configuration, machineName: machine)
            let host = try XCTUnwrap(URLComponents(string: url)?.host)
            XCTAssertTrue(url.hasPrefix("http://\(want):\(o.configuration.port)/?token="), "\(args): \(url)")
            XCTAssertTrue(o.configuration.hostAllowed(host.hasPrefix("[") ? host : (host.contains(":") ? "[\(host)]" : host)), "\(args): \(url)")
            XCTAssertEqual(names != nil, o.configuration.allowRemote, "\(args)")
            if o.configuration.allowRemote { XCTAssertTrue(names!.contains("localhost"), names!) }
        }
    }

    /// The engine cuts the log of a command that prints without end (here 40 MB of `yes`, as a
    /// stand-in `sprof` that only prints) to its first and last 8 MiB.
    func testAJobsOutputLogIsCapped() async throws {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let script = dataDir + "/fake-sprof"
        try "#!/bin/sh\nyes | head -c 40000000\necho last line\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let engine = SprofProcessEngine(sprofPath: script, capabilities: SprofCapabilities())
        _ = await engine.run(command: ["/bin/true"], options: JobOptions(), directory: dataDir) { _ in }
        let log = try XCTUnwrap(FileManager.default.contents(atPath: dataDir + "/output.log"))
        let cap = OutputLog.standard
        XCTAssertLessThanOrEqual(log.count, cap.headBytes + cap.tailBytes + 300)
        XCTAssertTrue(log.starts(with: Data(String(repeating: "y\n", count: 1000).utf8)))
        XCTAssertTrue(String(decoding: log.suffix(20), as: UTF8.self).hasSuffix("y\nlast line\n"))
        XCTAssertTrue(String(decoding: log, as: UTF8.self).contains("bytes of output left out here"))
    }

    func testOutputLogKeepsItsFirstAndLastBytes() throws {
        let path = NSTemporaryDirectory() + "sprof-output-\(UUID().uuidString).log"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var log = OutputLog(headBytes: 1000, tailBytes: 2000)
        var written = 0
        var lines: [String] = []
        for i in 0..<5000 {
            let line = "line \(i)\n"
            lines.append(line)
            _ = line.withCString { write(fd, $0, strlen($0)) }
            written += line.utf8.count
            if i % 97 == 0 { log.cut(path) }
        }
        close(fd)
        log.cut(path, final: true)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let all = lines.joined()
        XCTAssertLessThanOrEqual(text.utf8.count, 1000 + 2000 + log.marker().count)
        XCTAssertTrue(text.hasPrefix(String(all.prefix(1000))))
        XCTAssertTrue(text.hasSuffix("line 4999\n"))
        let parts = text.split(separator: "]\n", maxSplits: 1)
        XCTAssertEqual(parts.count, 2)
        XCTAssertTrue(all.hasSuffix(String(parts.last ?? "")), "the kept tail is the output's end")
        XCTAssertTrue(text.contains("bytes of output left out here"))
        // Every byte is either kept or counted.
        let marker = log.marker()
        XCTAssertEqual(text.utf8.count - marker.count + Int(log.leftOut), written)
    }
}
