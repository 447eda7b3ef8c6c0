import Foundation
import XCTest
import SprofTestSupport

/// Code whose file is gone: a program that deletes its own executable is still named and unwound
/// (through /proc/PID/map_files and /proc/PID/exe while it runs), and nothing is a bare `[unknown]`.
final class DeletedFilesTests: XCTestCase {
    override func setUpWithError() throws {
        try SprofCLI.requirePerfEvents()
    }

    func testDeletedExecutableIsNamedAndUnwound() throws {
        let built = try TestFixtures.buildC("self_delete", flags: TestFixtures.noFramePointerFlags)
        // A copy of its own: the fixture deletes the file it runs from.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-deleted-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let victim = dir.appendingPathComponent("victim").path
        try FileManager.default.copyItem(atPath: built, toPath: victim)
        let prefix = SprofCLI.outputPrefix("deleted")
        let result = try SprofCLI.run(["run", "-o", prefix, "--", victim, "400"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: victim), "the fixture did not delete itself")
        let shape = try ProfileShape(foldedFile: prefix + ".folded")
        let inSpin = shape.samples(containing: "spin_deleted")
        XCTAssertGreaterThan(inSpin, 100, "frames of the deleted file are not named: \(shape.stacks.prefix(3).map(\.frames))")
        XCTAssertGreaterThanOrEqual(Double(shape.samples(withChain: ["main", "run_deleted", "spin_deleted"])), 0.95 * Double(inSpin))
        XCTAssertLessThanOrEqual(Double(shape.samples(containing: "[truncated]")), 0.05 * Double(shape.total))
        XCTAssertEqual(shape.samples(containing: "[unknown]"), 0)
    }
}
