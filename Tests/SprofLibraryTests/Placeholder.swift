import XCTest

final class SprofLibraryTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
