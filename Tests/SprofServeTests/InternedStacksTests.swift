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

    /// A transform rewrites the interned stacks (``ProfileViews/cpuStacks(_:names:transforms:)``)
    /// into what the transformed profile's stacks draw, inline chains cut in the middle included.
    func testTransformsOnInternedStacksDrawWhatTheTransformedProfileDraws() throws {
        var g = SystemRandomNumberGenerator()
        let functions = ["f0", "f1", "f2", "f3", "f4", "[libc.so.6+0x1000]", "[unknown+0x1010]", "absent"]
        func random() -> StackTransform {
            let f = functions.randomElement(using: &g)!
            switch Int.random(in: 0..<7, using: &g) {
            case 0: return .focusFunction(f)
            case 1: return .focusSubtree((0..<Int.random(in: 1...2, using: &g)).map { _ in functions.randomElement(using: &g)! })
            case 2: return .ignore(f)
            case 3: return .merge(f)
            case 4: return .collapseRecursion(f)
            case 5: return .thread(Int32.random(in: 1...2, using: &g))
            default: return .process(Int32.random(in: 1...2, using: &g))
            }
        }
        var rewritten = 0
        for _ in 0..<300 {
            let p = Self.randomProfile(&g)
            let tf = (0..<Int.random(in: 1...3, using: &g)).map { _ in random() }
            let names = ProfileViews.StackNames(p)
            let fast = ProfileViews.cpuStacks(p, names: names, transforms: tf)
            let slow = ProfileViews.cpuStacks(p.transformed(tf))
            XCTAssertEqual(ProfileViews.flameTree(fast, unit: "samples").jsonBytes(),
                           ProfileViews.flameTree(slow, unit: "samples").jsonBytes(), "\(tf)")
            if !Set(fast.names).isSubset(of: ProfileViews.cpuStacks(p, names: names).names) { rewritten += 1 }
            // A cut of the profile (a time range) with the whole profile's names.
            var cut = p
            cut.samples = p.samples.filter { _ in Bool.random(using: &g) }
            XCTAssertEqual(ProfileViews.flameTree(ProfileViews.cpuStacks(cut, names: names, transforms: tf), unit: "samples").jsonBytes(),
                           ProfileViews.flameTree(ProfileViews.cpuStacks(cut.transformed(tf)), unit: "samples").jsonBytes(), "\(tf)")
        }
        // Some runs cut an inline chain above its outermost entry (a name not in the table before).
        XCTAssertGreaterThan(rewritten, 0)
    }

    /// A time range or transforms that only drop samples (ignore, thread, process) cut the run's
    /// whole tree (``ProfileViews/WholeTree``) rather than build one again: the same tree, byte
    /// for byte, as built from the kept stacks, and the same as the page is sent.
    func testTheWholeTreeCutIsTheTreeOfTheKeptStacks() throws {
        var g = SystemRandomNumberGenerator()
        let functions = ["f0", "f1", "f2", "f3", "f4", "[libc.so.6+0x1000]", "absent"]
        var dropped = 0
        for _ in 0..<300 {
            let p = Self.randomProfile(&g)
            let names = ProfileViews.StackNames(p)
            let whole = try XCTUnwrap(ProfileViews.WholeTree(ProfileViews.cpuStacks(p, names: names), unit: "samples"))
            XCTAssertEqual(whole.tree.jsonBytes(), ProfileViews.flameTree(ProfileViews.cpuStacks(p), unit: "samples").jsonBytes())
            var cut = p
            if Bool.random(using: &g) { cut.samples = p.samples.filter { _ in Bool.random(using: &g) } }
            let tf: [StackTransform] = (0..<Int.random(in: 0...2, using: &g)).map { _ in
                switch Int.random(in: 0..<3, using: &g) {
                case 0: return .ignore(functions.randomElement(using: &g)!)
                case 1: return .thread(Int32.random(in: 1...2, using: &g))
                default: return .process(Int32.random(in: 1...2, using: &g))
                }
            }
            let stacks = ProfileViews.cpuStacks(cut, names: names, transforms: tf)
            let built = ProfileViews.flameTree(stacks, unit: "samples")
            let fromWhole = try XCTUnwrap(whole.tree(of: stacks), "\(tf)")
            XCTAssertEqual(fromWhole.jsonBytes(), built.jsonBytes(), "\(tf)")
            XCTAssertEqual(fromWhole.drawn()?.jsonBytes(), built.drawn()?.jsonBytes(), "\(tf)")
            // From the sums alone (no stack's frames made), as the server cuts it.
            let fromSums = try XCTUnwrap(whole.tree(of: ProfileViews.stackSums(cut, names: names, transforms: tf)), "\(tf)")
            XCTAssertEqual(fromSums.jsonBytes(), built.jsonBytes(), "\(tf)")
            if built.parent.count < whole.tree.parent.count { dropped += 1 }
        }
        XCTAssertGreaterThan(dropped, 0, "some cuts leave nodes out")
        // A transform that rewrites frames: its stacks are not the run's, so they are built anew.
        let p = Self.randomProfile(&g)
        XCTAssertNil(ProfileViews.cpuStacks(p, names: ProfileViews.StackNames(p), transforms: [.merge("f1")]).origins)
        let whole = try XCTUnwrap(ProfileViews.WholeTree(ProfileViews.cpuStacks(p), unit: "samples"))
        XCTAssertNil(whole.tree(of: ProfileViews.stackSums(p, names: ProfileViews.StackNames(p), transforms: [.ignore("f0"), .focusFunction("f1")])))
    }

    /// Compare's differential tree merged from the two sides' trees
    /// (``ProfileViews/FlameTree/differential(new:base:)``) is the tree built from both sides'
    /// stacks, byte for byte: the same nodes, order, names, totals and scaled base values.
    func testDifferentialTreeMergedFromTwoTreesIsTheTreeOfBothSidesStacks() {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let newProfile = Self.randomProfile(&g), baseProfile = Self.randomProfile(&g)
            let new = ProfileViews.cpuStacks(newProfile)
            // Some bases with names the new side lacks (an inline chain cut by a merge).
            let base = Bool.random(using: &g) ? ProfileViews.cpuStacks(baseProfile)
                : ProfileViews.cpuStacks(baseProfile, names: ProfileViews.StackNames(baseProfile), transforms: [.merge("f\(Int.random(in: 0..<5, using: &g))")])
            let built = ProfileViews.flameTree(new, unit: "samples", base: base)
            let merged = ProfileViews.FlameTree.differential(new: ProfileViews.flameTree(new, unit: "samples"),
                                                             base: ProfileViews.flameTree(base, unit: "samples"))
            XCTAssertEqual(String(decoding: merged.jsonBytes(), as: UTF8.self), String(decoding: built.jsonBytes(), as: UTF8.self))
            XCTAssertEqual(merged.drawn()?.jsonBytes(), built.drawn()?.jsonBytes())
        }
    }

    /// A time range cut through the index of timed samples keeps exactly the samples in range.
    func testTimedSamplesCutAsAFilterOfTheTimeline() {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var p = Self.randomProfile(&g)
            p.sampleTypes.append(Profile.ValueType(type: "cpu", unit: "nanoseconds"))
            p.samples = p.samples.filter { $0.thread != nil && $0.values[0] > 0 }.map { var s = $0; s.values.append(s.values[0] * 1000); return s }
            let timed = p.samples.flatMap { s in
                (0..<Int(s.values[0])).map { _ in Profile.TimedSample(thread: s.thread!, time: UInt64.random(in: 0..<100, using: &g), cpu: 0, stack: s.stack) }
            }
            let index = ProfileViews.TimedSamples(p, timed: timed)
            let from = UInt64.random(in: 0..<100, using: &g), to = from + UInt64.random(in: 1...100, using: &g)
            let cut = index.restrict(p, to: TimeRange(from: from, to: to))
            var want: [String: Int64] = [:]
            for t in timed where t.time >= from && t.time < to { want["\(t.stack)/\(t.thread)", default: 0] += 1 }
            var got: [String: Int64] = [:]
            for s in cut.samples { got["\(s.stack)/\(s.thread!)", default: 0] += s.values[0]; XCTAssertEqual(s.values[1], s.values[0] * 1000) }
            XCTAssertEqual(got, want)
            XCTAssertEqual(cut.samples.map { [$0.thread!, $0.stack] }, cut.samples.map { [$0.thread!, $0.stack] }.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }
}
