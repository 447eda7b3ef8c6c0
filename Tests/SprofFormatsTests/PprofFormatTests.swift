import Foundation
import SprofProfile
import SwiftProtobuf
import XCTest
@testable import SprofFormats

final class PprofFormatTests: XCTestCase {
    override func setUp() {
        super.setUp()
        Tools.setUp()
    }

    override func tearDown() {
        Tools.cleanUp()
        super.tearDown()
    }

    private func message(_ profile: Profile) throws -> Perftools_Profiles_Profile {
        try Perftools_Profiles_Profile(serializedBytes: try PprofFormat.encodeUncompressed(profile))
    }

    func testSameProfileGivesSameBytesAndReadingBackWritesThemAgain() throws {
        let profile = Synthetic.profile()
        let first = try PprofFormat.encode(profile)
        XCTAssertEqual(first, try PprofFormat.encode(profile))
        let read = try PprofFormat.decode(first)
        XCTAssertEqual(try PprofFormat.encode(read), first, "write → read → write changed the bytes")

        // What the file carries reads back.
        XCTAssertEqual(read.sampleTypes, profile.sampleTypes)
        XCTAssertEqual(read.defaultSampleType, 1)
        XCTAssertEqual(read.periodType, profile.periodType)
        XCTAssertEqual(read.period, Synthetic.period)
        XCTAssertEqual(read.metadata, profile.metadata)
        XCTAssertEqual(Set(read.threads), Set(profile.threads))
        XCTAssertEqual(read.functions.map(\.name), profile.functions.map(\.name))
        XCTAssertEqual(read.functions.map(\.systemName), profile.functions.map(\.systemName))
        XCTAssertEqual(read.locations.map(\.kind), profile.locations.map(\.kind))
        XCTAssertEqual(read.locations.map(\.lines), profile.locations.map(\.lines))
        XCTAssertEqual(read.locations.map(\.address), profile.locations.map(\.address))
        for valueIndex in 0..<2 {
            XCTAssertEqual(read.total(valueIndex), profile.total(valueIndex))
            XCTAssertEqual(read.aggregatedStacks(valueIndex: valueIndex, perThread: true).map { "\($0.frames) \($0.value)" },
                           profile.aggregatedStacks(valueIndex: valueIndex, perThread: true).map { "\($0.frames) \($0.value)" })
            XCTAssertEqual(read.top(valueIndex: valueIndex), profile.top(valueIndex: valueIndex))
        }
        // Reading accepts the uncompressed message as well.
        XCTAssertEqual(try PprofFormat.encode(PprofFormat.decode(try PprofFormat.encodeUncompressed(profile))), first)
    }

    /// The direct writer produces the canonical encoding: SwiftProtobuf, re-serializing what it
    /// parsed, gives the same bytes (field order, defaults left out, packing, lengths).
    func testWriterOutputIsCanonicalProtobuf() throws {
        let go = try PprofFormat.decode([UInt8](Data(contentsOf: try Tools.fixture("go-cpu.pb.gz"))))
        var wide = Synthetic.profile()
        // Long names make nested messages longer than 127 bytes (multi-byte length prefixes).
        wide.functions[0].name = String(repeating: "n", count: 300)
        wide.functions[0].file = String(repeating: "f", count: 20_000)
        wide.threads[0].name = String(repeating: "t", count: 200)
        for (name, profile) in [("synthetic", Synthetic.profile()), ("wide", wide), ("go", go), ("empty", Profile()),
                                ("folded", Profile(folded: [(["a", "b_[k]", "c_[i]"], 1)]))] {
            let bytes = try PprofFormat.encodeUncompressed(profile)
            let reserialized: [UInt8] = try Perftools_Profiles_Profile(serializedBytes: bytes).serializedBytes()
            XCTAssertEqual(reserialized, bytes, name)
        }
        let read = try PprofFormat.decode(try PprofFormat.encode(wide))
        XCTAssertEqual(read.functions[0].file.count, 20_000)
        XCTAssertEqual(try PprofFormat.encode(read), try PprofFormat.encode(wide))
    }

    func testGzipHeaderHasNoTimestampOrName() throws {
        let bytes = try PprofFormat.encode(Synthetic.profile())
        XCTAssertEqual(Array(bytes.prefix(4)), [0x1f, 0x8b, 8, 0], "gzip magic, deflate, no FNAME/FCOMMENT/FEXTRA")
        XCTAssertEqual(Array(bytes[4..<8]), [0, 0, 0, 0], "MTIME must be zero")
    }

    func testMessageContents() throws {
        let profile = Synthetic.profile()
        let m = try message(profile)
        let s = m.stringTable
        XCTAssertEqual(s.first, "")
        XCTAssertEqual(m.sampleType.map { "\(s[Int($0.type)])/\(s[Int($0.unit)])" }, ["samples/count", "cpu/nanoseconds"])
        XCTAssertEqual(s[Int(m.periodType.type)], "cpu")
        XCTAssertEqual(m.period, Synthetic.period)
        XCTAssertEqual(s[Int(m.defaultSampleType)], "cpu")
        XCTAssertEqual(m.timeNanos, 1_764_000_000_123_456_789)
        XCTAssertEqual(m.durationNanos, 2_500_000_000)
        XCTAssertEqual(m.comment.map { s[Int($0)] }, profile.metadata.provenanceLines)
        XCTAssertTrue(m.comment.map { s[Int($0)] }.contains("event: cpu-clock (software event)"))

        // Ids are 1-based and unique.
        XCTAssertEqual(m.mapping.map(\.id), Array(1...UInt64(m.mapping.count)))
        XCTAssertEqual(m.function.map(\.id), Array(1...UInt64(m.function.count)))
        XCTAssertEqual(m.location.map(\.id), Array(1...UInt64(m.location.count)))

        let exe = try XCTUnwrap(m.mapping.first { s[Int($0.filename)] == "/usr/bin/app" })
        XCTAssertEqual(exe.memoryStart, 0x40_0000)
        XCTAssertEqual(exe.memoryLimit, 0x50_0000)
        XCTAssertEqual(exe.fileOffset, 0x1000)
        XCTAssertEqual(s[Int(exe.buildID)], "0123456789abcdef0123456789abcdef01234567")
        XCTAssertTrue(exe.hasFunctions_p && exe.hasFilenames_p && exe.hasLineNumbers_p && exe.hasInlineFrames_p)

        func function(_ id: UInt64) -> Perftools_Profiles_Function { m.function[Int(id - 1)] }
        func names(_ l: Perftools_Profiles_Location) -> [String] { l.line.map { s[Int(function($0.functionID).name)] } }

        // The inline chain: one location, three lines, innermost first.
        let inline = try XCTUnwrap(m.location.first { $0.address == 0x40_2345 })
        XCTAssertEqual(names(inline), ["square(_:)", "helper", "compute(_:)"])
        XCTAssertEqual(inline.line.map(\.line), [42, 61, 25])
        XCTAssertEqual(inline.mappingID, exe.id)
        let compute = function(inline.line[2].functionID)
        XCTAssertEqual(s[Int(compute.systemName)], "$s3app7computeyS2iF")
        XCTAssertEqual(s[Int(compute.filename)], "/src/app/compute.swift")
        XCTAssertEqual(compute.startLine, 20)

        // Both kernel frames sit in a [kernel.kallsyms] mapping, the mapping-less one too.
        for address: UInt64 in [0xffff_ffff_8100_1000, 0xffff_ffff_8100_2000] {
            let l = try XCTUnwrap(m.location.first { $0.address == address })
            XCTAssertNotEqual(l.mappingID, 0)
            XCTAssertEqual(s[Int(m.mapping[Int(l.mappingID - 1)].filename)], "[kernel.kallsyms]")
        }
        // Markers are explicit locations without mapping or address.
        for marker in ["[truncated]", "[unknown]"] {
            let l = try XCTUnwrap(m.location.first { names($0) == [marker] }, marker)
            XCTAssertEqual(l.mappingID, 0)
            XCTAssertEqual(l.address, 0)
        }
        // The unsymbolized address keeps its mapping and has no lines.
        let unsymbolized = try XCTUnwrap(m.location.first { $0.address == 0x7f00_0001_5678 })
        XCTAssertTrue(unsymbolized.line.isEmpty)
        XCTAssertEqual(s[Int(m.mapping[Int(unsymbolized.mappingID - 1)].filename)], "/usr/lib/x86_64-linux-gnu/libc.so.6")

        // Every sample: two values and the four thread labels.
        XCTAssertEqual(m.sample.count, profile.samples.count)
        for sample in m.sample {
            XCTAssertEqual(sample.value.count, 2)
            XCTAssertEqual(sample.value[1], sample.value[0] * Synthetic.period)
            XCTAssertEqual(sample.label.map { s[Int($0.key)] }, ["pid", "tid", "thread_name", "process_name"])
        }
        let worker = m.sample.filter { $0.label.contains { s[Int($0.key)] == "thread_name" && s[Int($0.str)] == "worker 1" } }
        XCTAssertEqual(worker.reduce(0) { $0 + $1.value[0] }, 8 + 6 + 4 + 3 + 5)
        XCTAssertTrue(worker.allSatisfy { $0.label[0].num == 100 && $0.label[1].num == 101 })
    }

    func testProfileWithoutThreadsHasNoLabels() throws {
        let profile = Profile(folded: [(["app", "main", "work_[k]"], 3), (["app", "main"], 2)])
        var plain = profile
        plain.samples = plain.samples.map { Profile.Sample(stack: $0.stack, thread: nil, values: $0.values) }
        let m = try message(plain)
        XCTAssertTrue(m.sample.allSatisfy { $0.label.isEmpty })
        XCTAssertFalse(m.stringTable.contains("tid"))
        let read = try PprofFormat.decode(try PprofFormat.encode(plain))
        XCTAssertTrue(read.samples.allSatisfy { $0.thread == nil })
        XCTAssertEqual(read.total(), 5)
        // The folded kernel frame had no mapping: it reads back as kernel, in [kernel.kallsyms].
        let kernel = try XCTUnwrap(read.locations.first { $0.kind == .kernel })
        XCTAssertEqual(kernel.mapping.map { read.mappings[$0].path }, "[kernel.kallsyms]")
    }

    /// Repeated runs: every sample carries a numeric `run` label, which reads back and which
    /// `go tool pprof -tagfocus=run=N` filters on.
    func testRunLabelsRoundTripAndGoToolPprofFocusesOnOneRun() throws {
        let runs = (1...5).map { r in Profile(folded: [(["app", "main", "a"], Int64(r)), (["app", "main", "b"], 10)]) }
        let merged = Profile(runs: runs)
        let m = try message(merged)
        let key = Int64(try XCTUnwrap(m.stringTable.firstIndex(of: "run")))
        XCTAssertTrue(m.sample.allSatisfy { $0.label.contains { $0.key == key && (1...5).contains($0.num) } }, "every sample labelled")
        let bytes = try PprofFormat.encode(merged)
        let read = try PprofFormat.decode(bytes)
        XCTAssertEqual(read.runs, [1, 2, 3, 4, 5])
        XCTAssertEqual(read.onlyRun(3).total(), 13)
        XCTAssertEqual(try PprofFormat.encode(read), bytes, "write → read → write keeps the bytes")
        XCTAssertFalse(try message(runs[0]).stringTable.contains("run"), "no runs, no label")
        _ = try Tools.go()
        let file = try Tools.write(bytes, name: "runs.pb.gz")
        let top = try Tools.pprof(["-top", "-tagfocus=run=3", "-sample_index=samples"], file)
        XCTAssertTrue(top.contains("accounting for 13, "), "run 3 alone: 3 + 10 samples\n\(top)")
    }

    /// JIT code lives in anonymous mappings (`//anon`), which do not say "JIT": the writer gives
    /// such locations a `[jit]` copy of their mapping, so that the kind reads back.
    func testJITAndKernelKindsSurviveMappingsThatDoNotNameThem() throws {
        var b = ProfileBuilding(sampleTypes: [Profile.ValueType(type: "samples", unit: "count")])
        let anon = b.mapping(Profile.Mapping(start: 0x7e00_0000_0000, limit: 0x7e00_0100_0000, path: "//anon"))
        let jitFunction = b.function(named: "LazyCompile:*hot script.js:10")
        let unknown = b.function(named: "[unknown]")
        let jit = b.location(Profile.Location(address: 0x7e00_0000_1000, mapping: anon, lines: [.init(function: jitFunction)], kind: .jit))
        let notJIT = b.location(Profile.Location(address: 0x7e00_0000_2000, mapping: anon, lines: [.init(function: unknown)]))
        let kernel = b.location(Profile.Location(address: 0xffff_ffff_8100_0000, lines: [.init(function: b.function(named: "schedule"))], kind: .kernel))
        let t = b.thread(Profile.Thread(pid: 7, tid: 7, name: "node", processName: "node"))
        b.add(stack: b.stack([jit, kernel]), thread: t, values: [5])
        b.add(stack: b.stack([notJIT]), thread: t, values: [2])
        let profile = b.build(metadata: ProfileMetadata())

        let bytes = try PprofFormat.encode(profile)
        let read = try PprofFormat.decode(bytes)
        XCTAssertEqual(try PprofFormat.encode(read), bytes)
        XCTAssertEqual(read.locations.map(\.kind), [.jit, .user, .kernel])
        XCTAssertEqual(read.locations.map { $0.mapping.map { read.mappings[$0].path } }, ["[jit]", "//anon", "[kernel.kallsyms]"])
        let jitMapping = try XCTUnwrap(read.locations[0].mapping.map { read.mappings[$0] })
        XCTAssertEqual(jitMapping.start, 0x7e00_0000_0000, "a copy of the anonymous mapping")
        let kernelMapping = try XCTUnwrap(read.locations[2].mapping.map { read.mappings[$0] })
        XCTAssertEqual(kernelMapping.start, 0xffff_ffff_8100_0000, "spans the kernel addresses")
        XCTAssertEqual(read.aggregatedStacks().map(\.frames), profile.aggregatedStacks().map(\.frames))
    }

    func testReadsGoCPUProfile() throws {
        let bytes = try [UInt8](Data(contentsOf: try Tools.fixture("go-cpu.pb.gz")))
        let profile = try PprofFormat.decode(bytes)
        XCTAssertEqual(profile.sampleTypes.map(\.description), ["samples/count", "cpu/nanoseconds"])
        XCTAssertEqual(profile.periodType.description, "cpu/nanoseconds")
        XCTAssertEqual(profile.period, 10_000_000)
        XCTAssertEqual(profile.defaultSampleType, 1, "no default_sample_type: the last one, as pprof does")
        XCTAssertGreaterThan(profile.metadata.startTime, 0)
        XCTAssertGreaterThan(profile.metadata.duration, 1_000_000_000)
        XCTAssertEqual(profile.metadata.statistics.samples, 140)
        XCTAssertEqual(profile.total(0), 140)
        XCTAssertEqual(profile.total(1), 140 * 10_000_000)
        XCTAssertTrue(profile.threads.isEmpty)
        let top = profile.top(valueIndex: 0)
        XCTAssertEqual(top.first?.name, "main.hotLoop")
        XCTAssertEqual(top.first?.selfValue, 124)
        XCTAssertEqual(top.first { $0.name == "main.coldLoop" }?.totalValue, 28)
        XCTAssertEqual(top.first { $0.name == "main.main" }?.totalValue, 139)
        let hot = try XCTUnwrap(profile.functions.first { $0.name == "main.hotLoop" })
        XCTAssertEqual(hot.file, "/tmp/gocpu.go")
        XCTAssertTrue(profile.locations.allSatisfy { $0.kind == .user && $0.mapping == 0 })
        // Written again by sprof, it still reads the same.
        let again = try PprofFormat.decode(try PprofFormat.encode(profile))
        XCTAssertEqual(again.top(valueIndex: 1), profile.top(valueIndex: 1))
    }

    func testGoToolPprofAcceptsEveryFile() throws {
        _ = try Tools.go()
        let profiles: [(String, Profile)] = [
            ("synthetic", Synthetic.profile()),
            ("folded", Profile(folded: [(["app", "main", "a_[i]", "read_[k]"], 3), (["app", "[truncated]", "b"], 2)])),
            ("empty", Profile()),
            ("go-rewritten", try PprofFormat.decode([UInt8](Data(contentsOf: try Tools.fixture("go-cpu.pb.gz"))))),
            // Over one gzip piece (Gzip.pieceSize): several deflate pieces in one member.
            ("large", Synthetic.large(stacks: 20_000, threads: 4, depth: 16, functions: 2000)),
        ]
        XCTAssertGreaterThan(try PprofFormat.encodeUncompressed(profiles[4].1).count, Gzip.pieceSize)
        for (name, profile) in profiles {
            let file = try Tools.write(try PprofFormat.encode(profile), name: "\(name).pb.gz")
            let raw = try Tools.pprof(["-raw"], file)
            XCTAssertTrue(raw.contains("Samples:"), "\(name): \(raw.prefix(300))")
            if name == "large" {
                let top = try Tools.pprof(["-top", "-nodecount=3", "-sample_index=samples"], file)
                XCTAssertTrue(top.contains("of \(profile.total(0)) total"), top)
            }
        }
        let raw = try Tools.pprof(["-raw"], try Tools.write(try PprofFormat.encode(Synthetic.profile()), name: "labels.pb.gz"))
        XCTAssertTrue(raw.contains("thread_name:[worker 1]"), raw)
        XCTAssertTrue(raw.contains("[kernel.kallsyms]"), raw)
    }

    /// `go tool pprof -top` lists what ``Profile/top(by:valueIndex:names:granularity:)`` lists: the same
    /// functions with the same flat and cum values, for both sample types.
    func testGoToolPprofTopAgreesWithProfileTop() throws {
        _ = try Tools.go()
        let profile = Synthetic.profile()
        let file = try Tools.write(try PprofFormat.encode(profile), name: "top.pb.gz")
        for (index, type) in profile.sampleTypes.enumerated() {
            let out = try Tools.pprof(["-top", "-nodecount=1000", "-nodefraction=0", "-sample_index=\(type.type)",
                                       "-unit=\(type.unit == "nanoseconds" ? "nanoseconds" : "count")"], file)
            var pprofRows: [String: (flat: Int64, cum: Int64)] = [:]
            var inTable = false
            for line in out.split(separator: "\n") {
                if line.contains("flat%") { inTable = true; continue }
                guard inTable else { continue }
                let fields = line.split(separator: " ")
                guard fields.count >= 6 else { continue }
                func number(_ f: Substring) -> Int64? { Int64(f.filter { $0.isNumber || $0 == "-" }) }
                guard let flat = number(fields[0]), let cum = number(fields[3]) else { continue }
                // pprof marks inlined functions; the model's names have no such suffix.
                var name = fields[5...].joined(separator: " ")
                if name.hasSuffix(" (inline)") { name.removeLast(" (inline)".count) }
                pprofRows[name] = (flat, cum)
            }
            XCTAssertFalse(pprofRows.isEmpty, out)
            let ours = profile.top(valueIndex: index)
            for row in ours where !row.name.hasPrefix("[libc.so.6+") {
                let theirs = try XCTUnwrap(pprofRows[row.name], "\(row.name) missing from go tool pprof -top:\n\(out)")
                XCTAssertEqual(theirs.flat, row.selfValue, "\(type) flat of \(row.name)")
                XCTAssertEqual(theirs.cum, row.totalValue, "\(type) cum of \(row.name)")
            }
            // The ten largest by self agree in order too (ties broken differently are allowed), and
            // both list the same rows, `[truncated]` included.
            XCTAssertEqual(Set(pprofRows.keys.filter { !$0.hasPrefix("[libc.so.6") }), Set(ours.map(\.name).filter { !$0.hasPrefix("[libc.so.6") }))  // pprof names an unsymbolized address by its mapping alone
            XCTAssertNotNil(pprofRows["[truncated]"])
            let pprofSelf = pprofRows.map(\.value.flat).sorted(by: >)
            XCTAssertEqual(Array(pprofSelf.prefix(10)), Array(ours.map(\.selfValue).prefix(10)))
        }
    }

    // MARK: bad input

    private func assertRejected(_ bytes: [UInt8], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try PprofFormat.decode(bytes), file: file, line: line) { error in
            guard let e = error as? FormatError else { return XCTFail("not a FormatError: \(error)", file: file, line: line) }
            XCTAssertFalse(e.description.contains("\n"), "one line: \(e.description)", file: file, line: line)
            XCTAssertTrue(e.description.contains(expected), "\(e.description) should mention \(expected)", file: file, line: line)
        }
    }

    private func bytes(_ edit: (inout Perftools_Profiles_Profile) -> Void) throws -> [UInt8] {
        var m = try message(Synthetic.profile())
        edit(&m)
        return try m.serializedBytes()
    }

    func testBadInputFailsWithOneLineNamingTheProblem() throws {
        let good = try PprofFormat.encode(Synthetic.profile())
        assertRejected([], "empty")
        assertRejected(Array("app;main;work 3\n".utf8), "not a pprof profile")
        assertRejected(Array(good.prefix(good.count / 2)), "truncated")
        var corrupt = good
        for i in 20..<60 { corrupt[i] ^= 0x5a }
        assertRejected(corrupt, "corrupt")
        let plain = try PprofFormat.encodeUncompressed(Synthetic.profile())
        assertRejected(Array(plain.prefix(plain.count - 3)), "not a pprof profile")

        assertRejected(try bytes { $0.stringTable[0] = "x" }, "string_table[0]")
        assertRejected(try bytes { $0.stringTable = [] }, "string table is empty")
        assertRejected(try bytes { $0.sampleType = [] }, "no sample_type")
        assertRejected(try bytes { $0.sample[3].value.append(1) }, "sample 3 has 3 values for 2 sample types")
        assertRejected(try bytes { $0.sample[0].locationID[0] = 999 }, "refers to location 999")
        assertRejected(try bytes { $0.location[1].line[0].functionID = 77 }, "refers to function 77")
        assertRejected(try bytes { $0.location[0].mappingID = 42 }, "refers to mapping 42")
        assertRejected(try bytes { $0.location[2].id = 0 }, "location[2] has id 0")
        assertRejected(try bytes { $0.function[1].id = 1 }, "function id 1 is used twice")
        assertRejected(try bytes { $0.mapping[0].id = 0 }, "mapping[0] has id 0")
        assertRejected(try bytes { $0.function[0].name = 100_000 }, "outside the string table")
        assertRejected(try bytes { $0.comment[0] = -1 }, "comment[0] is string -1")
        assertRejected(try bytes { $0.defaultSampleType = Int64($0.stringTable.firstIndex(of: "count")!) }, "default_sample_type \"count\" is not a sample type")
        assertRejected(try bytes { $0.sample[0].value[0] = .max; $0.sample[1].value[0] = .max }, "overflow")
    }

    /// Location ids need not be 1...N: sparse and huge ones (the reader's dictionary) and
    /// small ones (its array) read back as the same profile.
    func testSparseAndHugeLocationIDsReadAsTheSameProfile() throws {
        let original = try PprofFormat.decode(PprofFormat.encode(Synthetic.profile()))
        let renumbered = try bytes { m in
            let ids = m.location.indices.map { i -> UInt64 in i % 2 == 0 ? (UInt64(1) << 40) + UInt64(i) : UInt64(3 * i + 1) }
            var new: [UInt64: UInt64] = [:]
            for i in m.location.indices { new[m.location[i].id] = ids[i]; m.location[i].id = ids[i] }
            for i in m.sample.indices { m.sample[i].locationID = m.sample[i].locationID.map { new[$0]! } }
        }
        XCTAssertEqual(try PprofFormat.decode(renumbered), original)
        assertRejected(try bytes { m in m.location[1].id = UInt64(1) << 40; m.location[2].id = UInt64(1) << 40 }, "is used twice")
    }

    func testInconsistentProfileIsAnErrorNotATrap() throws {
        var p = Synthetic.profile()
        p.samples[0].values = [1]
        XCTAssertThrowsError(try PprofFormat.encode(p)) { XCTAssertTrue("\($0)".contains("1 values for 2 sample types"), "\($0)") }
        p = Synthetic.profile()
        p.locations[0].lines[0].function = 1000
        XCTAssertThrowsError(try PprofFormat.encode(p)) { XCTAssertTrue("\($0)".contains("function 1000"), "\($0)") }
        p = Synthetic.profile()
        p.stacks[0] = [12345]
        XCTAssertThrowsError(try PprofFormat.encode(p)) { XCTAssertTrue("\($0)".contains("location 12345"), "\($0)") }
    }

    /// A profile over one sample segment (16,384 samples) and one gzip piece is encoded in
    /// segments on several threads and compressed piece by piece; joined, it is the same message.
    func testLargeProfileIsWrittenInSegmentsThatJoinToOneMessage() throws {
        let profile = Synthetic.large(stacks: 34_000, threads: 4, depth: 12, functions: 2000)
        XCTAssertGreaterThan(profile.samples.count, 2 * 16_384)
        let plain = try PprofFormat.encodeUncompressed(profile)
        XCTAssertGreaterThan(plain.count, Gzip.pieceSize)
        let compressed = try PprofFormat.encode(profile)
        XCTAssertEqual(try Gzip.decompress(compressed), plain, "the gzip member holds exactly the uncompressed message")
        XCTAssertEqual(try PprofFormat.encode(profile), compressed, "same profile, same bytes")
        let reserialized: [UInt8] = try Perftools_Profiles_Profile(serializedBytes: plain).serializedBytes()
        XCTAssertEqual(reserialized, plain, "canonical protobuf across segment boundaries")
        let read = try PprofFormat.decode(compressed)
        XCTAssertEqual(read.samples.count, profile.samples.count)
        XCTAssertEqual(read.total(0), profile.total(0))
        XCTAssertEqual(read.top(valueIndex: 0), profile.top(valueIndex: 0))
        XCTAssertEqual(try PprofFormat.encode(read), compressed, "write → read → write changed the bytes")

        // An inconsistency in the last segment is found as in the first.
        var broken = profile
        broken.samples[broken.samples.count - 1].values = [1]
        XCTAssertThrowsError(try PprofFormat.encode(broken)) { XCTAssertTrue("\($0)".contains("1 values for 2 sample types"), "\($0)") }
        broken = profile
        broken.stacks[broken.samples[broken.samples.count - 1].stack].append(1_000_000)
        XCTAssertThrowsError(try PprofFormat.encode(broken)) { XCTAssertTrue("\($0)".contains("location 1000000"), "\($0)") }
        broken = profile
        broken.samples[20_000].thread = 99
        XCTAssertThrowsError(try PprofFormat.encode(broken)) { XCTAssertTrue("\($0)".contains("thread 99"), "\($0)") }
    }

    /// Compressible but not trivially so: 4 random bits a byte from a linear congruential generator.
    private func nibbles(_ count: Int, seed: UInt32) -> [UInt8] {
        var input = [UInt8]()
        input.reserveCapacity(count)
        var x = seed
        for _ in 0..<count {
            x = x &* 1_103_515_245 &+ 12345
            input.append(UInt8(truncatingIfNeeded: x >> 24) & 0x0f)
        }
        return input
    }

    func testGzipOfSegmentsIsTheGzipOfTheirJoin() throws {
        let input = nibbles(2_500_000, seed: 7)
        try input.withUnsafeBufferPointer { all in
            // Segment ends away from piece boundaries, an empty segment, a one-byte one.
            let cuts = [0, 10, 10, 11, 700_000, Gzip.pieceSize + 5, all.count]
            let segments = zip(cuts, cuts.dropFirst()).map { UnsafeBufferPointer(rebasing: all[$0..<$1]) }
            let compressed = try Gzip.compress(segments: segments)
            XCTAssertEqual(try Gzip.decompress(compressed), input)
            XCTAssertEqual(try Gzip.compress(segments: segments), compressed)
            // Small inputs in several segments are one zlib call, as if joined.
            let small = Array(segments.prefix(4))
            XCTAssertEqual(try Gzip.compress(segments: small), try Gzip.compress(Array(input.prefix(700_000))))
        }
    }

    func testGzipRoundTripOfLargeInput() throws {
        let input = nibbles(3_000_000, seed: 1)
        let compressed = try Gzip.compress(input)
        XCTAssertLessThan(compressed.count, input.count)
        XCTAssertEqual(try Gzip.decompress(compressed), input)
        XCTAssertEqual(try Gzip.compress(input), compressed, "pieces compressed in parallel, same bytes")
        XCTAssertEqual(Array(compressed.prefix(10)), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3])
        // Another implementation agrees (Python's gzip module, through its own zlib binding).
        let file = try Tools.write(compressed, name: "pieces.gz")
        let check = try Tools.run("/usr/bin/python3", ["-c", "import gzip,sys,hashlib; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())", file.path])
        let expected = try Tools.run("/usr/bin/python3", ["-c", "import sys,hashlib; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
                                                           try Tools.write(input, name: "pieces.raw").path])
        XCTAssertEqual(check.out, expected.out, check.err)
        XCTAssertEqual(try Gzip.decompress(try Gzip.compress(Array(input.prefix(Gzip.pieceSize + 1)))), Array(input.prefix(Gzip.pieceSize + 1)))
        XCTAssertEqual(try Gzip.decompress(try Gzip.compress(Array(input.prefix(Gzip.pieceSize)))), Array(input.prefix(Gzip.pieceSize)))
        XCTAssertThrowsError(try Gzip.decompress(compressed, limit: 1 << 20)) { XCTAssertTrue("\($0)".contains("expands beyond")) }
    }
}
