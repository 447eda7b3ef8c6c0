import XCTest
import SprofProfile

/// Bytes that are not UTF-8 in a name (a folded file from another tool) become `\xHH`: decoded as
/// U+FFFD, `f\xff` and `f\xfe` merged into one function (a tester's report).
final class NameBytesTests: XCTestCase {
    private func cleaned(_ bytes: [UInt8]) -> (clean: Bool, text: String) {
        bytes.withUnsafeBufferPointer { raw in
            (NameCleaning.isClean(raw), String(decoding: NameCleaning.isClean(raw) ? Array(raw) : NameCleaning.cleaned(raw), as: UTF8.self))
        }
    }

    func testInvalidBytesAreEscapedAndValidOnesKept() {
        XCTAssertEqual(cleaned(Array("café_ü→𝄞".utf8)).clean, true, "well-formed UTF-8 is left as it is")
        XCTAssertEqual(cleaned([0x66, 0xFF]).text, "f\\xff")
        XCTAssertEqual(cleaned([0x66, 0xFE]).text, "f\\xfe")
        XCTAssertEqual(cleaned([0x66, 0xC0, 0x80]).text, "f\\xc0\\x80", "an overlong NUL")
        XCTAssertEqual(cleaned([0x66, 0xED, 0xA0, 0x80]).text, "f\\xed\\xa0\\x80", "a surrogate")
        XCTAssertEqual(cleaned([0x66, 0xE2, 0x82]).text, "f\\xe2\\x82", "a sequence cut short")
        XCTAssertEqual(cleaned([0xF4, 0x90, 0x80, 0x80]).text, "\\xf4\\x90\\x80\\x80", "past U+10FFFF")
        XCTAssertEqual(cleaned([0xE2, 0x82, 0xAC, 0x3B, 0x80]).text, "€:\\x80", "the other rules still apply")
        // Cleaning what was cleaned changes nothing (folded → profile → folded keeps its lines).
        let once = [0x66, 0xFF, 0x3B, 0x0A].withUnsafeBufferPointer { NameCleaning.cleaned($0) }
        XCTAssertTrue(once.withUnsafeBufferPointer { NameCleaning.isClean($0) })
    }
}
