import XCTest
@testable import SprofOutput

/// Every byte sequence in folded input becomes well-formed XML in the SVG (issue 12): invalid
/// UTF-8 is never copied through. Folded parsing shows each such byte as `\xHH` (NameCleaning,
/// so that names differing only there stay apart); what is UTF-8 but not XML (U+FFFF) becomes
/// U+FFFD in the SVG, as does invalid UTF-8 that reaches the escaper some other way.
final class EscapingTests: XCTestCase {
    private func svg(_ folded: [UInt8]) throws -> [UInt8] {
        FlameGraph.renderBytes(try FoldedStacks.parse(bytes: folded, source: "t"), options: FlameGraphOptions())
    }

    func testInvalidUTF8InFrameNamesGivesValidUTF8() throws {
        let inputs: [([UInt8], String)] = [
            (Array("main;bad".utf8) + [0xFF, 0xFE] + Array(" 4\n".utf8), "bad\\xff\\xfe"),
            (Array("main;".utf8) + [0xC3] + Array(" 1\n".utf8), "\\xc3"),                                 // truncated sequence
            (Array("main;".utf8) + [0xED, 0xA0, 0x80] + Array(" 1\n".utf8), "\\xed\\xa0\\x80"),           // a surrogate
            (Array("main;".utf8) + [0xC0, 0xAF] + Array(" 1\n".utf8), "\\xc0\\xaf"),                       // overlong '/'
            (Array("main;".utf8) + [0xF4, 0x90, 0x80, 0x80] + Array(" 1\n".utf8), "\\xf4\\x90\\x80\\x80"), // past U+10FFFF
            (Array("main;".utf8) + [0xEF, 0xBF, 0xBF] + Array(" 1\n".utf8), "\u{FFFD}"),                     // U+FFFF, not XML
        ]
        for (input, shown) in inputs {
            let out = try svg(input)
            XCTAssertNotNil(String(validating: out, as: UTF8.self), "not UTF-8 for \(input)")
            XCTAssertTrue(String(decoding: out, as: UTF8.self).contains(shown), "\(shown) not shown for \(input)")
        }
    }

    func testValidMultibyteNamesAreKept() throws {
        let out = String(decoding: try svg(Array("main;größe;✓;🎉 3\n".utf8)), as: UTF8.self)
        for name in ["größe", "✓", "🎉"] { XCTAssertTrue(out.contains(name), name) }
        XCTAssertFalse(out.contains("\u{FFFD}"))
    }

    func testAppendEscapedMatchesSwiftsDecoderOnEveryTwoByteSequence() {
        // U+FFFD per maximal invalid prefix, as String(decoding:) does, for all 2-byte inputs.
        for a in 0x80...0xFF {
            for b in [0x00, 0x41, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF] {
                let bytes: [UInt8] = [UInt8(a), UInt8(b)]
                var out: [UInt8] = []
                bytes.withUnsafeBufferPointer { out.appendEscaped($0) }
                XCTAssertNotNil(String(validating: out, as: UTF8.self), "\(bytes)")
            }
        }
    }
}
