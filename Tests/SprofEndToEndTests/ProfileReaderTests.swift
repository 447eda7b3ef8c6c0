import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// One reader of profile files (`ProfileReader`): the same bad input gets the same one line from
/// every subcommand that reads profiles.
final class ProfileReaderTests: XCTestCase {
    private func stderrLines(_ s: String) -> [Substring] { s.split(separator: "\n") }

    func testBadInputGetsTheSameLineFromEverySubcommand() throws {
        let prefix = SprofCLI.outputPrefix("bad-input")
        let good = prefix + ".good.folded"
        try "main;a 3\nmain;b 1\n".write(toFile: good, atomically: true, encoding: .utf8)
        let profile = Profile(folded: [(frames: ["main", "a"], count: 3), (frames: ["main", "b"], count: 2)])
        let pprof = try PprofFormat.encode(profile)
        let inputs: [(name: String, bytes: [UInt8], expected: String)] = [
            ("nul.folded", Array("main;a 3\nmain;b\0 1\n".utf8), ":2: a NUL byte (0x00) at byte 7 of the line; folded stacks are text"),
            ("truncated.pb.gz", Array(pprof.prefix(pprof.count / 2)), ": not a readable pprof file"),
            ("empty.folded", [], ": no samples (an empty profile?)"),
        ]
        for input in inputs {
            let path = prefix + "." + input.name
            FileManager.default.createFile(atPath: path, contents: Data(input.bytes))
            var seen: [String: String] = [:]
            for args in [["report", path], ["flamegraph", path, "-o", prefix + ".svg"],
                         ["convert", path, "--to", "folded", "-o", prefix + ".out.folded"],
                         ["diff", good, path, "-o", prefix + ".diff.svg"], ["annotate", "main", path]] {
                let r = try SprofCLI.run(args)
                XCTAssertEqual(r.status, 1, "\(args[0]) \(input.name): \(r.stderr)")
                XCTAssertEqual(stderrLines(r.stderr).count, 1, "\(args[0]) \(input.name): \(r.stderr)")
                XCTAssertTrue(r.stderr.hasPrefix("sprof: \(path)\(input.expected)"), "\(args[0]) \(input.name): \(r.stderr)")
                // flamegraph alone adds how to draw an empty graph anyway.
                seen[args[0]] = r.stderr.replacingOccurrences(of: "; --allow-empty writes an empty graph anyway", with: "")
            }
            XCTAssertEqual(Set(seen.values).count, 1, "\(input.name): the subcommands disagree: \(seen)")
        }
    }

    /// The library reader is what the CLI uses: its message is the CLI's line without `sprof: `.
    func testTheLibraryReaderGivesTheSameLine() throws {
        XCTAssertThrowsError(try ProfileReader.read([], source: "x")) {
            XCTAssertEqual("\($0)", "x: no samples (an empty profile?)")
        }
        XCTAssertThrowsError(try ProfileReader.read(Array("a;b\0 1\n".utf8), source: "x")) {
            XCTAssertEqual("\($0)", "x:1: a NUL byte (0x00) at byte 4 of the line; folded stacks are text (remove the byte, or give a pprof file)")
        }
        let read = try ProfileReader.read(Array("main;a 3\n".utf8), source: "x")
        XCTAssertTrue(read.isFolded)
        XCTAssertEqual(read.profile.total(), 3)
    }

    /// The registry names each format once: convert's --to, run's suffixes, the server's MIME types.
    func testFormatRegistry() {
        XCTAssertEqual(ProfileFormat.convertible.map(\.name), ["folded", "pprof", "speedscope"])
        XCTAssertEqual(ProfileFormat.mimeType(ofFileName: "profile.pb.gz"), "application/gzip")
        XCTAssertEqual(ProfileFormat.mimeType(ofFileName: "profile.wall.svg"), "image/svg+xml")
        XCTAssertEqual(ProfileFormat.mimeType(ofFileName: "profile.speedscope.json"), "application/json")
        XCTAssertEqual(ProfileFormat.mimeType(ofFileName: "profile.folded"), "text/plain; charset=utf-8")
        XCTAssertEqual(ProfileFormat.mimeType(ofFileName: "output.log"), "text/plain; charset=utf-8")
    }
}

/// Names are made by the views: a saved pprof keeps the display name (`name`) and the linkage
/// name (`system_name`), and `report --full-names` makes the full Swift signature from the latter.
final class SavedNamesTests: XCTestCase {
    func testReportFullNamesOnASavedPprofPrintsFullSwiftNames() throws {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let thread = b.thread(Profile.Thread(pid: 1, tid: 1, name: "sprof-fixtures", processName: "sprof-fixtures"))
        let mapping = b.mapping(Profile.Mapping(start: 0x1000, limit: 0x9000, path: "/bin/sprof-fixtures"))
        let burn = b.function(Profile.Function(name: "burnSixty(_:_:)", fullName: "sprof_fixtures.burnSixty(Swift.UInt64, Swift.UInt64) -> Swift.UInt64",
                                               systemName: "$s14sprof_fixtures9burnSixtyys6UInt64VAD_ADtF"))
        let main = b.function(Profile.Function(name: "main", systemName: "main"))
        let leaf = b.location(Profile.Location(address: 0x1100, mapping: mapping, lines: [Profile.Line(function: burn)]))
        let root = b.location(Profile.Location(address: 0x1200, mapping: mapping, lines: [Profile.Line(function: main)]))
        b.add(stack: b.stack([leaf, root]), thread: thread, values: [7])
        let path = SprofCLI.outputPrefix("full-names") + ".pb.gz"
        try Data(try PprofFormat.encode(b.build(metadata: Profile.Metadata()))).write(to: URL(fileURLWithPath: path))

        let full = try SprofCLI.run(["report", "--full-names", "--format", "csv", path])
        XCTAssertEqual(full.status, 0, full.stderr)
        XCTAssertTrue(full.stdout.contains("\"sprof_fixtures.burnSixty(Swift.UInt64, Swift.UInt64) -> Swift.UInt64\""), full.stdout)
        let short = try SprofCLI.run(["report", "--format", "csv", path])
        XCTAssertTrue(short.stdout.contains(",burnSixty(_:_:)\n"), short.stdout)
        XCTAssertFalse(short.stdout.contains("Swift.UInt64"), short.stdout)
    }
}

/// Two Swift specializations of one generic share a short name; the views tell them apart, in a
/// saved profile too, and `sprof diff` names both of its profiles together.
final class CollidingNamesTests: XCTestCase {
    static let short = "specialized Array.append(_:)"
    static let functions = [
        (Profile.Function(name: short, fullName: "generic specialization <Swift.Int> of Swift.Array.append(__owned A) -> ()",
                          systemName: "$sSa6appendyyxnFSi_Tg5"), "specialized Array.append(_:) <Int>"),
        (Profile.Function(name: short, fullName: "generic specialization <Swift.Double> of Swift.Array.append(__owned A) -> ()",
                          systemName: "$sSa6appendyyxnFSd_Tg5"), "specialized Array.append(_:) <Double>"),
    ]

    /// A saved profile of `main` calling each of the first `count` functions, `counts[i]` samples each.
    static func save(_ name: String, counts: [Int64]) throws -> String {
        var b = ProfileBuilding(sampleTypes: [.init(type: "samples", unit: "count")])
        let thread = b.thread(Profile.Thread(pid: 1, tid: 1, name: "app", processName: "app"))
        let main = b.location(Profile.Location(address: 0x100, lines: [.init(function: b.function(Profile.Function(name: "main", systemName: "main")))]))
        for (i, count) in counts.enumerated() {
            let leaf = b.location(Profile.Location(address: 0x200 + UInt64(i), lines: [.init(function: b.function(functions[i].0))]))
            b.add(stack: b.stack([leaf, main]), thread: thread, values: [count])
        }
        let path = SprofCLI.outputPrefix(name) + ".pb.gz"
        try Data(try PprofFormat.encode(b.build(metadata: Profile.Metadata()))).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testASavedProfileShowsToldApartShortNamesAndFullNamesOnRequest() throws {
        let path = try Self.save("colliding", counts: [3, 2])
        let short = try SprofCLI.run(["report", "--format", "csv", path])
        XCTAssertEqual(short.status, 0, short.stderr)
        XCTAssertTrue(short.stdout.contains(",specialized Array.append(_:) <Int>\n"), short.stdout)
        XCTAssertTrue(short.stdout.contains(",specialized Array.append(_:) <Double>\n"), short.stdout)
        let full = try SprofCLI.run(["report", "--full-names", "--format", "csv", path])
        XCTAssertEqual(full.status, 0, full.stderr)
        XCTAssertTrue(full.stdout.contains(",generic specialization <Swift.Int> of Swift.Array.append(__owned A) -> ()\n"), full.stdout)
        XCTAssertTrue(full.stdout.contains(",generic specialization <Swift.Double> of Swift.Array.append(__owned A) -> ()\n"), full.stdout)
        let folded = try SprofCLI.run(["convert", "--to", "folded", "-o", "-", path])
        XCTAssertEqual(folded.status, 0, folded.stderr)
        XCTAssertEqual(folded.stdout, "app;main;specialized Array.append(_:) <Double> 2\napp;main;specialized Array.append(_:) <Int> 3\n")
    }

    /// BASE holds one specialization (its short name alone, as saved), NEW both: the diff names
    /// the two profiles together, so the `Int` specialization is one row with both shares.
    func testDiffNamesBothSavedProfilesTogether() throws {
        let base = try Self.save("colliding-base", counts: [5])
        let new = try Self.save("colliding-new", counts: [3, 2])
        let d = try SprofCLI.run(["diff", base, new, "-o", SprofCLI.outputPrefix("colliding") + ".svg"])
        XCTAssertEqual(d.status, 0, d.stderr)
        let names = d.stdout.split(separator: "\n").dropFirst().compactMap { $0.components(separatedBy: "  ").last }
        XCTAssertEqual(Set(names), ["main", "specialized Array.append(_:) <Int>", "specialized Array.append(_:) <Double>"], d.stdout)
        let int = try XCTUnwrap(d.stdout.split(separator: "\n").first { $0.hasSuffix("  specialized Array.append(_:) <Int>") })
        XCTAssertTrue(int.hasPrefix("    100.00      60.00"), String(int))
    }
}

/// Report rendering lives in the library (`ProfileReport`, SprofOutput): the CLI's bytes are the
/// library's for the same profile and options, so the server and library users print the same table.
final class ProfileReportTests: XCTestCase {
    func testTheCLIPrintsTheLibrarysReport() throws {
        let path = SprofCLI.outputPrefix("report-lib") + ".folded"
        try "app;main;parse 7\napp;main;parse;lex 3\napp;main;\"quoted,name\" 2\n".write(toFile: path, atomically: true, encoding: .utf8)
        let profile = try ProfileReader.read(Array(try Data(contentsOf: URL(fileURLWithPath: path))), source: path).profile
        for (format, options) in [("text", ProfileReport()), ("csv", ProfileReport(format: .csv)), ("json", ProfileReport(format: .json)),
                                  ("text", ProfileReport(keys: [.comm, .sym], limit: 2))] {
            var args = ["report", path, "--format", format]
            if options.limit == 2 { args += ["--sort", "comm,sym", "--limit", "2"] }
            let r = try SprofCLI.run(args)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, try options.render(profile, file: path), "\(args)")
        }
    }

    /// The header groups the lost count as the summary line does (a tester saw `91,259 samples,
    /// 42174 lost`).
    func testTheHeaderGroupsTheLostCount() throws {
        var profile = Profile(folded: [(["app", "main"], 91_259)])
        profile.metadata.sprofVersion = "test"
        profile.metadata.statistics.lostRecords = 42_174
        let text = try ProfileReport().render(profile, file: "p.pb.gz")
        XCTAssertTrue(text.hasPrefix("# p.pb.gz: 91,259 samples, 42,174 lost"), text)
    }
}
