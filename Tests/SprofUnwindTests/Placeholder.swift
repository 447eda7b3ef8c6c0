import XCTest

final class SprofUnwindTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
