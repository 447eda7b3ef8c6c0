import XCTest

final class SprofCountingTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
