import Foundation
import XCTest
import SprofTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Debug info and sources from a debuginfod server (Debian's `debuginfod`, on 127.0.0.1 inside a
/// private network namespace so nothing outside the test can reach it) for a stripped fixture
/// whose debug file only that server has.
final class DebuginfodTests: XCTestCase {
    private var server: BackgroundProcess?

    override func tearDown() {
        if let server {
            server.send(SIGKILL)
            _ = server.wait(timeout: 10)
        }
        server = nil
    }

    private struct Fixture {
        var root: URL
        var binary: String
        var buildID: String
        var debugDirectory: String
    }

    /// inline.c built with a build-id, its debug file split off into a directory of its own, the
    /// binary stripped of symbols and DWARF.
    private func strippedFixture() throws -> Fixture {
        guard let clang = TestFixtures.findExecutable("clang") else { throw XCTSkip("clang not installed") }
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("sprof-debuginfod-\(UUID().uuidString)")
        let debugDir = root.appendingPathComponent("served")
        let sources = root.appendingPathComponent("src")
        try fm.createDirectory(at: debugDir, withIntermediateDirectories: true)
        try fm.createDirectory(at: sources, withIntermediateDirectories: true)
        let source = sources.appendingPathComponent("inline.c").path
        try fm.copyItem(atPath: TestFixtures.cFixturesDirectory.appendingPathComponent("inline.c").path, toPath: source)
        let binary = root.appendingPathComponent("inline_stripped").path
        // An absolute source path, as distribution builds record (debuginfod serves only those), and
        // DWARF 4: debuginfod 0.188 does not index the primary source file of a DWARF 5 line table.
        let cc = try TestFixtures.run(clang, TestFixtures.framePointerFlags + ["-gdwarf-4", "-Wl,--build-id", source, "-o", binary])
        XCTAssertEqual(cc.status, 0, cc.stderr)
        for (tool, args) in [("objcopy", ["--only-keep-debug", binary, debugDir.appendingPathComponent("inline_stripped.debug").path]),
                             ("strip", ["--strip-all", binary])] {
            guard let path = TestFixtures.findExecutable(tool) else { throw XCTSkip("\(tool) not installed (binutils)") }
            let r = try TestFixtures.run(path, args)
            XCTAssertEqual(r.status, 0, "\(tool): \(r.stderr)")
        }
        let notes = try TestFixtures.run(try XCTUnwrap(TestFixtures.findExecutable("readelf")), ["-n", binary])
        let id = try XCTUnwrap(notes.stdout.split(separator: "\n").first { $0.contains("Build ID:") }?
            .split(separator: " ").last.map(String.init), notes.stdout)
        return Fixture(root: root, binary: binary, buildID: id, debugDirectory: debugDir.path)
    }

    /// Starts `debuginfod -F DIR` in a network namespace of its own with only loopback up, and
    /// waits (at most 30 s) until it serves the fixture's debug file. Skips when it cannot.
    private func startServer(_ fixture: Fixture, port: Int) throws -> String {
        guard getuid() == 0 else { throw XCTSkip("a private network namespace needs root") }
        for tool in ["debuginfod", "debuginfod-find", "unshare", "nsenter", "ip"] where TestFixtures.findExecutable(tool) == nil {
            throw XCTSkip("\(tool) not installed (scripts/setup.sh --test installs debuginfod, util-linux and iproute2)")
        }
        let db = fixture.root.appendingPathComponent("db.sqlite").path
        let process = try BackgroundProcess(TestFixtures.findExecutable("unshare")!, [
            "--net", "--", "sh", "-c", "ip link set lo up && exec debuginfod -F -p \(port) -d \(db) -t 0 -g 0 \(fixture.debugDirectory)",
        ])
        server = process
        let namespace = "/proc/\(process.pid)/ns/net"
        var served = false
        let deadline = Date().addingTimeInterval(30)
        var attempt = 0
        while Date() < deadline && ProcInfo.isAlive(process.pid) {
            // A fresh cache each time: libdebuginfod caches a 404 (the scan not yet done) for 10 minutes.
            attempt += 1
            let cache = fixture.root.appendingPathComponent("probe-cache-\(attempt)").path
            let r = try TestFixtures.run(TestFixtures.findExecutable("nsenter")!, ["--net=\(namespace)", "--", "debuginfod-find", "debuginfo", fixture.buildID],
                                         environment: TestFixtures.environment(adding: [
                                            "DEBUGINFOD_URLS": "http://127.0.0.1:\(port)", "DEBUGINFOD_CACHE_PATH": cache, "DEBUGINFOD_TIMEOUT": "5"]),
                                         timeout: 20)
            if r.status == 0 { served = true; break }
            usleep(300_000)
        }
        guard served else {
            throw XCTSkip("debuginfod did not start or serve \(fixture.buildID) within 30 s: \(process.stderr.suffix(400))")
        }
        return namespace
    }

    /// `sprof ARGS` inside the server's network namespace.
    private func sprof(_ args: [String], namespace: String, environment: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try TestFixtures.run(TestFixtures.findExecutable("nsenter")!, ["--net=\(namespace)", "--", try TestFixtures.sprofPath()] + args,
                             environment: TestFixtures.environment(adding: environment), timeout: 300)
    }

    func testStrippedFixtureGetsNamesInlineFramesAndSourceFromTheServer() throws {
        try SprofCLI.requirePerfEvents()
        let fixture = try strippedFixture()
        defer { try? FileManager.default.removeItem(at: fixture.root) }
        let port = 20_000 + Int(getpid() % 20_000)
        let namespace = try startServer(fixture, port: port)
        let environment = ["DEBUGINFOD_URLS": "http://127.0.0.1:\(port)",
                           "DEBUGINFOD_CACHE_PATH": fixture.root.appendingPathComponent("cache").path]
        let prefix = fixture.root.appendingPathComponent("served-run").path
        let run = try sprof(["run", "-o", prefix, "--", fixture.binary, "800"], namespace: namespace, environment: environment)
        XCTAssertEqual(run.status, 0, run.stderr)
        let folded = try String(contentsOfFile: prefix + ".folded", encoding: .utf8)
        XCTAssertTrue(folded.contains("outer_caller;inlined_hot_[i]"), "names and inline frames from the server:\n\(folded.prefix(800))")
        XCTAssertTrue(run.stderr.contains("debuginfod: debug info for 1 file"), run.stderr)
        // The summary line counts the fetched files too, and so does the provenance it is saved with.
        XCTAssertTrue(run.stderr.contains("debug info of 1 file from debuginfod"), run.stderr)
        // Sources: the tree is not where the debug info says (the prefix points nowhere), so the
        // server's /buildid/ID/source/PATH supplies it.
        let sources = fixture.root.appendingPathComponent("src").path
        let annotate = try sprof(["annotate", "^inlined_hot$", prefix + ".pb.gz", "--source-prefix", sources + "=/nonexistent"],
                                 namespace: namespace, environment: environment)
        XCTAssertEqual(annotate.status, 0, annotate.stderr)
        XCTAssertTrue(annotate.stdout.contains("x ^= x << 13;"), annotate.stdout + annotate.stderr)
        XCTAssertTrue(annotate.stderr.contains("debuginfod: 1 source file fetched"), "stderr: " + annotate.stderr + "\nstdout: " + annotate.stdout.prefix(300))

        // The server gone: one notice, unnamed frames, no hang.
        server?.send(SIGKILL)
        _ = server?.wait(timeout: 10)
        server = nil
        let offline = fixture.root.appendingPathComponent("offline").path
        let gone = try TestFixtures.run(try TestFixtures.sprofPath(), ["run", "-o", offline, "--", fixture.binary, "300"],
                                        environment: TestFixtures.environment(adding: [
                                            "DEBUGINFOD_URLS": "http://127.0.0.1:\(port)",
                                            "DEBUGINFOD_CACHE_PATH": fixture.root.appendingPathComponent("cache2").path]),
                                        timeout: 120)
        XCTAssertEqual(gone.status, 0, gone.stderr)
        XCTAssertEqual(gone.stderr.components(separatedBy: "debuginfod: cannot reach").count - 1, 1, gone.stderr)
        let unnamed = try String(contentsOfFile: offline + ".folded", encoding: .utf8)
        XCTAssertTrue(unnamed.contains("[inline_stripped+0x"), unnamed.prefix(800) + "")
        XCTAssertFalse(unnamed.contains("inlined_hot"), unnamed.prefix(800) + "")
    }
    /// A server that accepts connections and never answers (a hung proxy, a firewall that
    /// swallows packets): libdwfl asks about a stripped file several times, and libdebuginfod
    /// retries each failed query twice, every attempt waiting out `DEBUGINFOD_TIMEOUT`. sprof
    /// asks once, gives one notice, and nothing more is asked: one connection per command.
    func testAServerThatNeverAnswersIsAskedOnce() throws {
        try SprofCLI.requirePerfEvents()
        let fixture = try strippedFixture()
        defer { try? FileManager.default.removeItem(at: fixture.root) }
        let silent = try SilentServer()
        defer { silent.stop() }
        let environment = TestFixtures.environment(adding: [
            "DEBUGINFOD_URLS": "http://127.0.0.1:\(silent.port)", "DEBUGINFOD_TIMEOUT": "2",
            "DEBUGINFOD_CACHE_PATH": fixture.root.appendingPathComponent("cache").path])
        let prefix = fixture.root.appendingPathComponent("silent").path
        let run = try TestFixtures.run(try TestFixtures.sprofPath(), ["run", "-o", prefix, "--", fixture.binary, "300"],
                                       environment: environment, timeout: 120)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stderr.components(separatedBy: "debuginfod: cannot reach").count - 1, 1, run.stderr)
        XCTAssertTrue(try String(contentsOfFile: prefix + ".folded", encoding: .utf8).contains("[inline_stripped+0x"))
        XCTAssertEqual(silent.connections, 1, "one query for the whole recording:\n\(run.stderr)")
        // annotate --asm opens the binary through libdw too, then looks for sources: one query,
        // and the notice says why the listing has no source lines.
        let annotate = try TestFixtures.run(try TestFixtures.sprofPath(), ["annotate", "inline_stripped", prefix + ".pb.gz", "--asm"],
                                            environment: environment, timeout: 120)
        XCTAssertEqual(annotate.status, 0, annotate.stderr)
        XCTAssertEqual(annotate.stderr.components(separatedBy: "debuginfod: cannot reach").count - 1, 1, annotate.stderr)
        XCTAssertEqual(silent.connections, 2, "one more query for annotate:\n\(annotate.stderr)")
    }
}

/// A TCP listener on 127.0.0.1 that accepts every connection, counts it, and never answers.
private final class SilentServer: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var accepted: [Int32] = []
    private var stopped = false

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw XCTSkip("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { close(fd); throw XCTSkip("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))") }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                lock.lock()
                if c >= 0 { accepted.append(c) }
                let done = stopped
                lock.unlock()
                if c < 0 && (done || errno != EINTR) { return }
            }
        }
        thread.start()
    }

    var connections: Int {
        lock.lock(); defer { lock.unlock() }
        return accepted.count
    }

    func stop() {
        lock.lock()
        stopped = true
        accepted.forEach { close($0) }
        lock.unlock()
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
