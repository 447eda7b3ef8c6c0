import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `sprof diff --artifacts DIR` never replaces an input: each file of the layout is checked
/// against both inputs (same device and inode, so also through a link), as `-o` is.
final class ArtifactsOverInputTests: XCTestCase {
    private func hiddenTemporaries(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.contains(".sprof-") }.sorted()
    }

    /// `diff --artifacts DIR --name N` refuses, status 2, an input that is one of the files it
    /// would write (by name, or through a symbolic link), before writing anything.
    func testArtifactsThatAreAnInputAreRefused() throws {
        let dir = (SprofCLI.outputPrefix("artifacts") as NSString).deletingLastPathComponent
        let base = dir + "/base.folded"
        FileManager.default.createFile(atPath: base, contents: Data("app;main;work 3\napp;main 1\n".utf8))
        try FileManager.default.createDirectory(atPath: dir + "/out/flamegraphs", withIntermediateDirectories: true)
        let newText = "app;main;work 1\napp;main 3\n"
        for victim in ["/out/ci_cpu_top.txt", "/out/ci_cpu_diff_top.txt", "/out/flamegraphs/ci_cpu.svg"] {
            FileManager.default.createFile(atPath: dir + victim, contents: Data(newText.utf8))
            let link = dir + "/link.folded"
            try? FileManager.default.removeItem(atPath: link)
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: dir + victim)
            for input in [dir + victim, link] {
                let r = try SprofCLI.run(["diff", base, input, "--artifacts", dir + "/out", "--name", "ci"])
                XCTAssertEqual(r.status, 2, "\(input): \(r.stdout)\(r.stderr)")
                XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
                XCTAssertTrue(r.stderr.contains("--artifacts ") && r.stderr.contains("is the input file"), r.stderr)
                XCTAssertEqual(String(decoding: FileManager.default.contents(atPath: dir + victim) ?? Data(), as: UTF8.self), newText,
                               "\(victim) is kept")
                XCTAssertEqual(hiddenTemporaries(dir + "/out") + hiddenTemporaries(dir + "/out/flamegraphs"), [])
            }
            try FileManager.default.removeItem(atPath: dir + victim)
        }
        // A base that is an artifact is refused too; other names are written.
        FileManager.default.createFile(atPath: dir + "/out/ci_cpu_top.txt", contents: Data(newText.utf8))
        let r = try SprofCLI.run(["diff", dir + "/out/ci_cpu_top.txt", base, "--artifacts", dir + "/out", "--name", "ci"])
        XCTAssertEqual(r.status, 2, r.stderr)
        let ok = try SprofCLI.run(["diff", dir + "/out/ci_cpu_top.txt", base, "--artifacts", dir + "/out", "--name", "other"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
    }
}
