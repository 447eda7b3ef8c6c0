import Foundation
import SprofProfile
import XCTest
@testable import SprofFormats

/// A pprof file keeps, as pprof does, the name views show (`name`, unique in the profile) and the
/// linkage name (`system_name`); the model it was written from keeps its own names unchanged.
final class PprofNamesTests: XCTestCase {
    func testCollidingShortNamesAreWrittenToldApartWithTheirLinkageNames() throws {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let short = "specialized Array.append(_:)"
        let thread = b.thread(.init(pid: 1, tid: 1, name: "app", processName: "app"))
        let int = b.function(.init(name: short, fullName: "generic specialization <Swift.Int> of Swift.Array.append(__owned A) -> ()",
                                   systemName: "$sSa6appendyyxnFSi_Tg5"))
        let double = b.function(.init(name: short, fullName: "generic specialization <Swift.Double> of Swift.Array.append(__owned A) -> ()",
                                      systemName: "$sSa6appendyyxnFSd_Tg5"))
        for (i, f) in [int, double].enumerated() {
            b.add(stack: b.stack([b.location(.init(address: 0x10 + UInt64(i), lines: [.init(function: f)]))]), thread: thread, values: [1])
        }
        let profile = b.build(metadata: .init())
        XCTAssertEqual(profile.functions.map(\.name), [short, short], "the model is not rewritten")

        let bytes = try PprofFormat.encode(profile)
        let read = try PprofFormat.decode(bytes)
        XCTAssertEqual(read.functions.map(\.name), ["specialized Array.append(_:) <Int>", "specialized Array.append(_:) <Double>"])
        XCTAssertEqual(read.functions.map(\.systemName), ["$sSa6appendyyxnFSi_Tg5", "$sSa6appendyyxnFSd_Tg5"])
        XCTAssertEqual(try PprofFormat.encode(read), bytes, "read back, the names write the same bytes")
        XCTAssertEqual(read.top(), profile.top(), "the saved profile's views show the same names")

        // speedscope names frames as the other views do.
        let speedscope = String(decoding: SpeedscopeFormat.encode(profile, valueIndex: 0, name: "t"), as: UTF8.self)
        XCTAssertTrue(speedscope.contains("\"specialized Array.append(_:) <Double>\""), speedscope)
    }
}
