import Foundation
import SprofProfile
import XCTest
@testable import SprofServe

/// The views are made from interned stacks (``InternedStacks``, ``ProfileViews/StackNames``);
/// they must draw exactly what the profile's named stacks (``Profile/aggregatedStacks``) draw.
final class InternedStacksTests: XCTestCase {
    static func randomProfile(_ g: inout SystemRandomNumberGenerator) -> Profile {
        var p = Profile(sampleTypes: [Profile.ValueType(type: "samples", unit: "count")])
        p.mappings = [Profile.Mapping(path: "/usr/lib/libc.so.6")]
        p.functions = (0..<5).map { Profile.Function(name: "f\($0)") }
        let kinds: [FrameKind] = [.user, .user, .kernel, .jit]
        p.locations = (0..<8).map { i in
            Profile.Location(address: UInt64(0x1000 + 16 * i), mapping: i % 3 == 0 ? 0 : nil,
                             lines: (0..<Int.random(in: 0...3, using: &g)).map { _ in Profile.Line(function: Int.random(in: 0..<5, using: &g)) },
                             kind: kinds.randomElement(using: &g)!)
        }
        p.stacks = (0..<10).map { _ in (0..<Int.random(in: 0...5, using: &g)).map { _ in Int.random(in: 0..<8, using: &g) } }
        p.threads = [Profile.Thread(pid: 1, tid: 1, name: "app", processName: "my app"),
                     Profile.Thread(pid: 1, tid: 2, name: "worker", processName: "my app"),
                     Profile.Thread(pid: 2, tid: 2, name: "x", processName: "")]
        p.samples = (0..<20).map { _ in
            Profile.Sample(stack: Int.random(in: 0..<10, using: &g), thread: Bool.random(using: &g) ? Int.random(in: 0...2, using: &g) : nil,
                           values: [Int64.random(in: 0...9, using: &g)])  // counts: never negative
        }
        return p
    }

    func testInternedStacksDrawWhatNamedStacksDraw() throws {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let p = Self.randomProfile(&g)
            let named = p.aggregatedStacks(sorted: false)
            let interned = ProfileViews.cpuStacks(p)
            XCTAssertEqual(ProfileViews.flameTree(interned, unit: "samples").jsonBytes(),
                           ProfileViews.flameTree(named, unit: "samples").jsonBytes())
            XCTAssertEqual(ProfileViews.invertedTree(interned, unit: "samples").jsonBytes(),
                           ProfileViews.invertedTree(named, unit: "samples").jsonBytes())
            // Against another profile's stacks as the base: names from two tables.
            let other = ProfileViews.cpuStacks(Self.randomProfile(&g))
            XCTAssertEqual(ProfileViews.flameTree(interned, unit: "samples", base: other).jsonBytes(),
                           ProfileViews.flameTree(named, unit: "samples", base: other.named).jsonBytes())
            for function in ["f0", "f1_[k]", "f2_[i]"] {
                XCTAssertEqual(try JSON.encode(ProfileViews.callersCallees(interned.named, function: function, unit: "samples")),
                               try JSON.encode(ProfileViews.callersCallees(named, function: function, unit: "samples")))
            }
            // A cut of the profile, named with the whole profile's names (it shares the stacks).
            var cut = p
            cut.samples = p.samples.filter { _ in Bool.random(using: &g) }
            XCTAssertEqual(ProfileViews.flameTree(ProfileViews.cpuStacks(cut, names: ProfileViews.StackNames(p)), unit: "samples").jsonBytes(),
                           ProfileViews.flameTree(cut.aggregatedStacks(sorted: false), unit: "samples").jsonBytes())
        }
    }
}
