#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// Issue 12, "never lose a profile, never mislead": failed runs keep earlier outputs, unusual
/// parents (ignored SIGCHLD, a closed stderr pipe) do not change the exit status, argument
/// mistakes are one-line usage errors, and argv bytes reach the command unchanged.
final class ReliabilityTests: XCTestCase {
    /// Negative sample values (pprof allows them): one rule for every view, counted as 0 with a
    /// notice; report, folded, speedscope and the flame graph agree on the total (issue 20).
    func testNegativeValuesCountAsZeroInEveryView() throws {
        let prefix = SprofCLI.outputPrefix("negative")
        let pprof = prefix + ".pb.gz"
        // Profile(folded:) keeps positive counts only: the negative value is set afterwards.
        var profile = Profile(folded: [(["main", "grew"], 300), (["main", "shrank"], 50), (["main", "same"], 100)])
        let shrank = try XCTUnwrap(profile.samples.firstIndex { $0.values == [50] })
        profile.samples[shrank].values = [-100]
        FileManager.default.createFile(atPath: pprof, contents: Data(try PprofFormat.encode(profile)))
        let report = try SprofCLI.run(["report", "--format", "csv", pprof])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.stderr.contains("1 sample has negative values, counted as 0"), report.stderr)
        XCTAssertFalse(report.stdout.contains("-"), "no negative row or share: \(report.stdout)")
        XCTAssertTrue(report.stdout.contains("300,75.0000"), "300 of 400: \(report.stdout)")
        let folded = try SprofCLI.run(["convert", pprof, "--to", "folded", "-o", "-"])
        XCTAssertEqual(folded.stdout.split(separator: "\n").sorted(), ["main;grew 300", "main;same 100"])
        XCTAssertTrue(folded.stderr.contains("counted as 0"), folded.stderr)
        let svg = try SprofCLI.run(["flamegraph", pprof])
        XCTAssertTrue(svg.stderr.contains("counted as 0"), svg.stderr)
        XCTAssertTrue(svg.stdout.contains("400 samples"), "the graph's total: 400")
        let speedscope = try SprofCLI.run(["convert", pprof, "--to", "speedscope", "-o", "-"])
        XCTAssertTrue(speedscope.stdout.contains("\"endValue\":400") || speedscope.stdout.contains("\"endValue\" : 400"), speedscope.stdout)
    }

    /// Small argument and input mistakes of issue 20: each one line and a documented status.
    func testEmptySortKeysPerThreadFoldedAndNULBytesAreRefused() throws {
        let prefix = SprofCLI.outputPrefix("small")
        let folded = prefix + ".folded"
        try "main;work 5\nmain;idle 3\n".write(toFile: folded, atomically: false, encoding: .utf8)
        for sort in ["", ",", "sym,"] {
            let r = try SprofCLI.run(["report", "--sort", sort, folded])
            XCTAssertEqual(r.status, 2, "--sort '\(sort)': \(r.stdout)\(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertEqual(r.stdout, "")
        }
        let perThread = try SprofCLI.run(["convert", folded, "--to", "folded", "--per-thread", "-o", prefix + ".out"])
        XCTAssertEqual(perThread.status, 2, perThread.stdout + perThread.stderr)
        XCTAssertTrue(perThread.stderr.contains("--per-thread needs a pprof input"), perThread.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: prefix + ".out"))
        // Only folded output is rooted at threads: with another format the flag did nothing, silently.
        let otherFormat = try SprofCLI.run(["convert", folded, "--to", "pprof", "--per-thread", "-o", prefix + ".pb.gz"])
        XCTAssertEqual(otherFormat.status, 2, otherFormat.stderr)
        XCTAssertTrue(otherFormat.stderr.contains("--per-thread is for --to folded"), otherFormat.stderr)
        let flame = try SprofCLI.run(["flamegraph", folded, "--per-thread", "-o", prefix + ".svg"])
        XCTAssertEqual(flame.status, 2, flame.stderr)
        XCTAssertTrue(flame.stderr.hasSuffix("(see sprof flamegraph --help)\n"), "a usage error ends with its pointer to the help: \(flame.stderr)")
        // Nor does report invent threads ("pid 0, tid 0") or addresses (0x0) for folded stacks.
        for (extra, says) in [(["--threads"], "--threads needs a pprof input"), (["--sort", "sym,thread"], "--sort thread needs a pprof input"),
                              (["--addresses"], "--addresses needs a pprof input")] {
            let r = try SprofCLI.run(["report", folded] + extra)
            XCTAssertEqual(r.status, 2, "\(extra): \(r.stdout)\(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), r.stderr)
            XCTAssertEqual(r.stdout, "")
        }

        // A NUL byte on line 2, the 7th byte of the line: every reader names it the same way.
        let nul = prefix + "-nul.folded"
        FileManager.default.createFile(atPath: nul, contents: Data("main;a 5\nmain;b\u{0}x 3\n".utf8))
        for arguments in [["report", nul], ["flamegraph", nul], ["convert", nul, "--to", "folded", "-o", "-"], ["diff", folded, nul, "-o", prefix + ".svg"]] {
            let r = try SprofCLI.run(arguments)
            XCTAssertEqual(r.status, 1, "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr, "sprof: \(nul):2: a NUL byte (0x00) at byte 7 of the line; folded stacks are text (remove the byte, or give a pprof file)\n", "\(arguments)")
        }
    }

    /// --min-samples at its boundary: a run that has 0 samples (one sample every 10^15 events)
    /// fails with 1 and passes with 0 (issue 20).
    func testMinSamplesBoundary() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("minsamples")
        let none = try SprofCLI.run(["run", "-q", "-c", "1000000000000000", "--min-samples", "1", "-o", prefix, "--", "true"])
        XCTAssertEqual(none.status, 2, none.stderr)
        XCTAssertTrue(none.stderr.contains("0 samples, fewer than --min-samples 1"), none.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: prefix + ".folded"))
        let exact = try SprofCLI.run(["run", "-q", "-c", "1000000000000000", "--min-samples", "0", "-o", prefix, "--", "true"])
        XCTAssertEqual(exact.status, 0, exact.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + ".pb.gz"))
    }

    /// `run -o -` is refused with one line pointing at convert, and creates no `-.folded` (issue 20).
    func testRunToStandardOutputIsRefused() throws {
        let dir = (SprofCLI.outputPrefix("dash") as NSString).deletingLastPathComponent
        let sprof = try TestFixtures.sprofPath()
        let r = try TestFixtures.run("/bin/sh", ["-c", "cd \"$1\" && exec \"$0\" run -o - -- true", sprof, dir])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("sprof convert PREFIX.pb.gz --to pprof -o -"), r.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    /// An output that is an input is refused with one line, and the input survives (issue 20):
    /// by name, through a hard link, and for every subcommand that reads and writes files.
    func testOutputThatIsAnInputIsRefused() throws {
        let sprof = try TestFixtures.sprofPath()
        let prefix = SprofCLI.outputPrefix("sameio")
        let folded = prefix + ".folded", linked = prefix + "-link.folded", pprof = prefix + ".pb.gz"
        try "main;work 5\nmain;idle 3\n".write(toFile: folded, atomically: false, encoding: .utf8)
        XCTAssertEqual(link(folded, linked), 0)
        XCTAssertEqual(try SprofCLI.run(["convert", folded, "--to", "pprof", "-o", pprof]).status, 0)
        let cases: [[String]] = [
            ["flamegraph", "-o", folded, folded],
            ["flamegraph", "-o", linked, folded],
            ["diff", folded, pprof, "-o", pprof],
            ["diff", pprof, folded, "-o", folded],
            ["convert", pprof, "--to", "speedscope", "-o", pprof],
            ["convert", folded, "--to", "folded", "-o", linked],
            ["stat", "--json", "-o", folded, "--baseline", folded, "--", "true"],
        ]
        let before = [folded, pprof].map { FileManager.default.contents(atPath: $0) }
        for arguments in cases {
            let r = try TestFixtures.run(sprof, arguments)
            XCTAssertEqual(r.status, 2, "\(arguments): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("is the input file"), r.stderr)
            XCTAssertEqual([folded, pprof].map { FileManager.default.contents(atPath: $0) }, before, "\(arguments) changed an input")
        }
    }

    /// A write that fails at the SVG (here: the file-size limit, as a full disk would) leaves all
    /// of PREFIX.* from the previous run: none of the new files replaces its old one (issue 20).
    func testAFailedOutputReplacesNoneOfThem() throws {
        try SprofCLI.requirePerfEvents()
        let fixture = try TestFixtures.swiftFixturePath()
        let sprof = try TestFixtures.sprofPath()
        let prefix = SprofCLI.outputPrefix("allornone")
        let first = try TestFixtures.run(sprof, ["run", "-q", "-o", prefix, "--", fixture, "split", "0.3"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let suffixes = [".folded", ".svg", ".pb.gz", ".memory.tsv"]
        let before = suffixes.map { FileManager.default.contents(atPath: prefix + $0) }
        XCTAssertTrue(before.allSatisfy { $0 != nil })
        // 16 KiB per file: the folded text fits, the SVG (with its script, > 20 KiB) does not.
        // SIGXFSZ ignored, so the write fails with EFBIG instead of killing sprof.
        let second = try TestFixtures.run("/bin/sh", ["-c", "trap '' XFSZ; ulimit -f 32; exec \"$0\" run -q -o \"$1\" -- \"$2\" split 0.5", sprof, prefix, fixture])
        XCTAssertEqual(second.status, 1, second.stderr)
        XCTAssertTrue(second.stderr.contains("cannot write \(prefix).svg"), second.stderr)
        XCTAssertEqual(second.stderr.split(separator: "\n").filter { $0.hasPrefix("sprof:") }.count, 1, second.stderr)
        for (suffix, old) in zip(suffixes, before) {
            XCTAssertEqual(FileManager.default.contents(atPath: prefix + suffix), old, "\(suffix) was replaced")
        }
        let directory = (prefix as NSString).deletingLastPathComponent
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(".") }, [])
    }

    private let old = "previous profile\n"

    private func lines(_ s: String) -> [Substring] { s.split(separator: "\n") }

    /// A private directory with PREFIX.folded and PREFIX.svg holding an earlier "profile".
    private func earlierProfile() throws -> (dir: String, prefix: String) {
        let prefix = SprofCLI.outputPrefix("keep")
        try old.write(toFile: prefix + ".folded", atomically: false, encoding: .utf8)
        try old.write(toFile: prefix + ".svg", atomically: false, encoding: .utf8)
        return ((prefix as NSString).deletingLastPathComponent, prefix)
    }

    private func assertKept(_ prefix: String, _ context: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for ext in [".folded", ".svg"] {
            let text = (try? String(contentsOfFile: prefix + ext, encoding: .utf8)) ?? "<missing>"
            XCTAssertEqual(text, old, "\(prefix + ext) changed: \(context)", file: file, line: line)
        }
        let dir = (prefix as NSString).deletingLastPathComponent
        let stray = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".sprof-") }
        XCTAssertEqual(stray, [], "temporary files left behind: \(context)", file: file, line: line)
    }

    private func sigwrap() throws -> String { try TestFixtures.buildC("sigwrap", flags: ["-O1"]) }

    // MARK: 1. Output safety

    func testFailedRunsKeepTheEarlierProfile() throws {
        let notExecutable = SprofCLI.outputPrefix("plain") + ".txt"
        try "not a program".write(toFile: notExecutable, atomically: true, encoding: .utf8)
        let cases: [(args: [String], status: Int32)] = [
            (["--", "sprof-no-such-command-xyz"], 127),
            (["--", notExecutable], 126),
            (["--", "/tmp"], 126),
            (["-p", "999999999"], 1),
            (["-F", "-5", "--", "/bin/true"], 2),
            (["--frq", "99", "--", "/bin/true"], 2),
        ]
        for c in cases {
            let (_, prefix) = try earlierProfile()
            let r = try SprofCLI.run(["run", "-o", prefix] + c.args)
            XCTAssertEqual(r.status, c.status, "\(c.args): \(r.stderr)")
            XCTAssertEqual(lines(r.stderr).count, 1, "\(c.args): one line expected: \(r.stderr)")
            try assertKept(prefix, "\(c.args)")
        }
    }

    func testAnOutputThatIsADirectoryFailsBeforeRunningAndEmptiesNothing() throws {
        let (_, prefix) = try earlierProfile()
        try FileManager.default.removeItem(atPath: prefix + ".svg")
        try FileManager.default.createDirectory(atPath: prefix + ".svg", withIntermediateDirectories: false)
        let marker = prefix + ".ran"
        let r = try SprofCLI.run(["run", "-o", prefix, "--", "/bin/sh", "-c", "touch \(marker)"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("Is a directory"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the command ran although the output cannot be written")
        XCTAssertEqual(try String(contentsOfFile: prefix + ".folded", encoding: .utf8), old)
    }

    func testStatOutputIsKeptWhenTheCommandCannotRun() throws {
        let (_, prefix) = try earlierProfile()
        let r = try SprofCLI.run(["stat", "-o", prefix + ".folded", "--", "sprof-no-such-command-xyz"])
        XCTAssertEqual(r.status, 127, r.stderr)
        try assertKept(prefix, "stat -o")
    }

    func testFlamegraphRefusesInputWithoutSamplesAndKeepsTheEarlierSVG() throws {
        let (_, prefix) = try earlierProfile()
        let empty = prefix + ".empty"
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        for input in [empty, "/dev/null"] {
            let r = try SprofCLI.run(["flamegraph", input, "-o", prefix + ".svg"])
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
            XCTAssertTrue(r.stderr.contains("no samples") && r.stderr.contains("--allow-empty"), r.stderr)
            try assertKept(prefix, "flamegraph \(input)")
        }
        let allowed = try SprofCLI.run(["flamegraph", "--allow-empty", "/dev/null", "-o", prefix + ".svg"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        XCTAssertTrue(try String(contentsOfFile: prefix + ".svg", encoding: .utf8).contains("<svg"))
        let broken = try SprofCLI.run(["flamegraph", "/no/such/input.folded", "-o", prefix + ".folded"])
        XCTAssertEqual(broken.status, 1)
        XCTAssertEqual(try String(contentsOfFile: prefix + ".folded", encoding: .utf8), old)
    }

    func testASuccessfulRunReplacesTheFilesAndLeavesNoTemporaries() throws {
        try SprofCLI.requirePerfEvents()
        let (_, prefix) = try earlierProfile()
        let r = try SprofCLI.run(["run", "-q", "-o", prefix, "--", "/bin/true"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(try String(contentsOfFile: prefix + ".svg", encoding: .utf8).contains("<svg"))
        let dir = (prefix as NSString).deletingLastPathComponent
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".sprof-") }, [])
    }

    /// `-o DIR` (an existing directory) and `-o DIR/` write the default names inside it, never
    /// `DIR.folded` beside it or hidden `DIR/.folded` files.
    func testAnOutputDirectoryGetsTheDefaultNamesInside() throws {
        try SprofCLI.requirePerfEvents()
        let (_, prefix) = try earlierProfile()
        let dir = prefix + "-dir"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        for spelling in [dir, dir + "/"] {
            let r = try SprofCLI.run(["run", "-q", "-o", spelling, "--", "/bin/true"])
            XCTAssertEqual(r.status, 0, r.stderr)
            // (The memory timeline is written only when memory was sampled: not for /bin/true.)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0 != "sprof.memory.tsv" }.sorted(),
                           ["sprof.folded", "sprof.pb.gz", "sprof.svg"], spelling)
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + ".folded"), spelling)
        }
    }

    // MARK: 2. Unusual parents

    func testIgnoredSIGCHLDInTheParentDoesNotHideTheExitStatus() throws {
        try SprofCLI.requirePerfEvents()
        let wrap = try sigwrap()
        let sprof = try TestFixtures.sprofPath()
        for sub in [["run", "-q", "-o", SprofCLI.outputPrefix("chld")], ["stat", "-o", "/dev/null"]] {
            let r = try TestFixtures.run(wrap, ["-i", "\(SIGCHLD)", "--", sprof] + sub + ["--", "/bin/sh", "-c", "exit 3"])
            XCTAssertEqual(r.stdout, "exit 3\n", "\(sub[0]): \(r.stderr)")
        }
    }

    func testTheCommandStartsWithDefaultSignalsWhateverTheParentSet() throws {
        try SprofCLI.requirePerfEvents()
        let wrap = try sigwrap()
        let sprof = try TestFixtures.sprofPath()
        let r = try TestFixtures.run(wrap, ["-i", "\(SIGCHLD)", "-i", "\(SIGPIPE)", "-i", "\(SIGUSR1)", "-i", "\(SIGALRM)",
                                            "-b", "\(SIGUSR2)", "--", sprof, "stat", "-o", "/dev/null", "--",
                                            "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"])
        XCTAssertTrue(r.stdout.contains("SigIgn:\t0000000000000000"), r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("SigBlk:\t0000000000000000"), r.stdout + r.stderr)
    }

    func testAClosedStderrPipeNeitherKillsSprofNorLosesTheProfile() throws {
        try SprofCLI.requirePerfEvents()
        let wrap = try sigwrap()
        let sprof = try TestFixtures.sprofPath()
        for mode in ["-P", "-C"] {
            let prefix = SprofCLI.outputPrefix("pipe")
            // Notices and the summary go to stderr; with -P every write fails with EPIPE.
            let r = try TestFixtures.run(wrap, [mode, "--", sprof, "run", "-F", "500000", "-o", prefix, "--", "/bin/sh", "-c", "exit 4"])
            XCTAssertEqual(r.stdout, "exit 4\n", "\(mode): \(r.stderr)")
            let svg = (try? String(contentsOfFile: prefix + ".svg", encoding: .utf8)) ?? ""
            XCTAssertTrue(svg.hasPrefix("<?xml") || svg.hasPrefix("<svg"), "\(mode): no SVG written")
            let folded = (try? String(contentsOfFile: prefix + ".folded", encoding: .utf8)) ?? "<missing>"
            XCTAssertFalse(folded.contains("sprof:"), "\(mode): a notice landed in the profile: \(folded)")
        }
        // The command itself still gets SIGPIPE's default: `yes | head -1` ends.
        let r = try TestFixtures.run(wrap, ["-P", "--", sprof, "stat", "-o", "/dev/null", "--", "/bin/sh", "-c", "yes | head -1 >/dev/null"], timeout: 60)
        XCTAssertEqual(r.stdout, "exit 0\n", r.stderr)
    }

    func testADaemonizingCommandGetsOneNotice() throws {
        try SprofCLI.requirePerfEvents()
        let r = try SprofCLI.run(["run", "-o", SprofCLI.outputPrefix("daemon"), "--", "/bin/sh", "-c", "(sleep 3 &) ; exit 0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let notices = lines(r.stderr).filter { $0.contains("still running when the command exited") }
        XCTAssertEqual(notices.count, 1, r.stderr)
        XCTAssertTrue(notices.first?.contains("1 followed process was") == true, r.stderr)
        XCTAssertTrue(notices.first?.contains("sprof run -p ") == true, r.stderr)
        // A command whose children all end first gets no such notice.
        let plain = try SprofCLI.run(["run", "-o", SprofCLI.outputPrefix("nodaemon"), "--", "/bin/sh", "-c", "sleep 0.1; /bin/true"])
        XCTAssertFalse(plain.stderr.contains("still running"), plain.stderr)
        // Nor one whose children it killed just before exiting (they are still dying then).
        for i in 0..<3 {
            let killed = try SprofCLI.run(["run", "-o", SprofCLI.outputPrefix("killed\(i)"), "--", "/bin/sh", "-c",
                                           "yes >/dev/null & a=$!; yes >/dev/null & b=$!; sleep 0.3; kill $a $b"])
            XCTAssertFalse(killed.stderr.contains("still running"), killed.stderr)
        }
    }

    func testCountsUnderLossAreCalledLowerBounds() throws {
        try SprofCLI.requirePerfEvents()
        // One ring-buffer page and many short processes: records are lost on most machines.
        let r = try SprofCLI.run(["run", "-m", "1", "-F", "20000", "-o", SprofCLI.outputPrefix("loss"), "--",
                                  "/bin/sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done"])
        XCTAssertEqual(r.status, 0, r.stderr)
        guard let summary = lines(r.stderr).last(where: { $0.contains(" samples (") }) else { return XCTFail(r.stderr) }
        if summary.contains("(0 lost") {
            XCTAssertFalse(summary.contains("at least"), String(summary))
        } else {
            XCTAssertTrue(summary.contains("at least"), "lost records, yet exact counts: \(summary)")
        }
    }

    // MARK: 3. Arguments

    func testUnknownOptionsBeforeTheCommandAreUsageErrors() throws {
        let marker = SprofCLI.outputPrefix("ran")
        for (args, suggestion) in [(["--frq", "99"], "--freq"), (["--evnt", "cpu-clock"], "--event"), (["-z"], nil)] as [([String], String?)] {
            for sub in ["run", "stat"] {
                let r = try SprofCLI.run([sub] + args + ["--", "/bin/sh", "-c", "touch \(marker)"])
                XCTAssertEqual(r.status, 2, "\(sub) \(args): \(r.stderr)")
                XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
                XCTAssertTrue(r.stderr.contains("unknown option '\(args[0])'"), r.stderr)
                if let suggestion, sub == "run" || args[0] != "--frq" {
                    XCTAssertTrue(r.stderr.contains("did you mean '\(suggestion)'"), r.stderr)
                }
                XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "\(sub) \(args) ran the command")
            }
        }
    }

    /// Before any subcommand, a usage error points at `sprof --help`, never at `sprof -V --help`.
    func testTopLevelUsageErrorsPointAtTheTopLevelHelp() throws {
        for args in [["-X"], ["bogus"], ["--versio"], ["--hlp"]] {
            let r = try SprofCLI.run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasSuffix("(see sprof --help)\n"), r.stderr)
        }
        XCTAssertTrue(try SprofCLI.run(["--hlp"]).stderr.contains("(did you mean '--help'?)"))
        XCTAssertTrue(try SprofCLI.run(["--versio"]).stderr.contains("(did you mean '--version'?)"))
        let r = try SprofCLI.run(["report", "--bogus"])
        XCTAssertTrue(r.stderr.contains("unknown option '--bogus' (see sprof report --help)"), r.stderr)
    }

    func testBadNumbersGetOneLineAndStatus2() throws {
        for args in [["-F", "-5"], ["-c", "-5"], ["-F", "abc"], ["-c", "x"], ["-m", "-3"], ["-F"], ["--min-samples", "-3"], ["--max-memory", "10x"], ["--max-memory", "512K"]] {
            let r = try SprofCLI.run(["run"] + args + ["--", "/bin/true"])
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(lines(r.stderr).count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasSuffix("(see sprof run --help)\n"), "\(args): \(r.stderr)")
        }
        let r = try SprofCLI.run(["stat", "-r", "-2", "--", "/bin/true"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        // Subcommands without a command: a negative value reaches the subcommand's own check,
        // which names the option and the rule (not the parser's "missing value").
        for (args, says) in [(["report", "--limit", "-1", "x.pb.gz"], "--limit -1: must be 0 or more (see sprof report --help)"),
                             (["diff", "--fail-above", "-1", "a", "b"], "--fail-above -1.0: must be a number of percentage points"),
                             (["flamegraph", "--width", "-5", "x.folded"], "--width must be between 16 and 1000000 pixels, got -5 (see sprof flamegraph --help)"),
                             (["run", "--duration", "nan", "-p", "1"], "--duration nan: must be a positive number of seconds (see sprof run --help)")] {
            let r = try SprofCLI.run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
            XCTAssertEqual(lines(r.stderr).count, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(says), "\(args): \(r.stderr)")
        }
    }

    func testStandardOutputFailuresAreReportedAndAnEarlyReaderIsNot() throws {
        let folded = SprofCLI.outputPrefix("stdout") + ".folded"
        try "main;work 5\nmain;idle 2\n".write(toFile: folded, atomically: true, encoding: .utf8)
        let sprof = try TestFixtures.sprofPath()
        for sub in ["report \(folded)", "flamegraph \(folded)", "convert \(folded) --to pprof -o -", "list"] {
            // Closed: sprof must not write into a /dev/null it put there and say it succeeded.
            let closed = try TestFixtures.run("/bin/sh", ["-c", "\"$0\" \(sub) >&-", sprof])
            XCTAssertEqual(closed.status, 1, "\(sub) >&-: \(closed.stderr)")
            XCTAssertTrue(closed.stderr.hasPrefix("sprof: cannot write <stdout>: Bad file descriptor"), "\(sub) >&-: \(closed.stderr)")
            let full = try TestFixtures.run("/bin/sh", ["-c", "\"$0\" \(sub) >/dev/full", sprof])
            XCTAssertEqual(full.status, 1, "\(sub) >/dev/full: \(full.stderr)")
            XCTAssertTrue(full.stderr.contains("No space left on device"), "\(sub) >/dev/full: \(full.stderr)")
            // A reader that stops after a few bytes had what it wanted: quiet, status 0.
            let early = try TestFixtures.run("/bin/bash", ["-c", "\"$0\" \(sub) | head -c 1 >/dev/null; exit ${PIPESTATUS[0]}", sprof])
            XCTAssertEqual(early.status, 0, "\(sub) | head -c 1: \(early.stderr)")
            XCTAssertEqual(early.stderr, "", "\(sub) | head -c 1")
        }
    }

    func testAttachingToAZombieSaysItHasExited() throws {
        try SprofCLI.requirePerfEvents()
        let prefix = SprofCLI.outputPrefix("zombie")
        // This test process is the zombie's parent and reaps it only after sprof has answered.
        // (A shell as the parent reaped it now and then before sprof attached: "no process".)
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        XCTAssertEqual(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ), 0)
        defer { var status: Int32 = 0; _ = waitpid(pid, &status, 0) }
        func state() -> String? {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(close, offsetBy: 2)...].split(separator: " ").first.map(String.init)
        }
        var waited = 0
        while state() != "Z" && waited < 1000 { usleep(10_000); waited += 1 }
        XCTAssertEqual(state(), "Z", "/bin/true has exited and is not reaped yet")
        let r = try SprofCLI.run(["run", "-p", "\(pid)", "-o", prefix])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("has exited (a zombie its parent has not reaped)"), r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: prefix + ".folded"))
    }

    /// A pid that names no process gets the same line with and without --heap (the heap probes
    /// looked for the process's allocator first: "no mapped file of process N defines malloc"),
    /// and one that cannot be a pid is a usage error.
    func testAttachingToNoProcessSaysSo() throws {
        let prefix = SprofCLI.outputPrefix("nopid")
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        XCTAssertEqual(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ), 0)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        for extra in [[], ["--heap", "-e", "none"]] {
            let r = try SprofCLI.run(["run"] + extra + ["-p", "\(pid)", "-o", prefix])
            XCTAssertEqual(r.status, 1, "\(extra): \(r.stderr)")
            if extra.isEmpty || HeapOptions.uprobesAllowed {
                XCTAssertTrue(r.stderr.contains("no process \(pid) (check the pid with ps)"), "\(extra): \(r.stderr)")
            } else {
                XCTAssertTrue(r.stderr.contains("CAP_SYS_ADMIN"), r.stderr)
            }
            XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        }
        for bad in ["0", "-5"] {
            let r = try SprofCLI.run(["run", "-p", bad, "-o", prefix])
            XCTAssertEqual(r.status, 2, "-p \(bad): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("a process id is a positive number"), r.stderr)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: prefix + ".folded"))
    }

    func testFoldedCountsPastInt64AreRefusedNotCrashedOn() throws {
        let folded = SprofCLI.outputPrefix("int64") + ".folded"
        let prefix = SprofCLI.outputPrefix("int64-out")
        for text in ["a;b 9223372036854775807\na;c 1\n", "a;b 18446744073709551615\n"] {
            try text.write(toFile: folded, atomically: true, encoding: .utf8)
            for args in [["report", folded], ["convert", folded, "--to", "pprof", "-o", prefix + ".pb.gz"],
                         ["diff", folded, folded, "-o", prefix + ".svg"]] {
                let r = try SprofCLI.run(args)
                XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
                XCTAssertTrue(r.stderr.hasPrefix("sprof: \(folded): the counts add up to more than 9,223,372,036,854,775,807"), "\(args): \(r.stderr)")
                XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
            }
        }
        // Nothing half-written is left behind.
        let dir = (prefix as NSString).deletingLastPathComponent
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("int64-out") }
        XCTAssertEqual(left, [], "\(left)")
    }

    func testFoldedInputWithoutSamplesIsRefusedByEveryView() throws {
        let folded = SprofCLI.outputPrefix("nosamples") + ".folded"
        for text in ["  \n\n", "a;b 0\n"] {
            try text.write(toFile: folded, atomically: true, encoding: .utf8)
            for args in [["report", folded], ["convert", folded, "--to", "pprof", "-o", folded + ".pb.gz"], ["flamegraph", folded, "-o", folded + ".svg"]] {
                let r = try SprofCLI.run(args)
                XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
                XCTAssertTrue(r.stderr.contains("no samples (an empty profile?)"), "\(args): \(r.stderr)")
            }
        }
    }

    /// A pprof file without samples got an empty result from convert but a refusal from
    /// flamegraph and diff: every view that makes something of the samples now says what it says
    /// of an empty folded file; report shows it (0 samples, and the provenance says why).
    func testPprofInputWithoutSamplesIsRefusedByEveryViewAlike() throws {
        let path = SprofCLI.outputPrefix("nosamples") + ".pb.gz"
        let empty = Profile(sampleTypes: [Profile.ValueType(type: "samples", unit: "count"), Profile.ValueType(type: "cpu", unit: "nanoseconds")])
        try Data(try PprofFormat.encode(empty)).write(to: URL(fileURLWithPath: path))
        for args in [["convert", path, "--to", "speedscope", "-o", path + ".json"], ["flamegraph", path, "-o", path + ".svg"],
                     ["diff", path, path], ["annotate", "main", path]] {
            let r = try SprofCLI.run(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("sprof: \(path): no samples (an empty profile?)"), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout, "", "\(args)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".json"))
        // report shows it, as go tool pprof -top does: its header line (and with --header its
        // provenance) says why it has none.
        for args in [["report", path], ["report", "--header", path]] {
            let shown = try SprofCLI.run(args)
            XCTAssertEqual(shown.status, 0, shown.stderr)
            XCTAssertTrue(shown.stdout.contains(": 0 samples"), shown.stdout)
        }
    }

    func testProcessAndThreadRowsCountSamplesWithoutFrames() throws {
        let folded = SprofCLI.outputPrefix("rootonly") + ".folded"
        try "main 5\nmain;foo 2\n".write(toFile: folded, atomically: true, encoding: .utf8)
        let comm = try SprofCLI.run(["report", "--sort", "comm", "--format", "csv", folded])
        XCTAssertEqual(comm.status, 0, comm.stderr)
        XCTAssertTrue(comm.stdout.contains("\n7,100.0000,7,100.0000,main\n"), comm.stdout)
        // Functions: only `foo` has a frame, as `go tool pprof -top` lists it.
        let sym = try SprofCLI.run(["report", "--format", "csv", folded])
        XCTAssertTrue(sym.stdout.contains("\n2,28.5714,2,28.5714,foo\n"), sym.stdout)
    }

    func testAHugeRingBufferRequestFailsWithAdviceThatWorks() throws {
        try SprofCLI.requirePerfEvents()
        let r = try SprofCLI.run(["run", "-m", "4194304", "-o", SprofCLI.outputPrefix("hugem"), "--", "/bin/true"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(lines(r.stderr).count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("-m 262144") || r.stderr.contains("perf_event_mlock_kb"), r.stderr)
    }

    func testFoldedInputWithAControlByteIsStillFolded() throws {
        let folded = SprofCLI.outputPrefix("ctl") + ".folded"
        try "main;ctl\u{1b}x 3\nmain;plain 1\n".write(toFile: folded, atomically: true, encoding: .utf8)
        let svg = try SprofCLI.run(["flamegraph", folded, "-o", folded + ".svg"])
        XCTAssertEqual(svg.status, 0, svg.stderr)
        let report = try SprofCLI.run(["report", folded])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.stdout.contains("# \(folded): 4 samples"), report.stdout)
        // Folded stacks carry no provenance: --header adds nothing, not an empty block.
        let header = try SprofCLI.run(["report", "--header", folded])
        XCTAssertTrue(header.stdout.hasPrefix("# \(folded): 4 samples"), header.stdout)
        // A folded file that does not parse says so with sprof's prefix, like every failure.
        try "garbage\n".write(toFile: folded, atomically: true, encoding: .utf8)
        let bad = try SprofCLI.run(["flamegraph", folded, "-o", folded + ".svg"])
        XCTAssertEqual(bad.status, 1, bad.stderr)
        XCTAssertTrue(bad.stderr.hasPrefix("sprof: \(folded):1: missing count"), bad.stderr)
    }

    func testAnOutputPathThatIsNotUTF8IsWrittenByItsBytes() throws {
        try SprofCLI.requirePerfEvents()
        let dir = (SprofCLI.outputPrefix("bytes") as NSString).deletingLastPathComponent
        // The shell builds the bytes (no Swift String carries \xff to sprof), then lists what exists.
        let sh = "\"$0\" run -q -o \"$(printf '\(dir)/p\\377')\" -- /bin/true && mkdir \"$(printf '\(dir)/d\\377')\" "
            + "&& \"$0\" run -q -o \"$(printf '\(dir)/d\\377/')\" -- /bin/true "
            + "&& \"$0\" report \"$(printf '\(dir)/p\\377.pb.gz')\" >/dev/null "
            + "&& ls \"$(printf '\(dir)/p\\377.pb.gz')\" \"$(printf '\(dir)/d\\377/sprof.pb.gz')\" >/dev/null"
        let r = try TestFixtures.run("/bin/sh", ["-c", sh, try TestFixtures.sprofPath()])
        XCTAssertEqual(r.status, 0, r.stderr)
    }

    func testPerfsJoinedOptionValuesAreAccepted() throws {
        try SprofCLI.requirePerfEvents()
        let csv = try SprofCLI.run(["stat", "-x,", "-etask-clock,page-faults", "--", "/bin/true"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let rows = lines(csv.stderr).filter { $0.contains(",task-clock,") || $0.contains(",page-faults,") }
        XCTAssertEqual(rows.count, 2, csv.stderr)
        let prefix = SprofCLI.outputPrefix("joined")
        let run = try SprofCLI.run(["run", "-F999", "-ecpu-clock", "-q", "-o" + prefix, "/bin/true"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: prefix + ".svg"), run.stderr)
        let period = try SprofCLI.run(["run", "-c10000", "-q", "-o", SprofCLI.outputPrefix("c"), "/bin/true"])
        XCTAssertEqual(period.status, 0, period.stderr)
        // Words after the command are the command's, even when they look like sprof's options.
        let passed = try SprofCLI.run(["stat", "-o", "/dev/null", "/bin/sh", "-c", "exit 5", "-F", "--frq"])
        XCTAssertEqual(passed.status, 5, passed.stderr)
    }

    func testADirectoryAsTheCommandSaysSo() throws {
        let r = try SprofCLI.run(["run", "-o", SprofCLI.outputPrefix("dir"), "--", "/tmp"])
        XCTAssertEqual(r.status, 126)
        XCTAssertTrue(r.stderr.contains("is a directory"), r.stderr)
        XCTAssertFalse(r.stderr.contains("chmod"), r.stderr)
    }

    func testAnotherUsersProcessNamesTheOwnerNotParanoid() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root to switch to an unprivileged user") }
        guard let setpriv = TestFixtures.findExecutable("setpriv") else { throw XCTSkip("setpriv not installed") }
        let sprof = try TestFixtures.sprofPath()
        for sub in [["run", "-o", "/tmp/sprof-foreign-\(getpid())", "-p", "1", "--duration", "0.2"], ["stat", "-p", "1"]] {
            let r = try TestFixtures.run(setpriv, ["--reuid=nobody", "--regid=nogroup", "--clear-groups", sprof] + sub)
            XCTAssertNotEqual(r.status, 0, r.stderr)
            let error = lines(r.stderr).last.map(String.init) ?? ""
            XCTAssertTrue(error.contains("belongs to root, and only root may profile it"), "\(sub[0]): \(r.stderr)")
            XCTAssertFalse(error.contains("perf_event_paranoid"), "paranoid is not the cause: \(error)")
            // One line: the notice that kernel frames would be excluded is moot once refused.
            XCTAssertEqual(lines(r.stderr).count, 1, "\(sub[0]): \(r.stderr)")
        }
    }

    /// Unprivileged (RLIMIT_NICE 0, no CAP_SYS_NICE), a thread at SCHED_IDLE can never return to
    /// SCHED_OTHER: sprof's unwinder stayed idle after the command had exited and, on a busy
    /// machine, took 7-10 minutes to finish (a tester's report). It must not go idle then.
    func testUnprivilegedUnwindingNeverGoesIdle() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root to switch to an unprivileged user") }
        guard let setpriv = TestFixtures.findExecutable("setpriv") else { throw XCTSkip("setpriv not installed") }
        let sprof = try TestFixtures.sprofPath()
        let fixture = try TestFixtures.swiftFixturePath()
        let dir = NSTemporaryDirectory() + "sprof-idle-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o777)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try BackgroundProcess(setpriv, ["--reuid=nobody", "--regid=nogroup", "--clear-groups", sprof, "run", "-o", dir + "/p", "--", fixture, "split", "1.5"])
        var policies: Set<Int> = []
        // While it records (about 1.5 s of CPU): every thread's policy, as often as it is read.
        for _ in 0..<100 {
            usleep(20_000)
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(run.pid)/task")) ?? []
            for tid in tasks {
                guard let sched = try? String(contentsOfFile: "/proc/\(run.pid)/task/\(tid)/sched", encoding: .utf8),
                      let line = sched.split(separator: "\n").first(where: { $0.hasPrefix("policy") }),
                      let policy = Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") else { continue }
                policies.insert(policy)
            }
        }
        let status = run.wait(timeout: 300)
        guard status == 0 || !run.stderr.contains("perf_event_open") else { throw XCTSkip("refused for nobody here: \(run.stderr)") }
        XCTAssertEqual(status, 0, run.stderr)
        XCTAssertFalse(policies.isEmpty, "no thread of sprof was seen")
        XCTAssertFalse(policies.contains(5), "no thread of an unprivileged sprof runs at SCHED_IDLE: policies \(policies)")
    }

    func testRingBufferAdviceFitsTheUser() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root to switch to an unprivileged user") }
        guard let setpriv = TestFixtures.findExecutable("setpriv") else { throw XCTSkip("setpriv not installed") }
        if let reason = perfEventAvailable() { throw XCTSkip("perf events unavailable: \(reason)") }
        let paranoid = (try? String(contentsOfFile: "/proc/sys/kernel/perf_event_paranoid", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 2
        guard paranoid <= 2 else { throw XCTSkip("perf_event_paranoid \(paranoid) forbids users") }
        let mlock = (try? String(contentsOfFile: "/proc/sys/kernel/perf_event_mlock_kb", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 516
        let limits = (try? String(contentsOfFile: "/proc/self/limits", encoding: .utf8)) ?? ""
        if limits.split(separator: "\n").contains(where: { $0.hasPrefix("Max locked memory") && $0.contains("unlimited") }) {
            throw XCTSkip("'ulimit -l' is unlimited here: the kernel grants any ring buffer")
        }
        // Far past the default limit (516 KiB): 16384 pages = 64 MiB per CPU.
        guard (16384 + 1) * 4 > mlock else { throw XCTSkip("perf_event_mlock_kb \(mlock) is large enough for the request") }
        let r = try TestFixtures.run(setpriv, ["--reuid=nobody", "--regid=nogroup", "--clear-groups", try TestFixtures.sprofPath(),
                                               "run", "-m", "16384", "-o", "/tmp/sprof-mlock-\(getpid())", "--", "/bin/true"])
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains("perf_event_mlock_kb=65540"), r.stderr)
        XCTAssertFalse(r.stderr.contains("=2048"), r.stderr)
    }

    func testExitStatusesAreDocumented() throws {
        let help = try SprofCLI.run(["--help"])
        for text in ["Exit statuses", "2 usage error", "'stat --baseline'", "127"] {
            XCTAssertTrue(help.stdout.contains(text), "--help lacks \(text)")
        }
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        XCTAssertTrue(text.contains("### Exit statuses"), "README lacks the exit statuses")
    }

    /// `sprof --version` prints the version recordings write into their provenance, and
    /// nothing else, and exits 0 (scripts compare it).
    func testVersionIsPrinted() throws {
        // After `run`/`stat` too, where a word the parser does not take starts the command.
        for args in [["--version"], ["-v"], ["-V"], ["run", "--version"], ["stat", "-x,", "--version"], ["report", "--version"]] {
            let r = try SprofCLI.run(args)
            XCTAssertEqual(r.status, 0, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), sprofVersionString, "\(args)")
        }
    }

    func testArgvBytesReachTheCommandUnchanged() throws {
        try SprofCLI.requirePerfEvents()
        // A Latin-1 file name and argument: \xff is not UTF-8. The shell builds the bytes, so that
        // no Swift String (which would turn them into U+FFFD) carries them to sprof.
        let dir = (SprofCLI.outputPrefix("argv") as NSString).deletingLastPathComponent
        let script = "#!/bin/sh\n[ \"$1\" = \"$(printf 'a\\377b')\" ] && exit 5\nexit 6\n"
        let sh = "printf '%s' \"$1\" > \"$(printf '\(dir)/prog\\377')\"; chmod +x \"$(printf '\(dir)/prog\\377')\"; "
            + "exec \"$2\" stat -o /dev/null -- \"$(printf '\(dir)/prog\\377')\" \"$(printf 'a\\377b')\""
        for sub in ["stat", "run"] {
            let line = sub == "stat" ? sh : sh.replacingOccurrences(of: "stat -o /dev/null", with: "run -q -o \(dir)/p")
            let r = try TestFixtures.run("/bin/sh", ["-c", line, "sh", script, try TestFixtures.sprofPath()])
            XCTAssertEqual(r.status, 5, "\(sub): the command did not get its bytes: \(r.stderr)")
        }
    }
}
