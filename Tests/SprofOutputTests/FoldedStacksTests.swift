@testable import SprofOutput
import SprofProfile
import XCTest

final class FoldedStacksTests: XCTestCase {
    func testAggregatesRepeatedStacks() {
        var s = FoldedStacks()
        s.add(["app", "main", "work"])
        s.add(["app", "main", "work"], count: 4)
        s.add(["app", "main"], count: 2)
        s.add(["app", "main", "idle"], count: 0)  // zero adds nothing
        s.add([], count: 7)  // empty stack adds nothing
        XCTAssertEqual(s.total, 7)
        XCTAssertEqual(s.stackCount, 2)
        XCTAssertEqual(s.serialized(), "app;main 2\napp;main;work 5\n")
    }

    func testLinesAreSortedByBytesNotByFrame() {
        var s = FoldedStacks()
        s.add(["b", "x"])
        s.add(["a", "z"])
        s.add(["a b", "y"])  // ' ' (0x20) sorts before ';' (0x3B): "a b;y" < "a;z"
        s.add(["B"])
        XCTAssertEqual(s.serialized(), "B 1\na b;y 1\na;z 1\nb;x 1\n")
    }

    func testInsertionOrderDoesNotChangeOutput() {
        let stacks: [[String]] = [["p", "m", "f"], ["p", "m", "g"], ["p", "h"], ["q", "m"], ["p", "m"]]
        var forward = FoldedStacks()
        var backward = FoldedStacks()
        for (i, st) in stacks.enumerated() { forward.add(st, count: UInt64(i + 1)) }
        for (i, st) in stacks.enumerated().reversed() { backward.add(st, count: UInt64(i + 1)) }
        XCTAssertEqual(forward.serializedBytes(), backward.serializedBytes())
    }

    func testHostileNamesCannotBreakTheLineFormat() {
        var s = FoldedStacks()
        s.add(["app", "operator;()", "line\nbreak", "tab\there\r", "  padded  ", "", "del\u{7F}x", "has space"])
        XCTAssertEqual(s.serialized(), "app;operator:();line?break;tab?here;padded;[unknown];del?x;has space 1\n")
        let reparsed = try? FoldedStacks.parse(s.serialized(), source: "t")
        XCTAssertEqual(reparsed?.stacks().first?.frames.count, 8)
    }

    func testProcessFrame() {
        XCTAssertEqual(FoldedStacks.processFrame(name: "my app"), "my_app")
        XCTAssertEqual(FoldedStacks.processFrame(name: "my app", pid: 42), "my_app-42")
        XCTAssertEqual(FoldedStacks.processFrame(name: "my app", pid: 42, tid: 43), "my_app-42/43")
        XCTAssertEqual(FoldedStacks.processFrame(name: "x", tid: 43), "x")
        XCTAssertEqual(FoldedStacks.processFrame(name: ""), "[unknown]")
    }

    func testParseRoundTrip() throws {
        let text = "java;main;Foo::bar_[j] 3\njava;main;sys_read_[k] 10\njava;start 1\n"
        let s = try FoldedStacks.parse(text, source: "in.folded")
        XCTAssertEqual(s.serialized(), text)
        XCTAssertEqual(s.total, 14)
        XCTAssertEqual(s.stackCount, 3)
        let again = try FoldedStacks.parse(bytes: s.serializedBytes(), source: "again")
        XCTAssertEqual(again.serializedBytes(), s.serializedBytes())
    }

    func testParseToleratesCRLFBlankLinesWhitespaceAndBOM() throws {
        let text = "\u{FEFF}a;b 1\r\n\r\n   \n  a;b   2  \r\nx y;z\t4\n\nc 0\nq 5.00\n"
        let s = try FoldedStacks.parse(text, source: "t")
        XCTAssertEqual(s.serialized(), "a;b 3\nq 5\nx y;z 4\n")
    }

    func testParseCountIsAfterTheLastSpace() throws {
        let s = try FoldedStacks.parse("app;operator new(unsigned long) 7\n", source: "t")
        XCTAssertEqual(s.stacks().first?.frames, ["app", "operator new(unsigned long)"])
        XCTAssertEqual(s.stacks().first?.count, 7)
    }

    func testParseErrorsCarryFileAndLine() {
        func error(_ text: String) -> FoldedParseError? {
            do {
                _ = try FoldedStacks.parse(text, source: "prof.folded")
                return nil
            } catch let e as FoldedParseError {
                return e
            } catch {
                return nil
            }
        }
        let missing = error("a;b 1\n\na;b;c\n")
        XCTAssertEqual(missing?.line, 3)
        XCTAssertTrue(missing?.description.hasPrefix("prof.folded:3: missing count") ?? false, "\(String(describing: missing))")

        let word = error("a;b lots\n")
        XCTAssertEqual(word?.description, "prof.folded:1: count 'lots' is not a number (expected \"frame;frame;... COUNT\")")

        // A tester's negative count was called "not a number".
        let negative = error("a;b 3\na;c -5\n")
        XCTAssertEqual(negative?.description, "prof.folded:2: count '-5' is negative: counts are samples, 0 or more (expected \"frame;frame;... COUNT\")")

        let fraction = error("a 1\nb 2.5\n")
        XCTAssertEqual(fraction?.line, 2)
        XCTAssertTrue(fraction?.reason.contains("fractional count '2.5'") ?? false)

        XCTAssertTrue(error("a -3\n")?.reason.contains("is negative") ?? false)
        XCTAssertTrue(error("a -\n")?.reason.contains("not a number") ?? false)
        XCTAssertTrue(error("a 99999999999999999999\n")?.reason.contains("too large") ?? false)
        XCTAssertTrue(error("a 18446744073709551615\nb 1\n")?.reason.contains("add up") ?? false)
        XCTAssertTrue(error("   12\n")?.reason.contains("missing count") ?? false)

        // The message is one line even when the input holds control characters.
        let hostile = error("a;b x\u{1B}[31my\r\n")
        XCTAssertNotNil(hostile)
        XCTAssertFalse(hostile!.description.contains("\u{1B}"))
        XCTAssertFalse(hostile!.description.contains("\n"))
    }

    func testAddLineAndMerge() throws {
        var a = FoldedStacks()
        try a.add(line: "p;f 2")
        try a.add(line: "   ")
        XCTAssertThrowsError(try a.add(line: "p;f", source: "live", lineNumber: 9)) { e in
            XCTAssertTrue("\(e)".hasPrefix("live:9: "))
        }
        var b = FoldedStacks()
        b.add(["p", "f"], count: 3)
        b.add(["p", "g"], count: 1)
        b.add(["r"], count: 1)
        a.merge(b)
        XCTAssertEqual(a.serialized(), "p;f 5\np;g 1\nr 1\n")
        XCTAssertEqual(a.total, 7)
        XCTAssertEqual(a.stackCount, 3)
        a.merge(a)
        XCTAssertEqual(a.serialized(), "p;f 10\np;g 2\nr 2\n")
    }

    func testCountsSaturateInsteadOfTrapping() {
        var s = FoldedStacks()
        s.add(["a"], count: .max)
        s.add(["a"], count: 5)
        XCTAssertEqual(s.total, .max)
        XCTAssertEqual(s.stacks().first?.count, .max)
    }

    func testByteExactNamesAreDistinct() {
        // "é" precomposed vs decomposed compare equal as Strings but are different symbols.
        var s = FoldedStacks()
        s.add(["caf\u{E9}"])
        s.add(["cafe\u{301}"])
        XCTAssertEqual(s.stackCount, 2)
    }

    func testManyDistinctStacks() throws {
        var s = FoldedStacks()
        for i in 0 ..< 5000 {
            s.add(["app", "main", "f\(i % 50)", "g\(i)"], count: UInt64(i % 7 + 1))
        }
        XCTAssertEqual(s.stackCount, 5000)
        let parsed = try FoldedStacks.parse(bytes: s.serializedBytes(), source: "big")
        XCTAssertEqual(parsed.total, s.total)
        XCTAssertEqual(parsed.serializedBytes(), s.serializedBytes())
    }

    func testFrameKind() {
        XCTAssertEqual(FrameKind(frameName: "do_syscall_64_[k]"), .kernel)
        XCTAssertEqual(FrameKind(frameName: "Interpreter_[j]"), .jit)
        XCTAssertEqual(FrameKind(frameName: "inlined_thing_[i]"), .inlined)
        XCTAssertEqual(FrameKind(frameName: "wakeup_[w]"), .user)
        XCTAssertEqual(FrameKind(frameName: "[k]"), .user)
        XCTAssertEqual(FrameKind(frameName: "main"), .user)
        XCTAssertEqual("f" + FrameKind.kernel.suffix, "f_[k]")
        for kind in FrameKind.allCases where kind != .marker {
            XCTAssertEqual(FrameKind(frameName: "x" + kind.suffix), kind)
        }
    }

    func testNumberFormatting() {
        func fixed(_ v: Double) -> String {
            var b: [UInt8] = []
            b.appendFixed2(v)
            return String(decoding: b, as: UTF8.self)
        }
        XCTAssertEqual(fixed(0), "0.00")
        XCTAssertEqual(fixed(1.005 + 1e-9), "1.01")
        XCTAssertEqual(fixed(1199.999), "1200.00")
        XCTAssertEqual(fixed(-0.001), "0.00")
        XCTAssertEqual(fixed(-2.5), "-2.50")
        XCTAssertEqual(fixed(.nan), "0.00")
        func grouped(_ v: UInt64) -> String {
            var b: [UInt8] = []
            b.appendGrouped(v)
            return String(decoding: b, as: UTF8.self)
        }
        XCTAssertEqual(grouped(0), "0")
        XCTAssertEqual(grouped(999), "999")
        XCTAssertEqual(grouped(1000), "1,000")
        XCTAssertEqual(grouped(1_234_567), "1,234,567")
        XCTAssertEqual(grouped(UInt64.max), "18,446,744,073,709,551,615")
        var d: [UInt8] = []
        d.appendDecimal(UInt64(1_000_000))
        XCTAssertEqual(String(decoding: d, as: UTF8.self), "1000000")
    }
}
