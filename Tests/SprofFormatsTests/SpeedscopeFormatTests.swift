import Foundation
import SprofProfile
import XCTest
@testable import SprofFormats

final class SpeedscopeFormatTests: XCTestCase {
    override func setUp() {
        super.setUp()
        Tools.setUp()
    }

    override func tearDown() {
        Tools.cleanUp()
        super.tearDown()
    }

    private func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func testValidatesAgainstSpeedscopeSchema() throws {
        let python = "/usr/bin/python3"
        let check = try Tools.run(python, ["-c", "import jsonschema"])
        guard check.status == 0 else {
            throw XCTSkip("Debian's python3-jsonschema is not installed (apt-get install python3-jsonschema): \(check.err)")
        }
        let schema = try Tools.fixture("speedscope-file-format-schema.json").path
        let script = """
        import json, sys, jsonschema
        schema = json.load(open(sys.argv[1]))
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        for path in sys.argv[2:]:
            errors = list(cls(schema).iter_errors(json.load(open(path))))
            for e in errors:
                print(path, e.message, list(e.absolute_path))
            if not errors:
                print(path, "valid")
        """
        let synthetic = Synthetic.profile()
        let go = try PprofFormat.decode([UInt8](Data(contentsOf: try Tools.fixture("go-cpu.pb.gz"))))
        let files = [
            try Tools.write(SpeedscopeFormat.encode(synthetic, valueIndex: 1, name: "./app \"quoted\"\n\tname"), name: "cpu.speedscope.json"),
            try Tools.write(SpeedscopeFormat.encode(synthetic, valueIndex: 0, name: "counts"), name: "count.speedscope.json"),
            try Tools.write(SpeedscopeFormat.encode(go, valueIndex: 1, name: "go"), name: "go.speedscope.json"),
            try Tools.write(SpeedscopeFormat.encode(Profile(), valueIndex: 0, name: "empty"), name: "empty.speedscope.json"),
        ]
        let result = try Tools.run(python, ["-c", script, schema] + files.map(\.path))
        XCTAssertEqual(result.status, 0, result.err)
        XCTAssertEqual(result.out.split(separator: "\n").filter { $0.hasSuffix(" valid") }.count, files.count, result.out)

        // The validator is not vacuous: a wrong unit is rejected.
        var broken = try json(SpeedscopeFormat.encode(synthetic, valueIndex: 1, name: "x"))
        var profiles = try XCTUnwrap(broken["profiles"] as? [[String: Any]])
        profiles[0]["unit"] = "furlongs"
        broken["profiles"] = profiles
        let bad = try Tools.write([UInt8](JSONSerialization.data(withJSONObject: broken)), name: "bad.speedscope.json")
        let rejected = try Tools.run(python, ["-c", script, schema, bad.path])
        XCTAssertTrue(rejected.out.contains("furlongs"), rejected.out + rejected.err)
    }

    func testOneSampledProfilePerThreadWithSharedFrames() throws {
        let profile = Synthetic.profile()
        let bytes = SpeedscopeFormat.encode(profile, valueIndex: 1, name: "./app")
        XCTAssertEqual(bytes, SpeedscopeFormat.encode(profile, valueIndex: 1, name: "./app"), "deterministic")
        let doc = try json(bytes)
        XCTAssertEqual(doc["$schema"] as? String, "https://www.speedscope.app/file-format-schema.json")
        XCTAssertEqual(doc["exporter"] as? String, "sprof 0.9.0-test")
        let frames = try XCTUnwrap((doc["shared"] as? [String: Any])?["frames"] as? [[String: Any]])
        let names = frames.map { $0["name"] as? String ?? "?" }
        XCTAssertEqual(names.count, Set(zip(names, frames.map { "\($0["file"] ?? "")" }).map { "\($0)\($1)" }).count, "frames are shared, not repeated")
        let square = try XCTUnwrap(frames.first { $0["name"] as? String == "square(_:)" })
        XCTAssertEqual(square["file"] as? String, "/src/app/compute.swift")
        XCTAssertEqual(square["line"] as? Int, 40)
        XCTAssertNil(frames.first { $0["name"] as? String == "do_syscall_64" }?["file"], "no file when unknown")

        let profiles = try XCTUnwrap(doc["profiles"] as? [[String: Any]])
        XCTAssertEqual(profiles.count, 3, "one per thread")
        XCTAssertEqual(profiles.map { $0["name"] as? String ?? "" }, ["app (app 100/100)", "worker 1 (app 100/101)", "other (other 200/200)"])
        XCTAssertEqual(doc["activeProfileIndex"] as? Int, 0, "the heaviest thread")
        var total: Int64 = 0
        for p in profiles {
            XCTAssertEqual(p["type"] as? String, "sampled")
            XCTAssertEqual(p["unit"] as? String, "nanoseconds")
            let samples = try XCTUnwrap(p["samples"] as? [[Int]])
            let weights = try XCTUnwrap(p["weights"] as? [Int64])
            XCTAssertEqual(samples.count, weights.count)
            XCTAssertEqual(p["endValue"] as? Int64, weights.reduce(0, +))
            XCTAssertTrue(samples.allSatisfy { $0.allSatisfy { frames.indices.contains($0) } })
            total += weights.reduce(0, +)
        }
        XCTAssertEqual(total, profile.total(1))

        // The inline chain is expanded root first: compute → helper → square, under main.
        let app = try XCTUnwrap(profiles[0]["samples"] as? [[Int]])
        let appWeights = try XCTUnwrap(profiles[0]["weights"] as? [Int64])
        let chain = ["main", "compute(_:)", "helper", "square(_:)"]
        let i = try XCTUnwrap(app.firstIndex { $0.map { names[$0] } == chain }, "\(app.map { $0.map { names[$0] } })")
        XCTAssertEqual(appWeights[i], 50 * Synthetic.period)
        // Kernel frames and markers are frames like any other.
        let worker = try XCTUnwrap(profiles[1]["samples"] as? [[Int]]).map { $0.map { names[$0] } }
        XCTAssertTrue(worker.contains(["main", "__memcpy_avx_unaligned_erms", "do_syscall_64"]), "\(worker)")
        XCTAssertTrue(worker.contains(["[truncated]", "compute(_:)"]), "\(worker)")
        XCTAssertTrue(worker.contains(["main", "[libc.so.6+0x7f0000015678]"]), "\(worker)")
    }

    /// Folded input has no threads: its root frames group the samples, without ids to show (a
    /// tester saw `app (app 0/0)`).
    func testFoldedRootGroupsAreTitledByTheirNameAlone() throws {
        let profile = Profile(folded: [(["app", "main", "work"], 3), (["tool", "run"], 1)])
        let doc = try json(SpeedscopeFormat.encode(profile, valueIndex: 0, name: "from folded"))
        let names = try XCTUnwrap(doc["profiles"] as? [[String: Any]]).map { $0["name"] as? String }
        XCTAssertEqual(names, ["app", "tool"])
    }

    func testCountsHaveNoUnitAndThreadlessSamplesGetOneProfile() throws {
        let profile = Profile(folded: [(["app", "main", "work"], 3), (["app", "main"], 2), (["tool", "run"], 1)])
        var threadless = profile
        threadless.samples = threadless.samples.map { Profile.Sample(stack: $0.stack, thread: nil, values: $0.values) }
        let doc = try json(SpeedscopeFormat.encode(threadless, valueIndex: 0, name: "from folded"))
        let profiles = try XCTUnwrap(doc["profiles"] as? [[String: Any]])
        XCTAssertEqual(profiles.count, 1)
        XCTAssertEqual(profiles[0]["name"] as? String, "from folded")
        XCTAssertEqual(profiles[0]["unit"] as? String, "none")
        XCTAssertEqual(profiles[0]["endValue"] as? Int, 6)
        // Sorted by frame names: speedscope's time-order view reads like a flame graph.
        let frames = try XCTUnwrap((doc["shared"] as? [String: Any])?["frames"] as? [[String: Any]]).map { $0["name"] as! String }
        let samples = try XCTUnwrap(profiles[0]["samples"] as? [[Int]]).map { $0.map { frames[$0] }.joined(separator: ";") }
        XCTAssertEqual(samples, ["main", "main;work", "run"])
    }

    func testStringsAreEscaped() throws {
        var w = JSONWriter()
        w.string("a\"b\\c\nd\u{1}é")
        XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), #""a\"b\\c\nd\u0001é""#)
        for n: Int64 in [0, 7, 10, -3, 1_234_567_890_123, .max, .min] {
            var w = JSONWriter()
            w.int(n)
            XCTAssertEqual(String(decoding: w.bytes, as: UTF8.self), String(n))
        }
    }
}
