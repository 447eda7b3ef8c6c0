import XCTest
@testable import SprofOutput

/// Inputs fuzz/FuzzFolded found (fuzz/README.md): parse → serialize → parse must be stable.
final class FuzzFoldedRegressionTests: XCTestCase {
    private func roundTrip(_ input: [UInt8], file: StaticString = #filePath, line: UInt = #line) throws {
        let once = try FoldedStacks.parse(bytes: input, source: "t").serializedBytes()
        let twice = try FoldedStacks.parse(bytes: once, source: "again").serializedBytes()
        XCTAssertEqual(twice, once, "\(once) → \(twice)", file: file, line: line)
    }

    func testNULPaddingBOMAndInvalidUTF8InOneLine() throws {
        // FuzzFolded-crash-419b5ac2…: 121 NULs, a BOM inside the line, an invalid sequence.
        let input = [UInt8](repeating: 0, count: 121) + [0xEF, 0xBB, 0xBF] + Array("mai".utf8)
            + [0xC4, 0, 0, 0] + Array("_s".utf8) + [0xC5, 0x85] + Array(" 11.0\n".utf8)
        try roundTrip(input)
    }
}
