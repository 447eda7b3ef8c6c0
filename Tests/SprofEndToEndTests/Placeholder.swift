import XCTest

final class SprofEndToEndTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
