import XCTest

final class SprofRecordingTestsPlaceholder: XCTestCase {
    func testBuilds() {}
}
