import Foundation
import SprofOutput
import XCTest

/// Compares rendered output with files checked in under `Fixtures/`.
/// `SPROF_BLESS=1 swift test --filter SprofOutputTests` rewrites the goldens instead, and fails every
/// test it rewrote, so that bless mode can never pass (see Fixtures/README.md).
final class GoldenTests: XCTestCase {
    /// The source tree's fixture directory (not the bundle copy), so that blessing edits the checked-in files.
    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    private static let blessing = ProcessInfo.processInfo.environment["SPROF_BLESS"] == "1"

    private func check(_ actual: [UInt8], golden name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = Self.fixtures.appendingPathComponent(name)
        if Self.blessing {
            // Bless mode rewrites the golden and still fails: a stray SPROF_BLESS in CI or a shell
            // must never turn a real difference into a pass.
            let changed = FileManager.default.contents(atPath: url.path).map { [UInt8]($0) != actual } ?? true
            try Data(actual).write(to: url)
            let message = "SPROF_BLESS=1: rewrote \(name) (\(changed ? "CHANGED" : "unchanged")); "
                + "review `git diff Tests/SprofOutputTests/Fixtures`, then run again without SPROF_BLESS (bless mode always fails)"
            print("warning: " + message)
            XCTFail(message, file: file, line: line)
            return
        }
        guard let expected = FileManager.default.contents(atPath: url.path) else {
            XCTFail("missing golden \(name): run with SPROF_BLESS=1 to create it", file: file, line: line)
            return
        }
        if [UInt8](expected) != actual {
            let actualText = String(decoding: actual, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let expectedText = String(decoding: expected, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let firstDiff = zip(actualText, expectedText).enumerated().first { $0.element.0 != $0.element.1 }
            let where_ = firstDiff.map { "line \($0.offset + 1):\n  expected: \($0.element.1)\n  actual:   \($0.element.0)" }
                ?? "lengths differ (\(expectedText.count) vs \(actualText.count) lines)"
            XCTFail("\(name) differs from its golden at \(where_)\n(SPROF_BLESS=1 rewrites goldens after a deliberate change)",
                    file: file, line: line)
        }
    }

    private func input(_ name: String) throws -> FoldedStacks {
        let url = Self.fixtures.appendingPathComponent(name)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: url.path), "missing fixture \(name)")
        return try FoldedStacks.parse(bytes: [UInt8](bytes), source: name)
    }

    func testSimple() throws {
        let s = try input("simple.folded")
        try check(s.serializedBytes(), golden: "simple.expected.folded")
        try check(FlameGraph.renderBytes(s), golden: "simple.expected.svg")
        try check(FlameGraph.renderBytes(s, options: FlameGraphOptions(inverted: true)),
                  golden: "simple.inverted.expected.svg")
    }

    func testKindsAndHostileNames() throws {
        let s = try input("kinds.folded")
        try check(s.serializedBytes(), golden: "kinds.expected.folded")
        let options = FlameGraphOptions(subtitle: "sprof record -- ./server --port 80 · cpu-clock · 1,000 samples · 0 lost",
                                        width: 800, palette: .purple)
        try check(FlameGraph.renderBytes(s, options: options), golden: "kinds.expected.svg")
    }

    func testMessyInputNormalises() throws {
        let s = try input("messy.folded")
        try check(s.serializedBytes(), golden: "messy.expected.folded")
        try check(FlameGraph.renderBytes(s, options: FlameGraphOptions(minWidth: 5, countName: "bytes", palette: .mem)),
                  golden: "messy.expected.svg")
    }

    func testEmpty() throws {
        try check(FlameGraph.renderBytes(FoldedStacks()), golden: "empty.expected.svg")
    }
}
