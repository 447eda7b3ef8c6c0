import XCTest
@testable import SprofServe

/// Query strings as forms encode them: a client that writes a space as `+` (curl's
/// `--data-urlencode`, Python's requests) asked for `copy<[u8;+32]>`, which no sample has.
final class FormQueryTests: XCTestCase {
    func testPlusIsASpaceAndAnEscapedPlusStaysAPlus() {
        let q = FormQuery("fn=copy%3C%5Bu8%3B+32%5D%3E&fn=operator%2B&tf=focus%3Aa&tf=ignore%3Ab&empty=&bare")
        XCTAssertEqual(q.get("fn").map(String.init), "copy<[u8; 32]>")
        XCTAssertEqual(q.getAll("fn").map(String.init), ["copy<[u8; 32]>", "operator+"])
        XCTAssertEqual(q.getAll("tf").map(String.init), ["focus:a", "ignore:b"])
        XCTAssertEqual(q.get("empty").map(String.init), "")
        XCTAssertEqual(q.get("bare").map(String.init), "")
        XCTAssertNil(q.get("missing"))
        XCTAssertNil(FormQuery(nil).get("fn"))
    }
}
