import XCTest
import SprofProfile

/// The profile model on synthetic data: folded round trips, inline chains, top tables, diffs,
/// provenance, and the rule that shortened names never merge two functions.
final class ProfileModelTests: XCTestCase {
    private func folded(_ lines: [(String, Int64)]) -> Profile {
        Profile(folded: lines.map { (frames: $0.0.split(separator: ";").map(String.init), count: $0.1) })
    }

    func testFoldedRoundTripKeepsKindsInlineChainsAndMarkers() {
        let lines: [(String, Int64)] = [
            ("app;[truncated];main;work;hot_[i];hotter_[i]", 5),
            ("app;main;syscall;do_sys_[k];schedule_[k]", 3),
            ("app;main;LazyCompile:fib_[j]", 2),
        ]
        let p = folded(lines)
        let back = p.aggregatedStacks().map { ($0.frames.joined(separator: ";"), $0.value) }
        XCTAssertEqual(back.map(\.0), lines.map(\.0).sorted())
        XCTAssertEqual(back.map(\.1).reduce(0, +), 10)
        // work, hot and hotter are one physical frame: one location, innermost line first.
        let inline = p.locations.first { $0.lines.count == 3 }
        XCTAssertEqual(inline.map { $0.lines.map { p.functions[$0.function].name } }, ["hotter", "hot", "work"])
        XCTAssertEqual(p.locations.filter { $0.kind == .kernel }.count, 2)
        XCTAssertEqual(p.locations.filter { $0.kind == .jit }.count, 1)
        XCTAssertEqual(p.locations.filter { $0.kind == .marker }.count, 1)
    }

    func testTopAgreesWithPprofFlatAndCum() {
        let p = folded([("app;main;parse;lex", 6), ("app;main;parse", 2), ("app;main;render", 2), ("app;f;f;f", 10)])
        let rows = p.top()
        XCTAssertEqual(rows.map(\.name), ["f", "lex", "parse", "render", "main"])
        let f = rows[0]
        XCTAssertEqual(f.selfValue, 10)
        XCTAssertEqual(f.totalValue, 10, "recursion counts once per sample")
        XCTAssertEqual(f.selfPercent, 50, accuracy: 1e-9)
        let parse = rows[2]
        XCTAssertEqual(parse.selfValue, 2)
        XCTAssertEqual(parse.totalValue, 8)
        XCTAssertEqual(rows[4].totalValue, 10)
        XCTAssertFalse(rows.contains { $0.name == "app" }, "the process root is not a function")
    }

    /// A stack cut short shows as a `[truncated]` row, total only, as `go tool pprof -top` lists it:
    /// the table then tells how much of the profile has no root.
    func testTruncatedStacksAreARowWithTotalOnly() {
        let p = folded([("app;[truncated];decode;crc", 3), ("app;main;decode;crc", 7)])
        let rows = p.top()
        XCTAssertEqual(rows.map(\.name), ["crc", "decode", "main", "[truncated]"])
        let truncated = rows[3]
        XCTAssertEqual(truncated.selfValue, 0)
        XCTAssertEqual(truncated.totalValue, 3)
        XCTAssertEqual(truncated.totalPercent, 30, accuracy: 1e-9)
    }

    func testTopByDsoAndCommUsesMappingsAndThreads() {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let libc = b.mapping(.init(start: 0x1000, limit: 0x2000, path: "/usr/lib/x86_64-linux-gnu/libc.so.6"))
        let app = b.mapping(.init(start: 0x4000, limit: 0x5000, path: "/opt/app"))
        let memcpy = b.location(.init(address: 0x1100, mapping: libc, lines: [.init(function: b.function(named: "memcpy"))]))
        let main = b.location(.init(address: 0x4100, mapping: app, lines: [.init(function: b.function(named: "main"))]))
        let t1 = b.thread(.init(pid: 10, tid: 10, name: "app", processName: "app"))
        let t2 = b.thread(.init(pid: 10, tid: 11, name: "worker", processName: "app"))
        b.add(stack: b.stack([memcpy, main]), thread: t1, values: [3])
        b.add(stack: b.stack([main]), thread: t2, values: [1])
        b.add(stack: b.stack([memcpy, main]), thread: t1, values: [2])
        let p = b.build(metadata: .init())
        XCTAssertEqual(p.samples.count, 2, "aggregated by (stack, thread)")
        XCTAssertEqual(p.top(by: [.dso]).map(\.key), [["libc.so.6"], ["app"]])
        XCTAssertEqual(p.top(by: [.dso]).first?.selfValue, 5)
        XCTAssertEqual(p.top(by: [.comm, .sym]).first?.key, ["app", "memcpy"])
        let threads = p.threadTotals()
        XCTAssertEqual(threads.map(\.tid), [10, 11])
        XCTAssertEqual(threads.map(\.value), [5, 1])
        XCTAssertEqual(threads[0].percent, 5.0 / 6 * 100, accuracy: 1e-9)
        XCTAssertEqual(p.aggregatedStacks(perThread: true).map { $0.frames.prefix(2).joined(separator: ";") }.sorted(),
                       ["app;app-10", "app;worker-11"])
    }

    func testDiffRowsRankByChangeOfSelfShare() {
        let base = folded([("app;main;parse", 70), ("app;main;index", 30)])
        let new = folded([("app;main;parse", 300), ("app;main;index", 700)])
        let rows = ProfileDiff.rows(base: base, new: new)
        XCTAssertEqual(rows.prefix(2).map(\.name), ["index", "parse"])
        XCTAssertEqual(rows[0].delta, 40, accuracy: 1e-9)
        XCTAssertEqual(rows[1].delta, -40, accuracy: 1e-9)
        let main = rows.first { $0.name == "main" }
        XCTAssertEqual(main?.delta, 0, "no self share")
        XCTAssertEqual(main?.totalDelta ?? -1, 0, accuracy: 1e-9, "100% of both in total")
    }

    /// Two callers of one leaf whose hot spots move 75/25 → 25/75: the leaf's self share does
    /// not change, the callers' totals move by 50 points and lead the table.
    func testDiffRowsShowAShiftBetweenCallersOfOneLeafInTotals() {
        // Names chosen so that alphabetical order would not put the callers first.
        let base = folded([("app;main;parse;apply", 75), ("app;main;render;apply", 25)])
        let new = folded([("app;main;parse;apply", 25), ("app;main;render;apply", 75)])
        let rows = ProfileDiff.rows(base: base, new: new)
        XCTAssertEqual(rows.prefix(2).map(\.name), ["parse", "render"], "the callers lead: \(rows)")
        XCTAssertEqual(rows[0].totalDelta, -50, accuracy: 1e-9)
        XCTAssertEqual(rows[1].totalDelta, 50, accuracy: 1e-9)
        XCTAssertEqual(rows.first { $0.name == "apply" }?.delta ?? -1, 0, accuracy: 1e-9)
        // --sort self ranks by the self change alone: the callers have none.
        let bySelf = ProfileDiff.rows(base: base, new: new, order: .self)
        XCTAssertTrue(bySelf.allSatisfy { $0.delta == 0 })
        XCTAssertEqual(ProfileDiff.rows(base: base, new: new, order: .total).first?.name, "parse")
    }

    /// Repeated runs: one profile whose samples carry their run number; functions interned once.
    func testMergingRunsLabelsEverySampleWithItsRun() {
        var first = folded([("app;main;a;spin", 3), ("app;main;b;spin", 1)])
        first.metadata.exitStatus = "exit 0"
        first.metadata.statistics.samples = 4
        var second = folded([("app;main;b;spin", 5), ("app;main;c", 2)])
        second.metadata.exitStatus = "exit 3"
        second.metadata.statistics.samples = 7
        var third = folded([("app;main;a;spin", 1)])
        third.metadata.exitStatus = "exit 4"
        let merged = Profile(runs: [first, second, third])
        XCTAssertEqual(merged.runs, [1, 2, 3])
        XCTAssertEqual(merged.total(), 12)
        XCTAssertEqual(merged.onlyRun(2).total(), 7)
        XCTAssertEqual(merged.onlyRun(2).top().first { $0.name == "b" }?.totalValue, 5)
        XCTAssertEqual(merged.functions.filter { $0.name == "spin" }.count, 1, "one function across runs")
        XCTAssertEqual(merged.metadata.exitStatus, "exit 3", "the first run that failed")
        XCTAssertEqual(merged.metadata.statistics.samples, 12)
        XCTAssertTrue(merged.samples.allSatisfy { $0.run != nil })
        XCTAssertEqual(Profile(runs: [first]).runs, [1])
        XCTAssertEqual(first.runs, [], "a single recording has no runs")
    }

    func testShortNamesThatCollideFallBackToFullNames() {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let a = b.function(.init(name: "Engine.run()", fullName: "A.Engine.run() -> ()"))
        let c = b.function(.init(name: "Engine.run()", fullName: "B.Engine.run() -> ()"))
        let unique = b.function(.init(name: "Book.add(_:)", fullName: "A.Book.add(_: Swift.Int) -> ()"))
        for f in [a, c, unique] {
            b.add(stack: b.stack([b.location(.init(lines: [.init(function: f)]))]), thread: nil, values: [1])
        }
        let p = b.build(metadata: .init())
        XCTAssertEqual(Set(p.functions.map(\.name)), ["Engine.run()", "Book.add(_:)"], "the model keeps the short names")
        let names = p.functionNames()
        XCTAssertEqual(Set(p.functions.indices.map { names[$0] }), ["A.Engine.run() -> ()", "B.Engine.run() -> ()", "Book.add(_:)"])
    }

    /// Specializations of one generic keep a short name with their type arguments; a group that
    /// the arguments do not separate (or that mixes in an unspecialized function) gets full names.
    func testSpecializationsThatCollideAreToldApartByTheirTypeArguments() {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let short = "specialized Array.append(_:)"
        let order = b.function(.init(name: short, fullName: "generic specialization <qsl_bench.RestingOrder> of Swift.Array.append(__owned A) -> ()"))
        let int = b.function(.init(name: short, fullName: "generic specialization <Swift.Int32> of Swift.Array.append(__owned A) -> ()"))
        let pair = b.function(.init(name: short, fullName: "generic specialization <Swift.Dictionary<Swift.String, qsl_bench.Level>> of Swift.Array.append(__owned A) -> ()"))
        let twinA = b.function(.init(name: "specialized Set.insert(_:)", fullName: "generic specialization <A.Key> of Swift.Set.insert(A) -> ()"))
        let twinB = b.function(.init(name: "specialized Set.insert(_:)", fullName: "generic specialization <B.Key> of Swift.Set.insert(A) -> ()"))
        // Two clones of one function whose arguments were changed differently (qsl-bench).
        let audit = "specialized static BookAuditor.auditLadder(_:pool:)"
        let ladder = "static qsl_bench.BookAuditor.auditLadder(_: qsl_bench.PriceLadder, pool: qsl_bench.OrderPool) -> (orders: Swift.Int, shares: Swift.UInt64, errors: Swift.Int)"
        let dead = b.function(.init(name: audit, fullName: "function signature specialization <Arg[2] = Dead> of " + ladder))
        let exploded = b.function(.init(name: audit, fullName: "function signature specialization <Arg[0] = Exploded, Arg[1] = Exploded> of function signature specialization <Arg[2] = Dead> of " + ladder))
        for f in [order, int, pair, twinA, twinB, dead, exploded] {
            b.add(stack: b.stack([b.location(.init(lines: [.init(function: f)]))]), thread: nil, values: [1])
        }
        let p = b.build(metadata: .init())
        XCTAssertEqual(Set(p.functions.map(\.name)), [short, "specialized Set.insert(_:)", audit], "the model keeps the short names")
        let names = p.functionNames()
        XCTAssertEqual(Set(p.functions.indices.map { names[$0] }), [
            "specialized Array.append(_:) <RestingOrder>", "specialized Array.append(_:) <Int32>",
            "specialized Array.append(_:) <Dictionary<String, Level>>",
            "generic specialization <A.Key> of Swift.Set.insert(A) -> ()", "generic specialization <B.Key> of Swift.Set.insert(A) -> ()",
            "specialized static BookAuditor.auditLadder(_:pool:) <Dead>",
            "specialized static BookAuditor.auditLadder(_:pool:) <Exploded, Exploded> <Dead>",
        ])
    }

    func testATotalThatDoesNotFitSaturatesInsteadOfTrapping() {
        // A profile built from outside data (a hand-edited folded file in a serve job) may hold
        // values whose sum passes Int64.max.
        let p = Profile(folded: [(frames: ["a", "b"], count: Int64.max / 2 + 1), (frames: ["a", "c"], count: Int64.max / 2 + 1)])
        XCTAssertEqual(p.total(), Int64.max)
        XCTAssertEqual(p.metadata.statistics.samples, Int(Int64.max))
    }

    func testAClockPeriodIsInNanoseconds() {
        var m = ProfileMetadata()
        m.event = "cpu-clock"
        m.rate = .period(50000)
        XCTAssertEqual(m.rateText, "every 50000 ns")
        m.event = "task-clock:u"
        XCTAssertEqual(m.rateText, "every 50000 ns")
        m.event = "page-faults"
        XCTAssertEqual(m.rateText, "every 50000 events")
        XCTAssertTrue(m.summaryLine.hasPrefix("page-faults (software) every 50000 events"), m.summaryLine)
        m.rate = .frequency(999)
        XCTAssertEqual(m.rateText, "999 Hz")
    }

    /// A profile that sprof did not record (folded input, another tool's pprof) has no counts of
    /// lost or truncated samples: its provenance and summary must not claim zeros.
    func testForeignProfilesClaimNoCounts() {
        var m = ProfileMetadata()
        m.event = "cpu-clock"
        XCTAssertFalse(m.isRecording)
        XCTAssertFalse(m.provenanceLines.contains { $0.hasPrefix("lost") || $0.hasPrefix("samples") || $0.hasPrefix("kernel frames") }, "\(m.provenanceLines)")
        XCTAssertFalse(m.summaryLine.contains("lost"), m.summaryLine)
        m.sprofVersion = "0.3.0"
        XCTAssertTrue(m.provenanceLines.contains("lost: 0 (records 0, samples 0)"), "a recording that lost nothing says so")
        XCTAssertTrue(m.summaryLine.contains("0 lost"), m.summaryLine)
    }

    func testProvenanceReadsBack() {
        var m = ProfileMetadata()
        m.sprofVersion = "0.3.0"
        m.command = ["./qsl-bench", "--days", "it's 2", "a\nb"]
        m.event = "cpu-clock"
        m.requestedEvent = "cycles"
        m.rate = .frequency(999)
        m.callGraph = "dwarf"
        m.stackSize = 32768
        m.statistics.samples = 1234
        m.statistics.lostRecords = 2
        m.statistics.lostSamples = 3
        m.statistics.truncated = 7
        m.statistics.liveStackReads = 40
        m.statistics.liveStackChanged = 3
        m.statistics.liveStackShared = 30
        m.startTime = 1_795_966_641_370_828_657
        m.duration = 1_100_209_040
        m.exitStatus = "exit 0"
        m.system.kernelRelease = "6.18.0"
        m.system.cores = 2
        m.system.perfEventParanoid = 2
        m.kernelExcluded = true
        m.notices = ["cycles is not supported here; falling back to cpu-clock"]
        let lines = m.provenanceLines
        XCTAssertTrue(lines.contains("event: cpu-clock (software event)"), "\(lines)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("requested event: cycles") }, "\(lines)")
        // The reader's live-stack counts are provenance, not summary.
        XCTAssertTrue(lines.contains("live stack reads: 40 (3 changed, 30 shared)"), "\(lines)")
        XCTAssertFalse(m.summaryLine.contains("live stack"), m.summaryLine)
        var back = ProfileMetadata(provenanceLines: lines)
        XCTAssertEqual(back.command, ["./qsl-bench", "--days", "it's 2", "a b"], "a newline in an argument cannot start a key")
        back.command = m.command
        XCTAssertEqual(back, m)
        XCTAssertFalse(m.summaryLine.contains("hardware"))
        XCTAssertTrue(m.summaryLine.contains("fell back to cpu-clock"))
    }
}

extension ProfileModelTests {
    func testMainBinaryMappingMovesToTheFront() {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let ld = b.mapping(.init(start: 0x1000, limit: 0x2000, path: "/lib64/ld-linux-x86-64.so.2"))
        let app = b.mapping(.init(start: 0x4000, limit: 0x5000, path: "/opt/qsl-bench"))
        let l1 = b.location(.init(address: 0x1100, mapping: ld, lines: [.init(function: b.function(named: "_dl_start"))]))
        let l2 = b.location(.init(address: 0x4100, mapping: app, lines: [.init(function: b.function(named: "main"))]))
        let t = b.thread(.init(pid: 1, tid: 1, name: "qsl-bench", processName: "qsl-bench"))
        b.add(stack: b.stack([l2, l1]), thread: t, values: [4])
        var p = b.build(metadata: .init())
        XCTAssertEqual(p.mainMappingIndex, app)
        p.moveMappingToFront(app)
        XCTAssertEqual(p.mappings.first?.path, "/opt/qsl-bench")
        XCTAssertEqual(p.frameNames(ofStack: 0), ["_dl_start", "main"], "locations follow their mappings")
        XCTAssertEqual(p.locations[l1].mapping, 1)
        XCTAssertEqual(p.locations[l2].mapping, 0)
    }
}
