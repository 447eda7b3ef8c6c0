import Foundation
import SprofFormats
import SprofProfile
import XCTest
@testable import SprofServe

/// The flame trees sent to the page leave out nodes narrower than 1/20,000 of the drawn root
/// (``ProfileViews/FlameTree/drawn(zoom:)``); what is sent must be exact, a zoom must bring the
/// left-out detail back, and the search's matched share is summed over the whole tree.
final class DrawnTreeTests: XCTestCase {
    func randomStacks(_ g: inout SystemRandomNumberGenerator, _ n: Int) -> [(frames: [String], value: Int64)] {
        let alphabet = ["a", "b", "c", "d", "main", "zz"]
        return (0..<n).map { k in
            let frames = (0..<Int.random(in: 1...6, using: &g)).map { _ in alphabet.randomElement(using: &g)! }
            // A few heavy stacks and many light ones: the light ones fall under the cut.
            return (frames, k % 10 == 0 ? Int64.random(in: 50_000...200_000, using: &g) : Int64.random(in: 1...40, using: &g))
        }
    }

    func paths(_ t: ProfileViews.FlameTree, names: [String]) -> [[String]] {
        var out: [[String]] = []
        for i in t.parent.indices {
            let p = Int(t.parent[i])
            out.append((p >= 0 ? out[p] : []) + [names[Int(t.name[i])]])
        }
        return out
    }

    /// A tree's JSON (written by hand, ``ProfileViews/FlameTree/jsonBytes()``) reads back as the
    /// tree: every number, the extremes and negative base values included, and escaped names.
    func testTreeJSONReadsBackAsTheTree() throws {
        var g = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let n = Int.random(in: 0...300, using: &g)
            let extremes: [Int64] = [0, 1, 9, 10, -1, -10, Int64.max, Int64.min, 1_000_000_007]
            func number() -> Int64 { Bool.random(using: &g) ? extremes.randomElement(using: &g)! : Int64.random(in: Int64.min...Int64.max, using: &g) }
            let tree = ProfileViews.FlameTree(unit: "samples", total: number(), names: ["a\"b", "<c>&\\", "é\n"],
                                              parent: (0..<n).map { i in i == 0 ? -1 : Int32.random(in: -1..<Int32(i), using: &g) },
                                              name: (0..<n).map { _ in Int32.random(in: 0..<3, using: &g) }, value: (0..<n).map { _ in number() },
                                              base: Bool.random(using: &g) ? (0..<n).map { _ in number() } : nil)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(tree.jsonBytes())) as? [String: Any])
            func int64s(_ key: String) -> [Int64]? { (object[key] as? [NSNumber])?.map(\.int64Value) }
            XCTAssertEqual(object["names"] as? [String], tree.names)
            XCTAssertEqual((object["total"] as? NSNumber)?.int64Value, tree.total)
            XCTAssertEqual(int64s("parent"), tree.parent.map(Int64.init))
            XCTAssertEqual(int64s("name"), tree.name.map(Int64.init))
            XCTAssertEqual(int64s("value"), tree.value)
            XCTAssertEqual(int64s("base"), tree.base)
        }
    }

    func testDrawnTreeKeepsExactTotalsAndZoomBringsDetailBack() throws {
        var g = SystemRandomNumberGenerator()
        for round in 0..<20 {
            let new = randomStacks(&g, 300)
            let tree = ProfileViews.flameTree(new, unit: "samples", base: round % 2 == 0 ? randomStacks(&g, 200) : nil)
            let full = paths(tree, names: tree.names)
            var byPath: [[String]: Int] = [:]
            for (i, p) in full.enumerated() { byPath[p] = i }
            func big(_ i: Int, _ cut: Int64) -> Bool { tree.value[i] >= cut || (tree.base?[i] ?? 0) >= cut }

            let drawn = try XCTUnwrap(tree.drawn())
            let rootTotal = max(tree.total, tree.base.map { b in tree.parent.indices.filter { tree.parent[$0] < 0 }.reduce(Int64(0)) { $0 + b[$1] } } ?? 0)
            let cut = max(1, rootTotal / ProfileViews.FlameTree.drawnFraction)
            XCTAssertEqual(drawn.names, tree.names, "the whole names table: a zoom's subtree uses it")
            let sent = paths(drawn, names: drawn.names)
            XCTAssertEqual(sent.count + (drawn.pruned ?? -1), tree.parent.count)
            XCTAssertGreaterThan(drawn.pruned ?? 0, 0, "round \(round): light stacks are left out")
            XCTAssertEqual(Set(sent), Set(full.indices.filter { big($0, cut) }.map { full[$0] }), "exactly the nodes at the cut or above")
            for (k, p) in sent.enumerated() {
                let i = try XCTUnwrap(byPath[p])
                XCTAssertEqual(drawn.value[k], tree.value[i], "exact total of \(p)")
                XCTAssertEqual(drawn.base?[k], tree.base?[i])
            }
            XCTAssertEqual(drawn.total, tree.total)

            // A zoom into a node left out of the drawn tree's detail: its subtree, cut relative to it.
            let node = try XCTUnwrap(full.indices.filter { big($0, cut) && tree.value[$0] < tree.total / 50 && tree.value[$0] > 0 }.randomElement(using: &g) ?? full.indices.first)
            let zoomPath = full[node].map { name in Int32(tree.names.firstIndex(of: name)!) }
            let sub = try XCTUnwrap(tree.drawn(zoom: zoomPath))
            XCTAssertEqual(sub.subtree, true)
            XCTAssertEqual(sub.names, [])
            XCTAssertEqual(sub.parent.first, -1)
            XCTAssertEqual(sub.value.first, tree.value[node])
            let subCut = max(1, max(tree.value[node], tree.base?[node] ?? 0) / ProfileViews.FlameTree.drawnFraction)
            let subPaths = paths(sub, names: tree.names).map { full[node].dropLast() + $0 }
            let want = full.indices.filter { full[$0].starts(with: full[node]) && ($0 == node || big($0, subCut)) }.map { full[$0] }
            XCTAssertEqual(Set(subPaths), Set(want))
            XCTAssertEqual(subPaths.count, want.count)
            XCTAssertNil(tree.drawn(zoom: [Int32(tree.names.count + 5)]), "no such node")

            // The matched share: every positive stack with a matched name, once.
            let mask = tree.names.map { _ in Bool.random(using: &g) }
            let matched = Set(tree.names.indices.filter { mask[$0] }.map { tree.names[$0] })
            let wantMatched = new.filter { $0.value > 0 && $0.frames.contains(where: matched.contains) }.reduce(Int64(0)) { $0 + $1.value }
            XCTAssertEqual(tree.matched(mask), wantMatched)
        }
    }
}

/// A run is read, named, drawn and its timeline read ahead of the first click.
final class PrepareAheadTests: XCTestCase {
    func testPrepareMakesTheFirstViewAndReadsTheTimeline() async throws {
        let dir = try TimelineFixture.writeRun("prepare")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = TimelineFixture.profile()
        let cache = ProfileCache()
        let before = await cache.made(dir)
        XCTAssertEqual(before, [])
        await ProfileCache.prepare(cache, dir)
        let after = await cache.made(dir)
        XCTAssertEqual(after, ["profile", "stacks", "cpu", "top", "timeline"])
        // The timeline, read on a thread of its own, is there and indexed for a range.
        let timed = try await cache.timeline(dir).timed
        XCTAssertEqual(timed?.count, p.timedSamples.count)
        let cut = try await cache.restricted(dir, TimeRange(from: 0, to: UInt64.max))
        XCTAssertEqual(cut.total(0), p.total(0))
        // What the click then gets is the view a request makes.
        let view = try await cache.view(dir, key: ServeApp.viewKey(view: "cpu")) { _ in Data() }
        let tree = try XCTUnwrap(JSONSerialization.jsonObject(with: view) as? [String: Any])
        XCTAssertEqual(tree["total"] as? Int, 10)
        // A directory without a profile prepares nothing and does not throw.
        await ProfileCache.prepare(cache, dir + "/missing")
        let missing = await cache.made(dir + "/missing")
        XCTAssertEqual(missing, [])
    }
}
