import XCTest

final class SprofSymbolsTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
