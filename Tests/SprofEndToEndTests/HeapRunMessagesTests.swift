#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof
import SprofFormats
import SprofTestSupport

/// What `sprof run --heap` prints and writes beside the heap profile, as a new user reads it
/// (heap_messages.c frees everything, or leaves three 100,000-byte blocks; no stdio).
final class HeapRunMessagesTests: XCTestCase {
    private func fixture(_ extra: [String] = []) throws -> String {
        try SprofCLI.buildC("heap_messages", flags: ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-inline"] + extra)
    }

    private func heapRun(_ args: [String], _ command: [String], prefix: String, environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try TestFixtures.run(try TestFixtures.sprofPath(), ["run", "--heap"] + args + ["-o", prefix, "--"] + command,
                             environment: environment.map { TestFixtures.environment(adding: $0) }, timeout: 600)
    }

    /// The leak line is always printed for a command: "none" when nothing sampled was left (with
    /// the sampling caveat above rate 1), so that it reads apart from "not reported". The file's
    /// default sample type is alloc_space, as the README says; `report --memory` finds the RSS
    /// timeline from the heap profile's name.
    func testLeakLineSaysNoneAndReportFindsTheTimeline() throws {
        try HeapProfileTests.requireUprobes()
        let binary = try fixture()
        let exact = SprofCLI.outputPrefix("heapmsg-none")
        var r = try heapRun(["--heap-rate", "1", "-e", "none"], [binary, "free", "1000"], prefix: exact)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("still allocated at exit (leaks): none\n") || r.stderr.hasSuffix("still allocated at exit (leaks): none"), r.stderr)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: exact + ".heap.pb.gz"), r.stderr)
        let profile = try PprofFormat.decode(Array(bytes))
        XCTAssertEqual(profile.sampleTypes[profile.defaultSampleType].type, "alloc_space", "README: sprof's heap profiles default to alloc_space")

        // Written as PREFIX.memory.tsv, found from PREFIX.heap.pb.gz (it looked for PREFIX.heap.memory.tsv).
        let report = try SprofCLI.run(["report", exact + ".heap.pb.gz", "--memory"])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(report.stdout.hasPrefix("# \(exact).memory.tsv:"), report.stdout)

        let sampled = SprofCLI.outputPrefix("heapmsg-sampled")
        r = try heapRun(["--heap-rate", "4096", "-e", "none"], [binary, "free", "1000"], prefix: sampled)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("still allocated at exit (leaks): none (estimated from samples at 1 per 4,096 bytes: smaller leaked blocks may be missed"), r.stderr)
    }

    /// With heap records lost (a 16 KiB ring buffer for a burst of allocations, each sampled at
    /// --heap-rate 16, and SPROF_HEAP_WAIT=0 so that the program does not wait for sprof, which
    /// took 160 s here with so small a buffer): one line gives
    /// the loss with one percentage (of probe records) and advice that applies (no -F, no CPU
    /// stack size equal to the heap's), and the leak line says it is incomplete and why.
    func testLostRecordsGiveOneHeapLossLineAndAnIncompleteLeakReport() throws {
        try HeapProfileTests.requireUprobes()
        let binary = try fixture()
        let prefix = SprofCLI.outputPrefix("heapmsg-lost")
        let r = try heapRun(["--heap-rate", "16", "-e", "none", "-m", "4", "--call-graph", "dwarf,4096"], [binary, "leak", "200000"], prefix: prefix,
                            environment: ["SPROF_HEAP_WAIT": "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        guard let (lost, _) = HeapProfileTests.lossCounts(r.stderr), lost > 0 else {
            throw XCTSkip("no heap record was lost with -m 4 this time: \(r.stderr)")
        }
        XCTAssertFalse(r.stderr.contains("of the samples were lost"), "no second, CPU-style loss line: \(r.stderr)")
        XCTAssertFalse(r.stderr.contains("lower -F"), r.stderr)
        let lossLines = r.stderr.split(separator: "\n").filter { $0.contains("lost (") && $0.contains("%") }
        XCTAssertEqual(lossLines.count, 1, r.stderr)
        XCTAssertTrue(lossLines.first?.contains("--call-graph dwarf,1024 below the current 4096") == true, r.stderr)
        XCTAssertTrue(r.stderr.contains("still allocated at exit (leaks): "), r.stderr)
        XCTAssertTrue(r.stderr.contains("  incomplete: "), r.stderr)
        XCTAssertTrue(r.stderr.contains("a lost allocation drops a leaked block"), r.stderr)
    }

    /// A ring buffer too small for several heap records is not worth waiting for: with -m 4
    /// (16 KiB, under two 8.7 KiB records) a new user's 20,000-allocation program waited 119 s
    /// and was killed by its timeout; now sprof says so and the program is not held back.
    func testATinyBufferIsNotWaitedFor() throws {
        try HeapProfileTests.requireUprobes()
        let binary = try fixture()
        let r = try heapRun(["--heap-rate", "1", "-e", "none", "-m", "4"], [binary, "free", "20000"], prefix: SprofCLI.outputPrefix("heapmsg-tiny"))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("holds fewer than 8 heap records"), r.stderr)
        XCTAssertFalse(r.stderr.contains("the program waited"), r.stderr)
    }

    /// A process of the command running as another user cannot open sprof's flow-control page
    /// (/proc/<sprof's pid>/fd/N): its records are not held back, which sprof says instead of
    /// a bare loss (a new user's setpriv'ed child lost 71.6% of its records without a word why).
    func testAProcessThatCannotReachTheFlowPageIsNamed() throws {
        try HeapProfileTests.requireUprobes()
        guard let setpriv = TestFixtures.findExecutable("setpriv") else { throw XCTSkip("setpriv (util-linux) is not installed") }
        let r = try heapRun(["--heap-rate", "1", "-e", "none"],
                            [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/bin/sh", "-c", "x=1; y=$x$x; echo $y > /dev/null"],
                            prefix: SprofCLI.outputPrefix("heapmsg-setpriv"))
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("could not open sprof's flow-control page"), r.stderr)
    }

    /// A set-user-ID program (to another user) runs in ld.so's secure-execution mode, which
    /// ignores LD_PRELOAD: sprof says that, not "it most likely failed at start".
    func testASetUserIDCommandIsNamedAsSuch() throws {
        try HeapProfileTests.requireUprobes()
        guard getuid() == 0 else { throw XCTSkip("making a set-user-ID program of another user needs root") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-suid-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        chmod(dir.path, 0o755)
        let program = dir.appendingPathComponent("heap_messages_suid").path
        try FileManager.default.copyItem(atPath: try fixture(), toPath: program)
        guard let nobody = getpwnam("nobody") else { throw XCTSkip("no user nobody") }
        XCTAssertEqual(chown(program, nobody.pointee.pw_uid, 0), 0)
        XCTAssertEqual(chmod(program, 0o4755), 0)
        let r = try heapRun(["--heap-rate", "1", "-e", "none"], [program, "free", "100"], prefix: SprofCLI.outputPrefix("heapmsg-suid"))
        XCTAssertTrue(r.stderr.contains("set-user-ID or set-group-ID"), r.stderr)
        XCTAssertFalse(r.stderr.contains("failed at start"), r.stderr)
    }

    /// Beside CPU samples the summary gives the heap's sample count, and with -r 2 the leak
    /// total says it is summed over the runs (the heap profile adds them up: 6 blocks, not 3).
    func testSummaryGivesHeapSamplesAndRepeatedRunsSaySummed() throws {
        try HeapProfileTests.requireUprobes()
        let binary = try fixture()
        let prefix = SprofCLI.outputPrefix("heapmsg-runs")
        let r = try heapRun(["--heap-rate", "1", "-r", "2", "-m", "16384", "--call-graph", "dwarf,4096"], [binary, "leak", "1000"], prefix: prefix)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains(" heap samples every 1 byte,"), r.stderr)
        XCTAssertTrue(r.stderr.contains("still allocated at exit (leaks): 586 KiB in 1 stack, summed over 2 runs"), r.stderr)
    }

    /// A command that fails before allocating (an ASan binary refuses LD_PRELOAD and exits 1):
    /// the message says so, and at --heap-rate 1 does not advise --heap-rate 1. Attached at rate
    /// 1, no allocator call is a matter of time.
    func testNoSampleMessageFitsTheRateAndTheExit() throws {
        try HeapProfileTests.requireUprobes()
        // gcc links the ASan runtime as a shared library (clang links it in, and it then
        // allocates through its own malloc: the other case of the message).
        let asan: String
        do {
            asan = try TestFixtures.buildC("heap_messages", flags: ["-O1", "-g", "-fsanitize=address"], compiler: "gcc")
        } catch {
            throw XCTSkip("no AddressSanitizer here: \(error)")
        }
        let r = try heapRun(["--heap-rate", "1", "-e", "none"], [asan, "free", "10"], prefix: SprofCLI.outputPrefix("heapmsg-asan"))
        XCTAssertNotEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("no allocation was sampled"), r.stderr)
        XCTAssertTrue(r.stderr.contains("failed at start"), r.stderr)
        XCTAssertFalse(r.stderr.contains("try --heap-rate 1"), r.stderr)
        // Killed by a signal, a command may well have run: no "failed at start".
        let killed = try heapRun(["--heap-rate", "1000000000000", "-e", "none"], ["/bin/sh", "-c", "kill -TERM $$"], prefix: SprofCLI.outputPrefix("heapmsg-killed"))
        XCTAssertEqual(killed.status, 128 + SIGTERM, killed.stderr)
        XCTAssertTrue(killed.stderr.contains("allocated less than --heap-rate 1000000000000 bytes"), killed.stderr)
        XCTAssertFalse(killed.stderr.contains("failed at start"), killed.stderr)

        let sleeper = try BackgroundProcess("/bin/sleep", ["30"])
        defer { sleeper.send(SIGKILL) }
        let a = try SprofCLI.run(["run", "--heap", "--heap-rate", "1", "-e", "none", "-p", "\(sleeper.pid)", "--duration", "0.3",
                                  "-o", SprofCLI.outputPrefix("heapmsg-attach")], timeout: 300)
        XCTAssertTrue(a.stderr.contains("no allocator call while attached"), a.stderr)
        XCTAssertFalse(a.stderr.contains("--heap-rate 1"), a.stderr)
    }

    /// `--call-graph none`: the heap stacks end in one frame that says what is known (one of the
    /// interposed allocator functions), not in the preload library's probe point.
    func testCallGraphNoneNamesTheMallocFamily() throws {
        try HeapProfileTests.requireUprobes()
        let binary = try fixture()
        let prefix = SprofCLI.outputPrefix("heapmsg-nocg")
        let r = try heapRun(["--heap-rate", "1", "-e", "none", "--call-graph", "none"], [binary, "leak", "100"], prefix: prefix)
        XCTAssertEqual(r.status, 0, r.stderr)
        let folded = try String(contentsOfFile: prefix + ".folded", encoding: .utf8)
        XCTAssertFalse(folded.contains("sprof_heap_sampled"), folded)
        XCTAssertTrue(folded.contains(";[malloc family] "), folded)
    }

    /// libstdc++'s initializer allocates its emergency exception pool (about 71 KiB) before main
    /// and keeps it: not one of the program's leaks, named apart.
    func testLibraryInitializerPoolIsNotALeak() throws {
        try HeapProfileTests.requireUprobes()
        let binary = try fixture(["-Wl,--no-as-needed", "-lstdc++"])
        let prefix = SprofCLI.outputPrefix("heapmsg-stdcxx")
        let r = try heapRun(["--heap-rate", "1", "-e", "none"], [binary, "free", "100"], prefix: prefix)
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("still allocated at exit (leaks): none\n  not counted: "), r.stderr)
        XCTAssertTrue(r.stderr.contains("initializers (_dl_init)"), r.stderr)
    }
}
