import XCTest

final class SprofOutputTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
