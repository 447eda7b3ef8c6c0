import XCTest
import SprofProfile

/// Stack transforms (focus, subtree, ignore, merge, collapse recursion, thread and process):
/// what each does to the folded stacks and to the totals of `top`, and their text form.
final class TransformTests: XCTestCase {
    private func folded(_ lines: [(String, Int64)]) -> Profile {
        Profile(folded: lines.map { (frames: $0.0.split(separator: ";").map(String.init), count: $0.1) })
    }

    private func stacks(_ p: Profile) -> [String: Int64] {
        Dictionary(p.aggregatedStacks().map { ($0.frames.joined(separator: ";"), $0.value) }, uniquingKeysWith: +)
    }

    private let lines: [(String, Int64)] = [
        ("app;main;parse;lex", 6), ("app;main;parse", 2), ("app;main;render;lex", 3),
        ("app;main;f;g;f;h", 4), ("app;main;work;hot_[i];hotter_[i]", 5),
    ]

    func testFocusFunctionKeepsItsSamplesWithItAsTheRoot() throws {
        let p = folded(lines)
        let lexTotal = p.top().first { $0.name == "lex" }!.totalValue
        let t = p.transformed([try StackTransform(parsing: "focus:lex")])
        XCTAssertEqual(t.total(), lexTotal)
        XCTAssertEqual(stacks(t), ["app;lex": 9])
        // An inlined function: its outer entries go, the location keeps the inner ones.
        XCTAssertEqual(stacks(p.transformed([.focusFunction("hot")])), ["app;hot;hotter_[i]": 5])
    }

    func testFocusSubtreeKeepsOnePath() {
        let t = folded(lines).transformed([.focusSubtree(["main", "parse"])])
        XCTAssertEqual(stacks(t), ["app;parse;lex": 6, "app;parse": 2])
    }

    func testIgnoreDropsTheSamplesWithTheFunction() {
        let p = folded(lines)
        let parse = p.top().first { $0.name == "parse" }!.totalValue
        let t = p.transformed([.ignore("parse")])
        XCTAssertEqual(t.total(), p.total() - parse)
        XCTAssertNil(t.top().first { $0.name == "parse" })
    }

    func testMergeGivesTheSelfToTheCallers() {
        let p = folded(lines)
        let t = p.transformed([.merge("lex")])
        XCTAssertEqual(t.total(), p.total())
        XCTAssertNil(t.top().first { $0.name == "lex" })
        XCTAssertEqual(t.top().first { $0.name == "parse" }!.selfValue, 8)
        XCTAssertEqual(t.top().first { $0.name == "render" }!.selfValue, 3)
        // Merging the middle of an inline chain leaves the rest one location.
        XCTAssertEqual(stacks(p.transformed([.merge("hot")]))["app;main;work;hotter_[i]"], 5)
    }

    func testCollapseRecursionKeepsTheOutermostCall() {
        let p = folded(lines)
        let t = p.transformed([.collapseRecursion("f")])
        XCTAssertEqual(stacks(t)["app;main;f;h"], 4)
        XCTAssertEqual(t.top().first { $0.name == "f" }!.totalValue, p.top().first { $0.name == "f" }!.totalValue)
        XCTAssertNil(t.top().first { $0.name == "g" })
    }

    func testThreadAndProcessSelectSamples() {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let f = b.function(named: "work")
        let stack = b.stack([b.location(.init(address: 1, lines: [.init(function: f)]))])
        b.add(stack: stack, thread: b.thread(.init(pid: 10, tid: 10, name: "a", processName: "a")), values: [3])
        b.add(stack: stack, thread: b.thread(.init(pid: 10, tid: 11, name: "b", processName: "a")), values: [4])
        b.add(stack: stack, thread: b.thread(.init(pid: 20, tid: 20, name: "c", processName: "c")), values: [5])
        var p = b.build(metadata: .init())
        p.timedSamples = [.init(thread: 0, time: 1, cpu: 0, stack: stack), .init(thread: 2, time: 2, cpu: 0, stack: stack)]
        XCTAssertEqual(p.transformed([.thread(11)]).total(), 4)
        XCTAssertEqual(p.transformed([.process(10)]).total(), 7)
        XCTAssertEqual(p.transformed([.process(10)]).timedSamples.map(\.time), [1])
        XCTAssertEqual(p.transformed([.process(10), .thread(20)]).total(), 0)
    }

    func testTransformsApplyInOrder() {
        let p = folded(lines)
        // Merge main, then focus on the subtree that now starts at parse.
        XCTAssertEqual(stacks(p.transformed([.merge("main"), .focusSubtree(["parse"])])), ["app;parse;lex": 6, "app;parse": 2])
        XCTAssertEqual(p.transformed([]), p)
    }

    func testTextForm() throws {
        for text in ["focus:a b", "subtree:main;parse", "ignore:x", "merge:[libc.so.6+0x10]", "rec:f", "tid:5", "pid:7"] {
            XCTAssertEqual(try StackTransform(parsing: text).description, text)
        }
        // A frame's folded name names its function (flame graphs and callers show the suffix).
        XCTAssertEqual(try StackTransform(parsing: "focus:schedule_[k]"), .focusFunction("schedule"))
        XCTAssertEqual(try StackTransform(parsing: "merge:inl_[i]"), .merge("inl"))
        XCTAssertEqual(try StackTransform(parsing: "subtree:main;vfs_read_[k]"), .focusSubtree(["main", "vfs_read"]))
        XCTAssertEqual(try StackTransform(parsing: "ignore:[w]"), .ignore("[w]"))
        for bad in ["focus", "focus:", "tid:x", "zoom:main"] {
            XCTAssertThrowsError(try StackTransform(parsing: bad), bad)
        }
    }
}
