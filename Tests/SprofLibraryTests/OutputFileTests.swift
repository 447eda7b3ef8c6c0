#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// `OutputFile` (SprofCore): an output appears complete or not at all, and a failure never
/// destroys what was at the path.
final class OutputFileTests: XCTestCase {
    private var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-output-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    private func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir).sorted() }
    private func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

    func testNothingAppearsUntilCommitThenTheWholeContent() throws {
        let path = dir + "/p.svg"
        try "old".write(toFile: path, atomically: false, encoding: .utf8)
        let out = try OutputFile(path: path)
        try out.write(Array("new ".utf8))
        XCTAssertEqual(read(path), "old", "the path changed before commit")
        try out.write(Array("content".utf8))
        try out.commit()
        XCTAssertEqual(read(path), "new content")
        XCTAssertEqual(try entries(), ["p.svg"], "the temporary file must be gone")
    }

    func testDroppedOrDiscardedOutputsLeaveThePathAlone() throws {
        let path = dir + "/p.folded"
        try "old".write(toFile: path, atomically: false, encoding: .utf8)
        do {
            let out = try OutputFile(path: path)
            try out.write(Array("partial".utf8))
        }
        let out = try OutputFile(path: path)
        out.discard()
        out.discard()
        XCTAssertEqual(read(path), "old")
        XCTAssertEqual(try entries(), ["p.folded"])
        // A new path is not created by a failed run either.
        do { _ = try OutputFile(path: dir + "/never.svg") }
        XCTAssertEqual(try entries(), ["p.folded"])
    }

    func testUnwritablePathsFailAtOnceWithTheReason() throws {
        try FileManager.default.createDirectory(atPath: dir + "/d.svg", withIntermediateDirectories: false)
        XCTAssertThrowsError(try OutputFile(path: dir + "/d.svg")) { error in
            XCTAssertEqual((error as? OutputFileError)?.errno, EISDIR)
            XCTAssertEqual("\(error)", "cannot write \(dir)/d.svg: Is a directory")
        }
        XCTAssertThrowsError(try OutputFile(path: dir + "/no/such/dir/p.svg")) { error in
            XCTAssertEqual((error as? OutputFileError)?.errno, ENOENT)
        }
        XCTAssertThrowsError(try OutputFile(path: "")) { XCTAssertEqual(($0 as? OutputFileError)?.errno, ENOENT) }
    }

    func testDevicesAreWrittenInPlaceAndSymlinksFollowed() throws {
        let null = try OutputFile(path: "/dev/null")
        try null.commit(Array("x".utf8))
        var st = stat()
        XCTAssertEqual(stat("/dev/null", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR, "/dev/null must stay a device")

        let target = dir + "/target.svg"
        try "old".write(toFile: target, atomically: false, encoding: .utf8)
        XCTAssertEqual(symlink(target, dir + "/link.svg"), 0)
        try OutputFile(path: dir + "/link.svg").commit(Array("new".utf8))
        XCTAssertEqual(read(target), "new")
        XCTAssertEqual(lstat(dir + "/link.svg", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFLNK, "the link must be kept")
    }

    func testNewFilesGetTheUsualModeNotTheTemporarysPrivateOne() throws {
        let path = dir + "/mode.svg"
        try OutputFile(path: path).commit(Array("x".utf8))
        let mask = umask(0o022)
        umask(mask)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o666 & ~mask)
    }

    func testProfileWriteChecksBothPathsBeforeWritingEither() throws {
        let profile = try skippingWhenRefused { try Profiler.profile { workloadSpin(iterations: 200_000) }.profile }
        let folded = dir + "/lib.folded"
        try "old".write(toFile: folded, atomically: false, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: dir + "/lib.svg", withIntermediateDirectories: false)
        XCTAssertThrowsError(try profile.write(folded: folded, svg: dir + "/lib.svg")) { error in
            XCTAssertEqual((error as? OutputFileError)?.errno, EISDIR, "\(error)")
        }
        XCTAssertEqual(read(folded), "old", "the folded file was replaced although the SVG could not be written")
        try profile.write(folded: folded, svg: dir + "/ok.svg")
        XCTAssertNotEqual(read(folded), "old")
        XCTAssertTrue(read(dir + "/ok.svg")?.contains("<svg") == true)
    }

    /// Several outputs are renamed together or not at all (issue 20): a rename that fails after
    /// others succeeded puts the replaced files back, and a file that was not there goes again.
    func testCommitAllReplacesEveryPathOrNone() throws {
        try "old a".write(toFile: dir + "/x.a", atomically: false, encoding: .utf8)
        try "old b".write(toFile: dir + "/x.b", atomically: false, encoding: .utf8)
        let files = try ["a", "b", "new", "c"].map { try OutputFile(path: dir + "/x." + $0) }
        for (file, text) in zip(files, ["new a", "new b", "new", "new c"]) { try file.write(Array(text.utf8)) }
        // A directory gets in the way of the last output after it was checked.
        try FileManager.default.createDirectory(atPath: dir + "/x.c/sub", withIntermediateDirectories: true)
        XCTAssertThrowsError(try OutputFile.commitAll(files)) { error in
            XCTAssertEqual((error as? OutputFileError)?.path, dir + "/x.c")
        }
        XCTAssertEqual(read(dir + "/x.a"), "old a")
        XCTAssertEqual(read(dir + "/x.b"), "old b")
        XCTAssertEqual(try entries(), ["x.a", "x.b", "x.c"], "no new file, no temporary or backup left")

        let again = try ["a", "b"].map { try OutputFile(path: dir + "/x." + $0) }
        for (file, text) in zip(again, ["new a", "new b"]) { try file.write(Array(text.utf8)) }
        try OutputFile.commitAll(again)
        XCTAssertEqual(read(dir + "/x.a"), "new a")
        XCTAssertEqual(read(dir + "/x.b"), "new b")
        XCTAssertEqual(try entries(), ["x.a", "x.b", "x.c"])
    }

    func testArgumentBytesRoundTripEveryByteSequence() {
        let samples: [[UInt8]] = [
            Array("plain ascii".utf8), Array("größe ✓ 🎉".utf8), [0x61, 0xFF, 0x62], [0xC3], [0xED, 0xA0, 0x80],
            [0xF4, 0x8F, 0xBA, 0x80], Array(0...255).map(UInt8.init), [0xE2, 0x82], [0xF0, 0x9F, 0x8E],
        ]
        for bytes in samples {
            XCTAssertEqual(ArgumentBytes.bytes(ArgumentBytes.string(bytes)), bytes, "\(bytes)")
        }
        XCTAssertEqual(ArgumentBytes.string(Array("größe".utf8)), "größe", "valid UTF-8 is left as it is")
        XCTAssertEqual(ArgumentBytes.displayed(ArgumentBytes.string([0x61, 0xFF])), "a\u{FFFD}")
    }
}
