import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// What writing an output must not do to the files around it: leave its hidden temporary file
/// behind when a signal ends sprof, or reset the permissions of the file it replaces.
final class OutputFileSafetyTests: XCTestCase {
    private func hiddenTemporaries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".sprof-") }.sorted()
    }

    /// The output's temporary file is made before the input is read; a FIFO with no writer keeps
    /// sprof in open(2) while the signal comes. Every signal that ends sprof removes it.
    func testASignalWhileTheInputIsReadLeavesNoTemporaryFile() throws {
        let cases: [(signal: Int32, command: [String])] = [
            (SIGINT, ["convert", "IN", "--to", "pprof", "-o", "OUT"]), (SIGTERM, ["convert", "IN", "--to", "folded", "-o", "OUT"]),
            (SIGHUP, ["convert", "IN", "--to", "pprof", "-o", "OUT"]), (SIGINT, ["flamegraph", "IN", "-o", "OUT"]),
        ]
        for (sig, template) in cases {
            let dir = (SprofCLI.outputPrefix("signal") as NSString).deletingLastPathComponent
            let fifo = dir + "/in.folded", out = dir + "/out.file"
            XCTAssertEqual(mkfifo(fifo, 0o600), 0)
            let args = template.map { $0 == "IN" ? fifo : $0 == "OUT" ? out : $0 }
            let p = try BackgroundProcess(try TestFixtures.sprofPath(), args)
            // A safety limit for sprof to get as far as its temporary file, not a measurement.
            let deadline = Date().addingTimeInterval(60)
            while hiddenTemporaries(dir).isEmpty && Date() < deadline { usleep(10_000) }
            XCTAssertEqual(hiddenTemporaries(dir).count, 1, "\(args): the temporary file exists while the input is read")
            p.send(sig)
            XCTAssertEqual(p.wait(), 128 + sig, "\(args): sprof ends of the signal, as before: \(p.stderr)")
            XCTAssertEqual(hiddenTemporaries(dir), [], "\(args) ended by signal \(sig) left its temporary file")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args): no output")
        }
    }

    /// A replaced output keeps its mode: a 0754 file (no umask makes one) stays 0754, a 0600 one 0600.
    func testReplacingAnOutputKeepsItsPermissions() throws {
        let dir = (SprofCLI.outputPrefix("mode") as NSString).deletingLastPathComponent
        let input = dir + "/in.folded"
        FileManager.default.createFile(atPath: input, contents: Data("app;main;work 3\napp;main 1\n".utf8))
        for mode in [0o754, 0o600] {
            let out = dir + "/out-\(mode).pb.gz"
            FileManager.default.createFile(atPath: out, contents: Data("old".utf8))
            XCTAssertEqual(chmod(out, mode_t(mode)), 0)
            let r = try SprofCLI.run(["convert", input, "--to", "pprof", "-o", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertNotEqual(FileManager.default.contents(atPath: out), Data("old".utf8), "replaced")
            var st = stat()
            XCTAssertEqual(stat(out, &st), 0)
            XCTAssertEqual(String(st.st_mode & 0o7777, radix: 8), String(mode, radix: 8), "the replaced file's mode is kept")
        }
        // A new file still gets 0666 less the umask.
        let fresh = dir + "/fresh.pb.gz"
        XCTAssertEqual(try SprofCLI.run(["convert", input, "--to", "pprof", "-o", fresh]).status, 0)
        let mask = umask(0)
        umask(mask)
        var st = stat()
        XCTAssertEqual(stat(fresh, &st), 0)
        XCTAssertEqual(st.st_mode & 0o7777, 0o666 & ~mask)
    }
}
