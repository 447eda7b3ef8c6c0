import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// What writing an output must not do to the files around it: reset the permissions of the file
/// it replaces.
final class OutputFileSafetyTests: XCTestCase {
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
