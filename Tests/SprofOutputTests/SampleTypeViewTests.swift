import SprofOutput
import SprofProfile
import XCTest

/// The views of sample types beside the default one come from one table
/// (``SampleTypeView/table``): a profile's types decide which exist.
final class SampleTypeViewTests: XCTestCase {
    /// `main;work` and `main;wait`, with samples, wall and off-CPU nanoseconds and a type no
    /// table row names (`alloc_space`).
    static func profile() -> Profile {
        var b = ProfileBuilding(sampleTypes: [("samples", "count"), ("wall", "nanoseconds"), ("off-cpu", "nanoseconds"), ("alloc_space", "bytes")]
            .map { Profile.ValueType(type: $0.0, unit: $0.1) })
        let thread = b.thread(Profile.Thread(pid: 1, tid: 1, name: "app", processName: "app"))
        let main = b.location(Profile.Location(lines: [Profile.Line(function: b.function(named: "main"))], kind: .user))
        for (leaf, values) in [("work", [Int64(3), 3_000, 0, 4_096]), ("wait", [0, 7_000, 7_000, 0])] {
            let l = b.location(Profile.Location(lines: [Profile.Line(function: b.function(named: leaf))], kind: .user))
            b.add(stack: b.stack([l, main]), thread: thread, values: values)
        }
        return b.build(metadata: ProfileMetadata())
    }

    func testTheTableMakesTheWallAndOffCPUViews() throws {
        XCTAssertEqual(SampleTypeView.table.map(\.suffix), [".wall.svg", ".offcpu.svg"], "run's file names")
        XCTAssertEqual(Profile.ValueType.aliases, ["offcpu": "off-cpu"])
        XCTAssertEqual(Profile.ValueType.howToRecord["off-cpu"], "record with --off-cpu for wall and off-cpu")
        XCTAssertEqual(SampleTypeView.named("offcpu")?.notRecorded, "off-CPU time was not recorded for this job: create it with off-CPU recording on")

        let graphs = SampleTypeView.flameGraphs(Self.profile(), graph: FlameGraphOptions(title: "t"), perThread: false, fullNames: false)
        XCTAssertEqual(graphs.map(\.suffix), [".wall.svg", ".offcpu.svg"], "alloc_space has no row: no view")
        let off = String(decoding: graphs[1].bytes, as: UTF8.self)
        XCTAssertTrue(off.contains("t (off-CPU time)"), "the row's measure titles the graph")
        XCTAssertTrue(off.contains("wait"))
        XCTAssertFalse(off.contains(">work"), "work was never off-CPU")

        var cpuOnly = Self.profile()
        cpuOnly.sampleTypes = [Profile.ValueType(type: "samples", unit: "count")]
        cpuOnly.samples = cpuOnly.samples.map { var s = $0; s.values = [s.values[0]]; return s }
        XCTAssertTrue(SampleTypeView.flameGraphs(cpuOnly, graph: FlameGraphOptions(), perThread: false, fullNames: false).isEmpty,
                      "a profile without the types has none of their views")
    }

    /// A new sample type gets its view by a row of the table, and nothing else.
    func testAnExtraSampleTypeGetsItsViewFromARow() throws {
        let row = SampleTypeView(sampleType: "alloc_space", name: "alloc", tab: "Allocations", what: "bytes allocated",
                                 flag: "--heap", jobOption: "Heap")
        let table = SampleTypeView.table + [row]
        XCTAssertEqual(SampleTypeView.views(of: Self.profile(), in: table).map(\.view.name), ["wall", "offcpu", "alloc"])
        XCTAssertEqual(SampleTypeView.views(of: Self.profile(), in: table).last?.index, 3)
        let graphs = SampleTypeView.flameGraphs(Self.profile(), graph: FlameGraphOptions(title: "t"), perThread: false, fullNames: false, table: table)
        XCTAssertEqual(graphs.map(\.suffix), [".wall.svg", ".offcpu.svg", ".alloc.svg"])
        guard graphs.count == 3 else { return }
        let alloc = String(decoding: graphs[2].bytes, as: UTF8.self)
        XCTAssertTrue(alloc.contains("t (bytes allocated)"), "titled from the row")
        XCTAssertTrue(alloc.contains("alloc_space bytes"), "counted in the type's unit")
        XCTAssertTrue(alloc.contains("work"))
        XCTAssertFalse(alloc.contains(">wait"), "wait allocated nothing")
    }
}
