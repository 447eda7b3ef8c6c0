#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Sprof
import SprofTestSupport

/// The library's `offCPU` option and the memory timeline file format.
final class OffCPULibraryTests: XCTestCase {
    @inline(never)
    func sleepTenTimes() {
        for _ in 0..<10 { usleep(20_000) }
    }

    func testSelfProfileSeesItsOwnSleep() throws {
        var options = Profiler.Options(callGraph: .dwarf(stackSize: 8192))
        options.offCPU = true
        let profile: Profile
        do {
            (_, profile) = try skippingWhenRefused { try Profiler.profile(options: options) { sleepTenTimes() } }
        } catch let error as SprofError {
            throw XCTSkip("off-CPU recording refused here: \(error)")
        }
        let off = try XCTUnwrap(profile.sampleTypeIndex("off-cpu"))
        let sleeping = profile.aggregatedStacks(valueIndex: off).filter { stack in
            stack.frames.contains { $0.contains("sleepTenTimes") } && stack.frames.last == "[off-cpu: sleeping]"
        }.reduce(Int64(0)) { $0 + $1.value }
        // Ten sleeps of 20 ms: at least 150 ms of it is found under the sleeping function.
        XCTAssertGreaterThan(sleeping, 150_000_000, profile.aggregatedStacks(valueIndex: off).map { "\($0)" }.joined(separator: "\n"))
    }

    func testMemoryTimelineRoundTripAndPeaks() throws {
        let points = [
            Profile.MemoryPoint(time: 0, pid: 7, rss: 4096, anonymous: 1024, file: 3072),
            Profile.MemoryPoint(time: 0, pid: 9, rss: 100, anonymous: 100, file: 0),
            Profile.MemoryPoint(time: 40_000_000, pid: 7, rss: 8192, anonymous: 5120, file: 3072),
            Profile.MemoryPoint(time: 80_000_000, pid: 7, rss: 2048, anonymous: 0, file: 2048),
        ]
        let text = MemoryTimeline.text(points, names: [7: "big one", 9: "small"])
        XCTAssertTrue(text.hasPrefix(MemoryTimeline.header + "\n"))
        let (back, names) = try MemoryTimeline.parse(text)
        XCTAssertEqual(back, points)
        XCTAssertEqual(names, [7: "big one", 9: "small"])
        XCTAssertEqual(MemoryTimeline.peaks(points).map(\.pid), [7, 9])
        XCTAssertEqual(MemoryTimeline.peaks(points).first?.rss, 8192)
        XCTAssertEqual(MemoryTimeline.totals(points, buckets: 2).map(\.rss), [4096 + 100, 8192 + 100]) // the largest total in each half
        XCTAssertThrowsError(try MemoryTimeline.parse("time pid\n1 2 3\n"))
        XCTAssertThrowsError(try MemoryTimeline.parse(MemoryTimeline.header + "\n1\t2\tx\t4\t5\n")) { error in
            XCTAssertTrue("\(error)".contains("line 2"), "\(error)")
        }
    }
}
