import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Sprof
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// Writes a small folded profile instead of recording: for the tests of the API's rules, which
/// must not depend on perf_event_open.
final class FakeEngine: JobEngine, @unchecked Sendable {
    let folded: String
    init(folded: String = "app;main;work 30\napp;main;idle 10\n") { self.folded = folded }
    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        progress(JobProgress(elapsedNs: 1_000_000, samples: 40))
        try? Data(folded.utf8).write(to: URL(fileURLWithPath: directory + "/profile.folded"))
        try? Data("hello from the command\n".utf8).write(to: URL(fileURLWithPath: directory + "/output.log"))
        return RunOutcome(profileWritten: true, exitStatus: 0, samples: 40, lost: 0)
    }
    func cancel() {}
}

/// Runs the real engine, then empties `output.log` and reads the outcome again, as if sprof
/// had printed nothing: what the server shows must not depend on the log.
final class LogEmptyingEngine: JobEngine, @unchecked Sendable {
    let inner: SprofProcessEngine
    init(_ inner: SprofProcessEngine) { self.inner = inner }
    func run(command: [String], options: JobOptions, directory: String,
             progress: @escaping @Sendable (JobProgress) -> Void) async -> RunOutcome {
        let first = await inner.run(command: command, options: options, directory: directory, progress: progress)
        try? Data().write(to: URL(fileURLWithPath: directory + "/output.log"))
        return SprofProcessEngine.outcome(status: first.exitStatus, directory: directory)
    }
    func cancel() { inner.cancel() }
}

final class IDBox: @unchecked Sendable {
    var id = ""
}

final class ServeAPITests: XCTestCase {
    var dataDir = ""

    override func setUp() {
        dataDir = NSTemporaryDirectory() + "sprof-serve-test-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// The `sprof` built beside the test bundle.
    static var sprofPath: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent + "/sprof"
    }

    func withServer(engine: any JobEngine, token: String = "secret-token", _ body: @escaping @Sendable (any TestClientProtocol, JobStore) async throws -> Void) async throws {
        let store = try JobStore(dataDirectory: dataDir, engine: engine)
        await store.start()
        var config = ServeConfiguration(token: token)
        config.maxBodyBytes = 4096
        let capabilities = engine is SprofProcessEngine || engine is LogEmptyingEngine ? SprofProcessEngine.capabilities(of: Self.sprofPath) : SprofCapabilities()
        let router = ServeApp.router(store: store, validator: JobValidator(capabilities: capabilities), configuration: config)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            try await body(client, store)
        }
        await store.shutdown()
    }

    static let auth: HTTPFields = [.authorization: "Bearer secret-token", .contentType: "application/json"]

    static func json(_ response: TestResponse) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(buffer: response.body))
    }

    static func getJSON(_ client: any TestClientProtocol, _ uri: String) async throws -> Any {
        let response = try await client.execute(uri: uri, method: .get, headers: Self.auth)
        return try json(response)
    }

    static func create(_ client: any TestClientProtocol, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: "/api/jobs", method: .post, headers: auth, body: ByteBuffer(string: body))
    }

    /// Follows the job's event stream to its end and returns the last job state it carried.
    static func waitForEnd(_ client: any TestClientProtocol, _ id: String) async throws -> [String: Any] {
        let response = try await client.execute(uri: "/api/jobs/\(id)/events", method: .get, headers: Self.auth)
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.headers[.contentType], "text/event-stream")
        let text = String(buffer: response.body)
        let data = text.split(separator: "\n").filter { $0.hasPrefix("data: ") }.last.map { String($0.dropFirst(6)) } ?? "{}"
        return try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] ?? [:]
    }

    func testCreateRunsListsAndStreamsARealRecording() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.sprofPath) else {
            return XCTFail("\(Self.sprofPath) is missing: swift build --build-tests builds it")
        }
        let engine = SprofProcessEngine(sprofPath: Self.sprofPath, capabilities: SprofProcessEngine.capabilities(of: Self.sprofPath))
        try await withServer(engine: engine) { client, _ in
            // An iteration-bounded busy loop in the shell: a known amount of work, not a duration.
            let loop = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo finished"
            let created = try await Self.create(client, #"{"command": ["/bin/sh", "-c", "\#(loop)"], "options": {"frequency": 499, "call_graph": "fp"}}"#)
            XCTAssertEqual(created.status, .created, String(buffer: created.body))
            let job = try XCTUnwrap(try Self.json(created) as? [String: Any])
            let id = try XCTUnwrap(job["id"] as? String)
            XCTAssertEqual(job["state"] as? String, "queued")

            let final = try await Self.waitForEnd(client, id)
            if final["state"] as? String == "failed", let error = final["error"] as? String, error.contains("refused") || error.contains("paranoid") {
                throw XCTSkip("perf_event_open refused here: \(error)")
            }
            XCTAssertEqual(final["state"] as? String, "done", "\(final)")
            let samples = try XCTUnwrap(final["samples"] as? Int)
            XCTAssertGreaterThan(samples, 10, "a 300k-iteration shell loop runs well over 20 ms")
            XCTAssertEqual(final["runs_done"] as? Int, 1)

            let list = try await client.execute(uri: "/api/jobs", method: .get, headers: Self.auth)
            let jobs = try XCTUnwrap(try Self.json(list) as? [[String: Any]])
            XCTAssertEqual(jobs.compactMap { $0["id"] as? String }, [id])

            let cpu = try await client.execute(uri: "/api/jobs/\(id)/runs/1/view/cpu", method: .get, headers: Self.auth)
            let tree = try XCTUnwrap(try Self.json(cpu) as? [String: Any])
            let names = try XCTUnwrap(tree["names"] as? [String])
            XCTAssertTrue(names.contains("sh") || names.contains("dash"), "root frame is the process: \(names.prefix(5))")
            XCTAssertEqual(tree["total"] as? Int, samples)

            let files = try await client.execute(uri: "/api/jobs/\(id)/runs/1/files", method: .get, headers: Self.auth)
            let names2 = try XCTUnwrap(try Self.json(files) as? [String])
            XCTAssertTrue(names2.contains("profile.folded") && names2.contains("profile.svg") && names2.contains("output.log"), "\(names2)")
            let log = try await client.execute(uri: "/api/jobs/\(id)/runs/1/files/output.log", method: .get, headers: Self.auth)
            XCTAssertTrue(String(buffer: log.body).contains("finished"), "the command's output is kept")

            let system = try await client.execute(uri: "/api/jobs/\(id)/system", method: .get, headers: Self.auth)
            let info = try XCTUnwrap(try Self.json(system) as? [String: Any])
            XCTAssertFalse((info["kernel_release"] as? String ?? "").isEmpty)
            XCTAssertGreaterThan(info["cores"] as? Int ?? 0, 0)
        }
    }

    func testDeletingARunningJobStopsItsRecording() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.sprofPath) else {
            return XCTFail("\(Self.sprofPath) is missing: swift build --build-tests builds it")
        }
        let engine = SprofProcessEngine(sprofPath: Self.sprofPath, capabilities: SprofProcessEngine.capabilities(of: Self.sprofPath))
        try await withServer(engine: engine) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/sleep", "600"], "options": {"call_graph": "fp"}}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            // Wait for the job to start: the first event after `queued`.
            var state = "queued"
            for _ in 0..<600 where state == "queued" {
                let anyJob = try await Self.getJSON(client, "/api/jobs/\(id)")
                state = (anyJob as? [String: Any])?["state"] as? String ?? ""
                if state == "queued" { try await Task.sleep(nanoseconds: 50_000_000) }
            }
            if state == "failed" { throw XCTSkip("the recording could not start here (perf_event_open refused?)") }
            XCTAssertEqual(state, "running")
            let deleted = try await client.execute(uri: "/api/jobs/\(id)", method: .delete, headers: Self.auth)
            XCTAssertEqual(deleted.status, .ok, "the recording of a 600 s sleep is stopped, not waited for")
            XCTAssertFalse(FileManager.default.fileExists(atPath: self.dataDir + "/jobs/\(id)"))
        }
    }

    /// The real engine (this build's sprof) and a fresh run directory `name` under the data directory.
    private func processEngine(runDirectory name: String) throws -> (SprofProcessEngine, String) {
        guard FileManager.default.isExecutableFile(atPath: Self.sprofPath) else {
            // A failure, not a skip: the build makes it.
            throw NSError(domain: "ServeAPITests", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(Self.sprofPath) is missing: swift build --build-tests builds it"])
        }
        let engine = SprofProcessEngine(sprofPath: Self.sprofPath, capabilities: SprofProcessEngine.capabilities(of: Self.sprofPath))
        let dir = dataDir + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return (engine, dir)
    }

    /// A delete or stop that comes before the engine has started sprof (the job is `running` in
    /// the store a moment earlier) still stops it: the run's task is cancelled, and the engine
    /// signals sprof as soon as it has started. engine.cancel() alone found no process then,
    /// and a 600 s sleep held the delete up for 600 s (seen once under load).
    func testARunCancelledBeforeSprofStartsStillStops() async throws {
        let (engine, dir) = try processEngine(runDirectory: "early-cancel")
        let run = Task { () async -> RunOutcome in
            await engine.run(command: ["/bin/sleep", "600"], options: JobOptions(callGraph: "fp"), directory: dir) { _ in }
        }
        run.cancel()
        // Waited for 60 s at most (a task group would wait for the run however long it takes).
        final class Box: @unchecked Sendable { let lock = NSLock(); var outcome: RunOutcome? }
        let box = Box()
        Task { let o = await run.value; box.lock.withLock { box.outcome = o } }
        var outcome: RunOutcome?
        for _ in 0..<600 {
            outcome = box.lock.withLock { box.outcome }
            if outcome != nil { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        if outcome == nil { engine.cancel() }  // do not leave the sleep behind
        let finished = try XCTUnwrap(outcome, "a run cancelled before sprof started went on (the command is a 600 s sleep)")
        XCTAssertNotEqual(finished.exitStatus, 0)
    }

    /// Starts a recording of a shell that sets `traps`, then runs `then`; returns once the shell
    /// has set them (and sprof its forwarding), so that a cancel's signals meet them.
    private func startShell(_ engine: SprofProcessEngine, _ dir: String, traps: String, then body: String) async throws -> Task<RunOutcome, Never> {
        let ready = dir + "/ready"
        let script = "\(traps); : > \(ready); \(body)"
        let run = Task { () async -> RunOutcome in
            await engine.run(command: ["/bin/sh", "-c", script], options: JobOptions(callGraph: "fp"), directory: dir) { _ in }
        }
        for _ in 0..<300 where !FileManager.default.fileExists(atPath: ready) { try await Task.sleep(nanoseconds: 20_000_000) }
        try await Task.sleep(nanoseconds: 200_000_000)
        return run
    }

    /// A stop reaches the engine's cancel() both directly and through the run's task: the command
    /// gets one SIGINT for it, not one per call.
    func testCancelSignalsTheRunOnce() async throws {
        let (engine, dir) = try processEngine(runDirectory: "cancel-once")
        let marks = dir + "/interrupts"
        let run = try await startShell(engine, dir, traps: "trap 'echo INT >> \(marks)' INT", then: "i=0; while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done")
        // Apart, so that the shell could not take two signals for one.
        engine.cancel()
        try await Task.sleep(nanoseconds: 300_000_000)
        run.cancel()
        try await Task.sleep(nanoseconds: 300_000_000)
        engine.cancel()
        _ = await run.value
        let lines = (try? String(contentsOfFile: marks, encoding: .utf8))?.split(separator: "\n") ?? []
        XCTAssertEqual(lines.count, 1, "SIGINTs that reached the command")
    }

    /// Stop on a command that ignores SIGINT (and SIGTERM, SIGHUP): after 5 s two more signals make sprof end the
    /// command with SIGKILL, and the profile is written (the whole group was killed, sprof with
    /// it, and the recording lost).
    func testStopEndsACommandThatIgnoresSIGINTAndKeepsTheProfile() async throws {
        let (engine, dir) = try processEngine(runDirectory: "cancel-ignored")
        let run = try await startShell(engine, dir, traps: "trap '' INT TERM HUP", then: "while :; do sleep 0.1; done")
        engine.cancel()
        let outcome = await run.value
        XCTAssertTrue(outcome.profileWritten, "\(outcome)")
        XCTAssertEqual(outcome.exitStatus, 128 + SIGKILL, "the command was killed, sprof was not")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/profile.pb.gz"), "\((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []) \((try? String(contentsOfFile: dir + "/output.log", encoding: .utf8)) ?? "")")
    }

    /// The form's inputs get the CLI's one line: an event with a space is an unknown event (not
    /// "-e cpu clock: …", read as modifiers), a file without execute permission is not "command
    /// not found", by path or on the PATH.
    func testBadEventsAndCommandsGetTheCLIsLine() throws {
        let dir = NSTemporaryDirectory() + "sprof-serve-exec-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/notes.txt", contents: Data("x\n".utf8), attributes: [.posixPermissions: 0o644])
        let validator = JobValidator(capabilities: SprofCapabilities(), searchPath: "/no/such/dir:" + dir)
        func refusal(_ command: [String], _ options: JobOptions? = nil) -> (Int, String)? {
            do { _ = try validator.validate(JobSpec(command: command, options: options)); return nil } catch let e as ServeError { return (e.status, e.message) } catch { return nil }
        }
        // A heap-only job, as `sprof run --heap -e none`; `none` alone records nothing.
        let heapValidator = JobValidator(capabilities: SprofCapabilities(heap: true), searchPath: "/usr/bin:/bin")
        XCTAssertNoThrow(try heapValidator.validate(JobSpec(command: ["/bin/true"], options: JobOptions(event: "none", heap: true))))
        XCTAssertEqual(refusal(["/bin/true"], JobOptions(event: "none"))?.1, "-e none records nothing without --heap: add \"heap\": true, or name an event")
        let event = refusal(["/bin/true"], JobOptions(event: "cpu clock"))
        XCTAssertEqual(event?.0, 400)
        XCTAssertTrue(event?.1.hasPrefix("unknown event 'cpu clock'; valid events: ") == true, "\(String(describing: event))")
        XCTAssertEqual(refusal([dir + "/notes.txt"])?.1, "\(dir)/notes.txt: permission denied (is it executable? try chmod +x)")
        XCTAssertEqual(refusal([dir + "/notes.txt"])?.0, 422)
        XCTAssertEqual(refusal(["notes.txt"])?.1, "notes.txt: permission denied (is it executable? try chmod +x)")
        XCTAssertEqual(refusal([dir + "/missing"])?.1, "\(dir)/missing: no such file (check the path)")
        XCTAssertEqual(refusal([dir])?.1, "\(dir): is a directory, not a program")
        XCTAssertEqual(refusal(["missing-sprof-program"])?.1, "missing-sprof-program: command not found (give a path, or a program on the server's PATH)")
    }

    func testCommandNotFoundAndInvalidOptionsAreRefusedWithJSON() async throws {
        try await withServer(engine: FakeEngine()) { client, _ in
            let cases: [(String, HTTPResponse.Status, String)] = [
                (#"{"command": ["no-such-program-sprof"]}"#, .unprocessableContent, "command not found"),
                (#"{"command": ["/bin/true"], "options": {"frequency": 0}}"#, .badRequest, "-F 0: the frequency must be a positive number"),
                (#"{"command": ["/bin/true"], "options": {"frequency": 10, "period": 5}}"#, .badRequest, "use either -F (frequency) or -c (period), not both"),
                (#"{"command": ["/bin/true"], "options": {"call_graph": "lbr"}}"#, .badRequest, "unknown mode; valid modes: fp, dwarf[,SIZE], none"),
                (#"{"command": ["/bin/true"], "options": {"event": "no-such-event"}}"#, .badRequest, "unknown event 'no-such-event'"),
                (#"{"command": ["/bin/true"], "options": {"repeat": 99}}"#, .badRequest, "repeat 99"),
                (#"{"command": ["/bin/true"], "options": {"colour": 1}}"#, .badRequest, "unknown option \"colour\""),
                (#"{"command": []}"#, .badRequest, "no command given"),
                (#"{"command": "ls"}"#, .badRequest, "command: wrong type (command is an array of strings)"),
                (#"{"command": ["/bin/true"], "options": {"frequency": "999"}}"#, .badRequest, "options.frequency: wrong type (options.frequency is a number, not a string)"),
                (#"{"command": ["/bin/true\u0000x"]}"#, .badRequest, "command argument 0 holds a NUL byte"),
                (#"{"command": ["/bin/true"], "options": {"period": -1}}"#, .badRequest, "options.period: must be a positive whole number"),
                (#"{"command": ["/bin/true"], "options": {"period": 99999999999999999999999}}"#, .badRequest, "options.period: must be a positive whole number below 2^63"),
                (#"{"command": ["/bin/true"], "options": {"repeat": 1.5}}"#, .badRequest, "options.repeat: must be a positive whole number"),
                (#"{"command": ["/tmp"]}"#, .unprocessableContent, "/tmp: is a directory, not a program"),
                ("not json", .badRequest, "must be a JSON object"),
            ]
            for (body, status, message) in cases {
                let r = try await Self.create(client, body)
                XCTAssertEqual(r.status, status, body)
                let error = (try? Self.json(r) as? [String: Any])?["error"] as? String ?? ""
                XCTAssertTrue(error.contains(message), "\(body): \(error)")
            }
            let big = #"{"command": ["/bin/echo", ""# + String(repeating: "x", count: 8000) + #""]}"#
            let r = try await Self.create(client, big)
            XCTAssertEqual(r.status, .contentTooLarge)
            XCTAssertTrue(String(buffer: r.body).contains("request too large: at most 4096 bytes"), "413 says why: \(String(buffer: r.body))")
            let unknown = try await client.execute(uri: "/api/jobs/20990101-000000-abcdef", method: .get, headers: Self.auth)
            XCTAssertEqual(unknown.status, .notFound)
            XCTAssertTrue(String(buffer: unknown.body).contains("no job 20990101-000000-abcdef"))
            let page = try await client.execute(uri: "/jobs/20990101-000000-abcdef", method: .get, headers: Self.auth)
            XCTAssertEqual(page.status, .notFound)
            XCTAssertTrue(String(buffer: page.body).contains("no job 20990101-000000-abcdef"), "the page says it too")
        }
    }

    func testTokenAndOriginAreRequiredForChanges() async throws {
        try await withServer(engine: FakeEngine()) { client, _ in
            let body = ByteBuffer(string: #"{"command": ["/bin/true"]}"#)
            let none = try await client.execute(uri: "/api/jobs", method: .post, headers: [.contentType: "application/json"], body: body)
            XCTAssertEqual(none.status, .unauthorized)
            XCTAssertTrue(String(buffer: none.body).contains("access token"))
            let wrong = try await client.execute(uri: "/api/jobs", method: .post, headers: [.authorization: "Bearer nope"], body: body)
            XCTAssertEqual(wrong.status, .unauthorized)
            var crossSite = Self.auth
            crossSite[.origin] = "http://evil.example"
            let csrf = try await client.execute(uri: "/api/jobs", method: .post, headers: crossSite, body: body)
            XCTAssertEqual(csrf.status, .forbidden)
            var fetchSite = Self.auth
            fetchSite[HTTPField.Name("Sec-Fetch-Site")!] = "cross-site"
            do { let status = try await client.execute(uri: "/api/jobs", method: .post, headers: fetchSite, body: body).status; XCTAssertEqual(status, .forbidden) }
            // DNS rebinding: a page of another site whose name resolves to 127.0.0.1 sends its own name.
            let config = ServeConfiguration()
            XCTAssertFalse(SecurityMiddleware<BasicRequestContext>.hostAllowed("attacker.example:8080", config))
            XCTAssertTrue(SecurityMiddleware<BasicRequestContext>.hostAllowed("localhost:8080", config))
            XCTAssertTrue(SecurityMiddleware<BasicRequestContext>.hostAllowed("127.0.0.1:8080", config))
            XCTAssertTrue(SecurityMiddleware<BasicRequestContext>.hostAllowed("[::1]:8080", config))
            let list = try await client.execute(uri: "/api/jobs", method: .get, headers: Self.auth)
            XCTAssertEqual(String(buffer: list.body), "[]", "nothing was created")

            var sameOrigin = Self.auth
            sameOrigin[.origin] = "http://localhost"
            let ok = try await client.execute(uri: "/api/jobs", method: .post, headers: sameOrigin, body: body)
            XCTAssertEqual(ok.status, .created, String(buffer: ok.body))
            let id = try XCTUnwrap((try Self.json(ok) as? [String: Any])?["id"] as? String)
            _ = try await Self.waitForEnd(client, id)
            do { let status = try await client.execute(uri: "/api/jobs/\(id)", method: .delete).status; XCTAssertEqual(status, .unauthorized) }
            do { let status = try await client.execute(uri: "/api/jobs/\(id)/rerun", method: .post).status; XCTAssertEqual(status, .unauthorized) }
        }
    }

    /// Sends one raw HTTP/1.1 GET to 127.0.0.1:`port` with `Host: host` (the test client always
    /// sends `localhost`) and returns the status code and body.
    static func rawGet(port: Int, host: String, path: String, token: String? = "secret-token") -> (Int, String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return (0, "connect failed") }
        // A server that keeps the connection open must fail the test, not hang it.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        _ = request.withCString { write(fd, $0, strlen($0)) }
        var reply = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self)
        let status = text.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
        return (status, body)
    }

    func testRebindingHostNamesAreRefusedAndLoopbackAddressesAnswered() async throws {
        try await withServer(engine: FakeEngine()) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/echo", "secret"]}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            _ = try await Self.waitForEnd(client, id)
            let port = try XCTUnwrap(client.port)
            // Names an attacker's DNS can point at 127.0.0.1: refused, however they start.
            for name in ["127.evil.example", "127.0.0.1.nip.io", "evil.example", "localhost.evil.example", "127.1", "0x7f.0.0.1", "[::2]"] {
                for path in ["/api/jobs", "/api/jobs/\(id)/runs/1/files/output.log"] {
                    let (status, body) = Self.rawGet(port: port, host: "\(name):\(port)", path: path)
                    XCTAssertEqual(status, 403, "\(name) \(path): \(body)")
                    XCTAssertFalse(body.contains("hello from the command") || body.contains("secret\""), name)
                }
            }
            for name in ["127.0.0.1", "127.3.4.5", "[::1]", "localhost", "LOCALHOST", "[::ffff:127.0.0.1]"] {
                let (status, body) = Self.rawGet(port: port, host: "\(name):\(port)", path: "/api/jobs/\(id)/runs/1/files/output.log")
                XCTAssertEqual(status, 200, "\(name): \(body)")
                XCTAssertTrue(body.contains("hello from the command"), name)
            }
        }
        // --allow-remote changes where the server listens, not which names it answers.
        var remote = ServeConfiguration(host: "0.0.0.0", allowRemote: true)
        XCTAssertFalse(remote.hostAllowed("evil.example"))
        XCTAssertFalse(remote.hostAllowed("0.0.0.0"))
        XCTAssertTrue(remote.hostAllowed("127.0.0.1"))
        remote.allowedHosts = ["build-box.lan", "192.168.1.5"]
        XCTAssertTrue(remote.hostAllowed("Build-Box.lan"))
        XCTAssertTrue(remote.hostAllowed("192.168.1.5"))
        XCTAssertFalse(remote.hostAllowed("build-box.lan.evil.example"))
        XCTAssertFalse(remote.hostAllowed("192.168.1.6"))
        XCTAssertTrue(ServeConfiguration(host: "10.0.0.7", allowRemote: true).hostAllowed("10.0.0.7"), "the address it listens on")
        let parsed = try XCTUnwrap(try ServeMain.parse(["--host", "0.0.0.0", "--allow-remote", "--allow-host", "a.lan,B.lan", "--allow-host", "::2"]))
        XCTAssertEqual(parsed.configuration.allowedHosts, ["a.lan", "b.lan", "::2"])
        XCTAssertThrowsError(try ServeMain.parse(["--allow-host", "a.lan:8080"])) { XCTAssertTrue("\($0)".contains("without a port")) }
    }

    func testReadingJobDataNeedsTheToken() async throws {
        try await withServer(engine: FakeEngine()) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/echo", "secret"]}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            _ = try await Self.waitForEnd(client, id)
            let reads = ["/api/info", "/api/jobs", "/api/jobs/\(id)", "/api/jobs/\(id)/events", "/api/events", "/api/jobs/\(id)/system",
                         "/api/jobs/\(id)/runs/1/files", "/api/jobs/\(id)/runs/1/files/output.log", "/api/jobs/\(id)/runs/1/files/profile.folded",
                         "/api/jobs/\(id)/runs/1/view/cpu", "/api/jobs/\(id)/runs/1/view/top", "/api/jobs/\(id)/runs/1/compare?base=\(id)"]
            // The same routes under other spellings of their paths (the router omits empty parts).
            // (Not the event streams: answered, they would stream until the test times out.)
            let spellings = reads.filter { !$0.hasSuffix("events") }.flatMap { ["/" + $0, "//" + $0.dropFirst(), $0.replacingOccurrences(of: "/api/", with: "/api//")] }
                + ["/jobs/\(id)/../../api/jobs", "/%61pi/jobs", "/jobs/\(id)/runs/1/files/output.log", "/api"]
            for uri in reads + spellings {
                let none = try await client.execute(uri: uri, method: .get)
                XCTAssertEqual(none.status, .unauthorized, uri)
                XCTAssertFalse(String(buffer: none.body).contains("secret") || String(buffer: none.body).contains("hello from"), uri)
                guard reads.contains(uri) else { continue }
                let wrong = try await client.execute(uri: uri + (uri.contains("?") ? "&" : "?") + "token=nope", method: .get)
                XCTAssertEqual(wrong.status, .unauthorized, uri)
            }
            // The query form, for EventSource and download links.
            let log = try await client.execute(uri: "/api/jobs/\(id)/runs/1/files/output.log?token=secret-token", method: .get)
            XCTAssertEqual(log.status, .ok)
            XCTAssertTrue(String(buffer: log.body).contains("hello from the command"))
            // The pages carry no data and open without it (the token comes in their URL once).
            do { let status = try await client.execute(uri: "/", method: .get).status; XCTAssertEqual(status, .ok) }
            do { let status = try await client.execute(uri: "/assets/app.js", method: .get).status; XCTAssertEqual(status, .ok) }
            do { let status = try await client.execute(uri: "/jobs/\(id)", method: .get).status; XCTAssertEqual(status, .ok) }
        }
    }

    func testAJobsCommandInheritsOnlyStandardDescriptors() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.sprofPath) else {
            return XCTFail("\(Self.sprofPath) is missing: swift build --build-tests builds it")
        }
        // A descriptor of ours without close-on-exec, as SwiftNIO's sockets are.
        let leaky = open("/dev/null", O_RDONLY)
        defer { close(leaky) }
        XCTAssertEqual(fcntl(leaky, F_GETFD) & FD_CLOEXEC, 0)
        let engine = SprofProcessEngine(sprofPath: Self.sprofPath, capabilities: SprofProcessEngine.capabilities(of: Self.sprofPath))
        XCTAssertTrue(engine.capabilities.progressFD, "the progress pipe is part of what is checked")
        try await withServer(engine: engine) { client, _ in
            // The shell lists its own descriptors ($$ is the shell; ls itself would add its directory's).
            // (Not through $(…), whose pipe the shell holds open while it runs.)
            let created = try await Self.create(client, #"{"command": ["/bin/sh", "-c", "echo fds-begin; ls /proc/$$/fd; echo fds-end"], "options": {"call_graph": "fp"}}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            let final = try await Self.waitForEnd(client, id)
            if final["state"] as? String == "failed" { throw XCTSkip("the recording could not start here: \(final["error"] ?? "")") }
            let log = String(buffer: try await client.execute(uri: "/api/jobs/\(id)/runs/1/files/output.log", method: .get, headers: Self.auth).body)
            let lines = log.split(separator: "\n").map(String.init)
            let begin = try XCTUnwrap(lines.firstIndex(of: "fds-begin"), log)
            let end = try XCTUnwrap(lines.firstIndex(of: "fds-end"), log)
            XCTAssertEqual(Array(lines[(begin + 1)..<end]), ["0", "1", "2"], "the command gets stdin, stdout and stderr only")
        }
    }

    func testTraversalIsRefused() async throws {
        try await withServer(engine: FakeEngine()) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/true"]}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            _ = try await Self.waitForEnd(client, id)
            do { let status = try await client.execute(uri: "/api/jobs/\(id)/runs/1/files/profile.folded", method: .get, headers: Self.auth).status; XCTAssertEqual(status, .ok) }
            let attempts = [
                "/api/jobs/..%2F..%2Fetc/runs/1/files/passwd",
                "/api/jobs/%2E%2E/runs/1/files/state.json",
                "/api/jobs/\(id)/runs/1/files/..%2F..%2Fstate.json",
                "/api/jobs/\(id)/runs/1/files/%2E%2E",
                "/api/jobs/\(id)/runs/1/files/.profile.folded.tmp",
                "/api/jobs/\(id)/runs/..%2F..%2F/files/spec.json",
                "/api/jobs/\(id)/runs/0/files/profile.folded",
                "/api/jobs/\(id)/runs/1/view/..%2Fspec",
                "/jobs/..%2F..%2Fetc%2Fpasswd",
                "/assets/..%2FPackage.swift",
            ]
            for uri in attempts {
                let r = try await client.execute(uri: uri, method: .get, headers: Self.auth)
                XCTAssertTrue((400..<500).contains(Int(r.status.code)), "\(uri): \(r.status)")
                XCTAssertFalse(String(buffer: r.body).contains("root:"), uri)
                XCTAssertFalse(String(buffer: r.body).contains("\"command\""), uri)
            }
            do { let status = try await client.execute(uri: "/api/jobs/..%2F..", method: .delete, headers: Self.auth).status; XCTAssertEqual(status, .badRequest) }
            XCTAssertTrue(FileManager.default.fileExists(atPath: self.dataDir + "/jobs/\(id)/spec.json"))
        }
    }

    func testJobsReloadAfterRestartAndARunningJobBecomesInterrupted() async throws {
        let box = IDBox()
        try await withServer(engine: FakeEngine()) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/echo", "<b>x</b>"], "options": {"repeat": 2}}"#)
            let doneID = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            box.id = doneID
            let final = try await Self.waitForEnd(client, doneID)
            XCTAssertEqual(final["state"] as? String, "done")
            XCTAssertEqual(final["runs_done"] as? Int, 2, "each run is kept")
        }
        let doneID = box.id
        XCTAssertTrue(FileManager.default.fileExists(atPath: dataDir + "/jobs/\(doneID)/runs/2/profile.folded"))
        // A job that was running when the server died: state.json says so.
        let crashedID = "20200101-000000-00c0de"
        let dir = dataDir + "/jobs/" + crashedID
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var crashed = Job(id: crashedID, command: ["/bin/sleep", "100"], options: JobOptions(), createdMs: 1_577_836_800_000)
        crashed.state = .running
        crashed.startedMs = 1_577_836_800_100
        try DataFiles.writeJSON(crashed, to: dir + "/state.json")

        try await withServer(engine: FakeEngine()) { client, _ in
            let list = try await client.execute(uri: "/api/jobs", method: .get, headers: Self.auth)
            let jobs = try XCTUnwrap(try Self.json(list) as? [[String: Any]])
            XCTAssertEqual(jobs.compactMap { $0["id"] as? String }, [doneID, crashedID], "newest first, both kept")
            XCTAssertEqual(jobs.first?["command"] as? [String], ["/bin/echo", "<b>x</b>"], "names come back as they were")
            let r = try await client.execute(uri: "/api/jobs/\(crashedID)", method: .get, headers: Self.auth)
            let job = try XCTUnwrap(try Self.json(r) as? [String: Any])
            XCTAssertEqual(job["state"] as? String, "interrupted")
            XCTAssertTrue((job["error"] as? String ?? "").hasPrefix("interrupted"))
            let events = try await Self.waitForEnd(client, crashedID)
            XCTAssertEqual(events["state"] as? String, "interrupted", "the stream of a finished job ends at once")
        }
        let onDisk = try XCTUnwrap(try DataFiles.readJSON(Job.self, from: dir + "/state.json"))
        XCTAssertEqual(onDisk.state, .interrupted, "the mark is saved")
    }

    /// A graceful stop of the server stops the running job as Stop does and waits for its
    /// profile: the job ends `done` and says the server's stop ended it. After the restart it
    /// is not said to have outlived the server (it did not); a job the server left running when
    /// it crashed still is (testAnOrphanedRecordingsProfileIsPickedUp).
    func testAJobStoppedByAGracefulShutdownDidNotOutliveTheServer() async throws {
        let engine = StoppableRunsEngine(stopAt: 1)
        let store = try JobStore(dataDirectory: dataDir, engine: engine)
        await store.start()
        let id = try await store.create(command: ["/bin/sleep", "100"], options: JobOptions()).id
        for _ in 0..<500 where engine.started < 1 { try await Task.sleep(nanoseconds: 10_000_000) }
        await store.shutdown()
        let after = try await store.job(id)
        XCTAssertEqual(after.state, .done, "\(after)")
        XCTAssertEqual(after.runsDone, 1)
        XCTAssertTrue(after.notices.contains { $0.hasPrefix("stopped when the server stopped") }, "\(after.notices)")
        let restarted = try JobStore(dataDirectory: dataDir, engine: FakeEngine())
        let job = try await restarted.job(id)
        XCTAssertEqual(job.state, .done)
        XCTAssertFalse(job.notices.contains(JobStore.adoptedNotice), "\(job.notices)")
        XCTAssertFalse(job.notices.joined().contains("outlived"), "\(job.notices)")
    }

    func testDeleteRemovesTheDirectory() async throws {
        try await withServer(engine: FakeEngine()) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/true"]}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            _ = try await Self.waitForEnd(client, id)
            XCTAssertTrue(FileManager.default.fileExists(atPath: self.dataDir + "/jobs/\(id)"))
            let deleted = try await client.execute(uri: "/api/jobs/\(id)", method: .delete, headers: Self.auth)
            XCTAssertEqual(deleted.status, .ok)
            XCTAssertFalse(FileManager.default.fileExists(atPath: self.dataDir + "/jobs/\(id)"))
            do { let status = try await client.execute(uri: "/api/jobs/\(id)", method: .get, headers: Self.auth).status; XCTAssertEqual(status, .notFound) }
            do { let status = try await client.execute(uri: "/api/jobs/\(id)", method: .delete, headers: Self.auth).status; XCTAssertEqual(status, .notFound) }
        }
    }

    func testViewsOfAFoldedProfile() async throws {
        let folded = "app;main;parse 30\napp;main;render;<script>alert(1)</script> 10\napp;main 5\n"
        try await withServer(engine: FakeEngine(folded: folded)) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/true"]}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            _ = try await Self.waitForEnd(client, id)
            let cpuAny = try await Self.getJSON(client, "/api/jobs/\(id)/runs/1/view/cpu")
            let cpu = try XCTUnwrap(cpuAny as? [String: Any])
            XCTAssertEqual(cpu["total"] as? Int, 45)
            XCTAssertEqual(cpu["parent"] as? [Int], [-1, 0, 1, 1, 3], "app > main > {parse, render > <script>}")
            XCTAssertEqual(cpu["value"] as? [Int], [45, 45, 30, 10, 10])
            let topAny = try await Self.getJSON(client, "/api/jobs/\(id)/runs/1/view/top")
            let top = try XCTUnwrap(topAny as? [[String: Any]])
            XCTAssertEqual(top.first?["name"] as? String, "parse")
            XCTAssertEqual(top.first?["self"] as? Int, 30)
            let wallAny = try await Self.getJSON(client, "/api/jobs/\(id)/runs/1/view/wall")
            let wall = try XCTUnwrap(wallAny as? [String: Any])
            XCTAssertTrue((wall["empty"] as? String ?? "").contains("not recorded"), "a tab without data says why")
            let memoryAny = try await Self.getJSON(client, "/api/jobs/\(id)/runs/1/view/memory")
            let memory = try XCTUnwrap(memoryAny as? [String: Any])
            XCTAssertTrue((memory["empty"] as? String ?? "").contains("memory was not sampled for this job"))

            // Compare with itself: no change anywhere.
            let cmpAny = try await Self.getJSON(client, "/api/jobs/\(id)/runs/1/compare?base=\(id)")
            let cmp = try XCTUnwrap(cmpAny as? [String: Any])
            let flame = try XCTUnwrap(cmp["flame"] as? [String: Any])
            XCTAssertEqual(flame["value"] as? [Int], flame["base"] as? [Int])
            let table = try XCTUnwrap(cmp["table"] as? [[String: Any]])
            XCTAssertFalse(table.isEmpty)
            XCTAssertTrue(table.allSatisfy { ($0["delta_self"] as? Double) == 0 && ($0["delta_total"] as? Double) == 0 })
            XCTAssertTrue(ProfileFiles.isDownloadable("profile.memory.tsv"), "the memory timeline can be downloaded")

            // Names are JSON-escaped text; the page's HTML never contains them.
            let raw = String(buffer: try await client.execute(uri: "/api/jobs/\(id)/runs/1/view/cpu", method: .get, headers: Self.auth).body)
            XCTAssertTrue(raw.contains(#""\u003cscript\u003ealert(1)\u003c/script\u003e""#), "markup characters are escaped in JSON")
            XCTAssertFalse(raw.contains("<script>"))
            XCTAssertTrue((cpu["names"] as? [String] ?? []).contains("<script>alert(1)</script>"), "and read back as the name")
            let page = try await client.execute(uri: "/jobs/\(id)", method: .get, headers: Self.auth)
            XCTAssertFalse(String(buffer: page.body).contains("<script>alert"))
            XCTAssertTrue(page.headers[HTTPField.Name("Content-Security-Policy")!]?.contains("default-src 'none'") ?? false)
        }
    }

    func testCompareTableHasSelfAndTotalDeltas() throws {
        // 60/30/10 → 30/60/10 through a shared helper: self shares do not move, totals do.
        let base = Profile(folded: [(frames: ["main", "a", "helper"], count: 60), (frames: ["main", "b", "helper"], count: 30), (frames: ["main", "c"], count: 10)])
        let new = Profile(folded: [(frames: ["main", "a", "helper"], count: 30), (frames: ["main", "b", "helper"], count: 60), (frames: ["main", "c"], count: 10)])
        let rows = ProfileViews.compare(base: base, new: new)
        XCTAssertEqual(rows.prefix(2).map(\.name), ["a", "b"])
        XCTAssertEqual(rows[0].deltaTotal, -30, accuracy: 1e-9)
        XCTAssertEqual(rows[1].deltaTotal, 30, accuracy: 1e-9)
        XCTAssertEqual(rows[0].deltaSelf, 0)
        let helper = try XCTUnwrap(rows.first { $0.name == "helper" })
        XCTAssertEqual(helper.baseSelf, 90, accuracy: 1e-9)
        XCTAssertEqual(helper.deltaSelf, 0, accuracy: 1e-9)
    }

    func testCallersCalleesAndTheInvertedTree() {
        let stacks: [(frames: [String], value: Int64)] = [
            (["app", "main", "a", "helper"], 60), (["app", "main", "b", "helper"], 30), (["app", "main", "helper"], 5),
            (["app", "main", "a"], 10), (["app", "rec", "rec", "helper"], 4),
        ]
        let h = ProfileViews.callersCallees(stacks, function: "helper", unit: "samples")
        XCTAssertEqual(h.selfValue, 99)
        XCTAssertEqual(h.total, 99)
        XCTAssertEqual(h.grandTotal, 109)
        XCTAssertEqual(h.callers.map(\.name), ["a", "b", "main", "rec"])
        XCTAssertEqual(h.callers.map(\.total), [60, 30, 5, 4])
        XCTAssertTrue(h.callees.isEmpty)
        let main = ProfileViews.callersCallees(stacks, function: "main", unit: "samples")
        XCTAssertEqual(main.callees.map(\.name), ["a", "b", "helper"])
        XCTAssertEqual(main.callees.map(\.total), [70, 30, 5])
        XCTAssertEqual(main.callees.map(\.selfValue), [10, 0, 5], "self: the callee is the leaf")
        let rec = ProfileViews.callersCallees(stacks, function: "rec", unit: "samples")
        XCTAssertEqual(rec.total, 4, "recursion counts a sample once")
        XCTAssertEqual(rec.callers.map(\.total), [4, 4], "app and rec itself, once each")
        // Kernel and inlined frames carry their suffix in the stacks; Top, transforms and this
        // view name the function without it, and either name asks for it.
        let suffixed: [(frames: [String], value: Int64)] = [
            (["app", "main", "read", "vfs_read_[k]", "schedule_[k]"], 7), (["app", "main", "vfs_read_[k]"], 2), (["app", "main", "inl_[i]"], 3),
        ]
        for asked in ["vfs_read", "vfs_read_[k]"] {
            let k = ProfileViews.callersCallees(suffixed, function: asked, unit: "samples")
            XCTAssertEqual(k.name, "vfs_read")
            XCTAssertEqual([k.selfValue, k.total], [2, 9], asked)
            XCTAssertEqual(k.callers.map(\.name), ["read", "main"])
            XCTAssertEqual(k.callees.map(\.name), ["schedule"])
        }
        XCTAssertEqual(ProfileViews.callersCallees(suffixed, function: "inl", unit: "samples").selfValue, 3)
        let inverted = ProfileViews.invertedTree(stacks, unit: "samples")
        let roots = inverted.parent.indices.filter { inverted.parent[$0] < 0 }
        XCTAssertEqual(roots.map { inverted.names[Int(inverted.name[$0])] }, ["a", "helper"])
        XCTAssertEqual(roots.map { inverted.value[$0] }, [10, 99], "a root's value is the function's self")
    }

    func testAnOrphanedRecordingsProfileIsPickedUp() async throws {
        // Two jobs that were running when the server crashed; their `sprof run` went on. One wrote
        // its profile before the restart, the other writes it after.
        let early = "20200101-000000-0000aa", late = "20200101-000000-0000bb"
        for id in [early, late] {
            let dir = dataDir + "/jobs/" + id
            try FileManager.default.createDirectory(atPath: dir + "/runs/1", withIntermediateDirectories: true)
            var job = Job(id: id, command: ["/bin/sleep", "1"], options: JobOptions(repeat: 1), createdMs: 1_577_836_800_000)
            job.state = .running
            job.startedMs = 1_577_836_800_100
            try DataFiles.writeJSON(job, to: dir + "/state.json")
        }
        try Data("sleep;main 5\n".utf8).write(to: URL(fileURLWithPath: dataDir + "/jobs/\(early)/runs/1/profile.folded"))
        try await withServer(engine: FakeEngine()) { client, _ in
            let aAny = try await Self.getJSON(client, "/api/jobs/\(early)")
            let a = try XCTUnwrap(aAny as? [String: Any])
            XCTAssertEqual(a["state"] as? String, "interrupted")
            XCTAssertEqual(a["runs_done"] as? Int, 1, "the profile on disk is picked up")
            XCTAssertEqual(a["samples"] as? Int, 5)
            XCTAssertTrue((a["notices"] as? [String] ?? []).contains(JobStore.adoptedNotice))
            let cpuAny = try await Self.getJSON(client, "/api/jobs/\(early)/runs/1/view/cpu")
            let cpu = try XCTUnwrap(cpuAny as? [String: Any])
            XCTAssertEqual(cpu["total"] as? Int, 5)
            let bAny = try await Self.getJSON(client, "/api/jobs/\(late)")
            let b = try XCTUnwrap(bAny as? [String: Any])
            XCTAssertEqual(b["runs_done"] as? Int, 0)
            try Data("sleep;main 7\n".utf8).write(to: URL(fileURLWithPath: self.dataDir + "/jobs/\(late)/runs/1/profile.folded"))
            let listAny = try await Self.getJSON(client, "/api/jobs")
            let list = try XCTUnwrap(listAny as? [[String: Any]])
            XCTAssertEqual(list.first { $0["id"] as? String == late }?["runs_done"] as? Int, 1, "and so is one written after the restart")
        }
        let onDisk = try XCTUnwrap(try DataFiles.readJSON(Job.self, from: dataDir + "/jobs/\(late)/state.json"))
        XCTAssertEqual(onDisk.runsDone, 1, "the pick-up is saved")
    }

    /// Counts, losses and notices come from the profile's provenance: an empty `output.log`
    /// changes nothing (issue 18: the server read them from sprof's summary line there). Every
    /// notice the profile carries is shown, the stack copy's advice too, and the advice on lost
    /// samples as `sprof run` prints it (only the fallback reached the job before).
    func testEveryNoticeOfTheProfileAndTheLossAdviceAreNotices() throws {
        let dir = dataDir + "/run"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var profile = Profile(folded: [(frames: ["app", "main"], count: 12)])
        profile.metadata.sprofVersion = ProfileMetadata.currentSprofVersion
        profile.metadata.callGraph = "dwarf"
        profile.metadata.stackSize = 8192
        profile.metadata.rate = .frequency(999)
        profile.metadata.statistics.samples = 12
        profile.metadata.statistics.lostRecords = 3
        let stackCopy = "5 of 12 stacks were cut short because the 8192-byte stack copy ran out; copy more with --call-graph dwarf,32768"
        profile.metadata.notices = ["cycles is not supported on this machine; falling back to cpu-clock", stackCopy]
        try Data(PprofFormat.encode(profile)).write(to: URL(fileURLWithPath: dir + "/profile.pb.gz"))
        try Data().write(to: URL(fileURLWithPath: dir + "/output.log"))
        let outcome = SprofProcessEngine.outcome(status: 0, directory: dir)
        var cli = RunOptions()
        cli.callGraph = .dwarf(stackSize: 8192)
        let advice = try XCTUnwrap(RecordingReport.lossAdvice(profile.metadata.statistics, callGraph: cli.callGraph, ringPages: cli.effectiveRingPages()))
        XCTAssertTrue(advice.hasPrefix("20% of the samples were lost"), advice)
        XCTAssertEqual(outcome.notices, ["cycles is not supported on this machine; falling back to cpu-clock", stackCopy, advice])
        XCTAssertEqual(outcome.samples, 12)
        XCTAssertEqual(outcome.lost, 3)
        XCTAssertNil(outcome.lastMessage)
    }

    /// A real recording whose `output.log` is emptied before the server reads anything: the job's
    /// counts, the flame graph and the system tab are all there, from `profile.pb.gz`.
    func testTheServerReadsOnlyTheProfileNotTheLog() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.sprofPath) else {
            return XCTFail("\(Self.sprofPath) is missing: swift build --build-tests builds it")
        }
        let engine = LogEmptyingEngine(SprofProcessEngine(sprofPath: Self.sprofPath, capabilities: SprofProcessEngine.capabilities(of: Self.sprofPath)))
        try await withServer(engine: engine) { client, _ in
            let loop = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo finished"
            let created = try await Self.create(client, #"{"command": ["/bin/sh", "-c", "\#(loop)"], "options": {"frequency": 499, "call_graph": "fp"}}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            let final = try await Self.waitForEnd(client, id)
            if final["state"] as? String == "failed", let error = final["error"] as? String, error.contains("refused") || error.contains("paranoid") {
                throw XCTSkip("perf_event_open refused here: \(error)")
            }
            XCTAssertEqual(final["state"] as? String, "done", "\(final)")
            let log = try XCTUnwrap(FileManager.default.contents(atPath: self.dataDir + "/jobs/\(id)/runs/1/output.log"))
            XCTAssertTrue(log.isEmpty, "the engine emptied the log")
            let samples = try XCTUnwrap(final["samples"] as? Int)
            XCTAssertGreaterThan(samples, 10)
            XCTAssertEqual(final["lost"] as? Int, 0)
            let treeAny = try await Self.getJSON(client, "/api/jobs/\(id)/runs/1/view/cpu")
            let tree = try XCTUnwrap(treeAny as? [String: Any])
            XCTAssertEqual(tree["total"] as? Int, samples)
            let infoAny = try await Self.getJSON(client, "/api/jobs/\(id)/system")
            let info = try XCTUnwrap(infoAny as? [String: Any])
            let kernel = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertEqual(info["kernel_release"] as? String, kernel)
            XCTAssertEqual(info["cores"] as? Int, ProcessInfo.processInfo.activeProcessorCount)
            XCTAssertEqual(info["sprof_version"] as? String, ProfileMetadata.currentSprofVersion)
        }
    }

    func testStopEndsTheRecordingAndKeepsTheProfile() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.sprofPath) else {
            return XCTFail("\(Self.sprofPath) is missing: swift build --build-tests builds it")
        }
        let engine = SprofProcessEngine(sprofPath: Self.sprofPath, capabilities: SprofProcessEngine.capabilities(of: Self.sprofPath))
        try await withServer(engine: engine) { client, _ in
            let created = try await Self.create(client, #"{"command": ["/bin/sh", "-c", "while :; do :; done"], "options": {"call_graph": "fp", "repeat": 3}}"#)
            let id = try XCTUnwrap((try Self.json(created) as? [String: Any])?["id"] as? String)
            var job: [String: Any] = [:]
            for _ in 0..<600 {
                let jobAny = try await Self.getJSON(client, "/api/jobs/\(id)")
                job = try XCTUnwrap(jobAny as? [String: Any])
                if job["state"] as? String != "queued", ((job["progress"] as? [String: Any])?["samples"] as? Int ?? 0) > 0 { break }
                if job["state"] as? String == "failed" { throw XCTSkip("the recording could not start here: \(job["error"] ?? "")") }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            XCTAssertEqual(job["state"] as? String, "running")
            let stop = try await client.execute(uri: "/api/jobs/\(id)/stop", method: .post, headers: Self.auth)
            XCTAssertEqual(stop.status, .ok, String(buffer: stop.body))
            let final = try await Self.waitForEnd(client, id)
            XCTAssertEqual(final["state"] as? String, "done", "\(final)")
            XCTAssertEqual(final["runs_done"] as? Int, 1, "runs 2 and 3 are not started")
            XCTAssertGreaterThan(final["samples"] as? Int ?? 0, 0)
            XCTAssertTrue((final["notices"] as? [String] ?? []).contains { $0.hasPrefix("stopped with Stop (SIGINT) after 1 of 3 runs") }, "\(final)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: self.dataDir + "/jobs/\(id)/runs/1/profile.folded"))
            let again = try await client.execute(uri: "/api/jobs/\(id)/stop", method: .post, headers: Self.auth)
            XCTAssertEqual(again.status, .conflict)
            XCTAssertTrue(String(buffer: again.body).contains("not running"))
        }
    }

    func testFlameTreeMergesStacksInOrderAndScalesTheBase() {
        let new: [(frames: [String], value: Int64)] = [(["a", "c"], 3), (["a", "b"], 1), (["d"], 4)]
        let base: [(frames: [String], value: Int64)] = [(["a", "b"], 2), (["x"], 2)]
        let tree = ProfileViews.flameTree(new, unit: "samples", base: base)
        XCTAssertEqual(tree.parent, [-1, 0, 0, -1, -1])
        XCTAssertEqual(tree.name.map { tree.names[Int($0)] }, ["a", "b", "c", "d", "x"])
        XCTAssertEqual(tree.value, [4, 1, 3, 4, 0])
        XCTAssertEqual(tree.base, [4, 4, 0, 0, 4], "base total 4 scaled to the new total 8")
        XCTAssertEqual(tree.total, 8)
    }

    func testUnwritableDataDirectoryAndPortInUseAreOneLine() throws {
        XCTAssertThrowsError(try JobStore(dataDirectory: "/proc/sprof-serve-test", engine: FakeEngine())) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("data directory /proc/sprof-serve-test is not writable"), message)
            XCTAssertFalse(message.contains("\n"))
        }
        // Hold a port, then ask.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        XCTAssertTrue(bound)
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let message = ServeMain.portInUse(host: "127.0.0.1", port: port)
        XCTAssertEqual(message, "port \(port) is already in use on 127.0.0.1: stop the other server or choose another with --port N")
        XCTAssertThrowsError(try ServeMain.parse(["--host", "0.0.0.0"])) { error in
            XCTAssertTrue("\(error)".contains("--allow-remote"))
        }
        XCTAssertNoThrow(try ServeMain.parse(["--host", "0.0.0.0", "--allow-remote"]))
        XCTAssertFalse(JobID.isValid(".."))
        XCTAssertFalse(JobID.isValid("a/b"))
        XCTAssertFalse(JobID.isValid(""))
        XCTAssertTrue(JobID.isValid(JobID.make()))
    }
}
