#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import Sprof
import SprofTestSupport

/// Self-profiling: the process profiles part of itself and finds what it ran.
final class ProfilerTests: XCTestCase {
    private static let chain = ["workloadOuter", "workloadMiddle", "workloadLeaf"]
    /// Rounds of `workloadOuter(rounds:)` that take about one second of CPU time in a debug build
    /// (how `swift test` builds). Sample floors below come from this fixed amount of work, not from
    /// a wall-clock deadline, so they hold on a loaded machine.
    static let roundsPerSecond = 10_000

    /// True when `frames` contains the workload chain as consecutive frames, outer to leaf.
    private func hasChain(_ frames: [String]) -> Bool {
        let short = frames.map { name in Self.chain.first { name.contains("\($0)(") } ?? name }
        for i in short.indices.dropLast(2) where Array(short[i...(i + 2)]) == Self.chain { return true }
        return false
    }

    func testSelfProfileFindsInlineNeverChain() throws {
        let me = Profiler.currentThreadID
        var cpu = (start: threadCPUSeconds(), end: 0.0)
        let (_, profile) = try skippingWhenRefused {
            try Profiler.profile(options: .init(rate: .frequency(499))) {
                cpu.start = threadCPUSeconds()
                workloadOuter(rounds: ProfilerTests.roundsPerSecond)
                cpu.end = threadCPUSeconds()
            }
        }
        // cpu-clock takes one sample per period of CPU time: the workload's own CPU time at 499 Hz,
        // within a band on both sides (a double count or a lost half fails).
        let expected = (cpu.end - cpu.start) * 499
        let chainCount = Double(profile.timedSamples.filter { profile.threadID(of: $0) == me }.count)
        XCTAssertEqual(chainCount, expected, accuracy: expected * 0.2 + 5,
                       "\(chainCount) samples for \(cpu.end - cpu.start) s of CPU time at 499 Hz")
        let chainSamples = profile.timedSamples.filter { hasChain(profile.frames(of: $0)) }
        XCTAssertGreaterThanOrEqual(chainSamples.count, 10, "the outer→middle→leaf chain should appear; top:\n\(profile.topTable(10))")
        XCTAssertTrue(chainSamples.allSatisfy { profile.threadID(of: $0) == me }, "the chain ran on the test thread only")
        XCTAssertTrue(profile.topFunctions(1).first?.name.contains("workloadLeaf(") ?? false,
                      "the spinning leaf should be the hottest function:\n\(profile.topTable(5))")
        let outer = profile.topFunctions(50, by: .totalSamples).first { $0.name.contains("workloadOuter(") }
        XCTAssertNotNil(outer)
        XCTAssertGreaterThanOrEqual(outer?.totalSamples ?? 0, UInt64(chainSamples.count))
        // The folded text and the SVG carry the same chain.
        XCTAssertTrue(profile.foldedText().split(separator: "\n").contains { hasChain($0.split(separator: " ").dropLast().joined(separator: " ").components(separatedBy: ";")) })
        XCTAssertTrue(profile.svg(title: "self").contains("workloadLeaf"))
        XCTAssertEqual(UInt64(profile.timedSamples.count), profile.folded.total, "every sample is kept and aggregated")
    }

    func testDwarfCallGraphFindsTheChainToo() throws {
        let (_, profile) = try skippingWhenRefused {
            try Profiler.profile(options: .init(rate: .frequency(499), callGraph: .dwarf(stackSize: 16384))) {
                workloadOuter(rounds: ProfilerTests.roundsPerSecond * 6 / 10)
            }
        }
        let chainSamples = profile.timedSamples.filter { hasChain(profile.frames(of: $0)) }
        XCTAssertGreaterThanOrEqual(chainSamples.count, 10, "dwarf stacks should show the chain; top:\n\(profile.topTable(10, by: .totalSamples))")
    }

    func testIdlePriorityProcessingLosesNothing() throws {
        var options = Profiler.Options(rate: .frequency(499))
        options.processAtIdlePriority = true
        let (_, profile) = try skippingWhenRefused { try Profiler.profile(options: options) { workloadOuter(rounds: ProfilerTests.roundsPerSecond / 2) } }
        XCTAssertGreaterThanOrEqual(profile.timedSamples.filter { hasChain(profile.frames(of: $0)) }.count, 10,
                                    "deferred processing must still deliver every sample by stop()")
    }

    func testHardwareEventFallsBackWithANotice() throws {
        let options = try Profiler.Options(event: "cycles", rate: .frequency(199))
        let (_, profile) = try skippingWhenRefused { try Profiler.profile(options: options) { workloadOuter(rounds: ProfilerTests.roundsPerSecond / 5) } }
        if profile.metadata.event == "cycles" {
            XCTAssertTrue(profile.notices.allSatisfy { !$0.contains("falling back") }, "\(profile.notices)")
        } else {
            XCTAssertEqual(profile.metadata.event, "cpu-clock")
            XCTAssertTrue(profile.notices.contains { $0.contains("falling back to cpu-clock") }, "\(profile.notices)")
        }
        XCTAssertGreaterThan(profile.statistics.samples, 0)
    }

    func testSprofOwnThreadsAreLeftOut() throws {
        let (_, profile) = try skippingWhenRefused {
            try Profiler.profile { workloadOuter(rounds: ProfilerTests.roundsPerSecond / 2) }
        }
        let names = Set(profile.timedSamples.compactMap { profile.threadNames[profile.threadID(of: $0)] })
        XCTAssertFalse(names.contains("sprof-driver"), "samples from sprof's driver thread: \(names)")
        XCTAssertFalse(names.contains("sprof-reader"), "samples from sprof's reader thread: \(names)")
        for stack in profile.stacks.indices.map({ profile.frameNames(ofStack: $0) }) {
            XCTAssertFalse(stack.contains { $0.contains("readLoop") || $0.contains("ProfileBuilder") },
                           "sprof's own work was sampled: \(stack.joined(separator: ";"))")
        }
    }

    func testThreadStartedAfterStartIsProfiled() throws {
        let profiler = Profiler(options: .init(rate: .frequency(499)))
        try skippingWhenRefused { try profiler.start() }
        let (tid, _) = onNewThread(name: "late-worker") { workloadOuter(rounds: ProfilerTests.roundsPerSecond * 6 / 10) }
        let profile = try profiler.stop()
        XCTAssertEqual(profile.threadNames[tid], "late-worker")
        let mine = profile.timedSamples.filter { profile.threadID(of: $0) == tid }
        XCTAssertGreaterThanOrEqual(mine.count, 5, "the thread created after start() got \(mine.count) samples")
        XCTAssertTrue(mine.contains { hasChain(profile.frames(of: $0)) }, "its samples should show the workload chain")
    }

    func testThreadStartedBeforeStartIsProfiled() throws {
        let go = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        final class TID: @unchecked Sendable { var value: Int32 = 0 }
        let tid = TID()
        let ready = DispatchSemaphore(value: 0)
        Thread {
            tid.value = Profiler.currentThreadID
            ready.signal()
            go.wait()
            workloadOuter(rounds: ProfilerTests.roundsPerSecond * 6 / 10)
            done.signal()
        }.start()
        ready.wait()
        let profiler = Profiler(options: .init(rate: .frequency(499)))
        do {
            try skippingWhenRefused { try profiler.start() }
        } catch {
            go.signal(); done.wait()
            throw error
        }
        go.signal()
        done.wait()
        let profile = try profiler.stop()
        let mine = profile.timedSamples.filter { profile.threadID(of: $0) == tid.value }
        XCTAssertGreaterThanOrEqual(mine.count, 5, "the thread that existed before start() got \(mine.count) samples")
    }

    func testStopReleasesEventsAndBuffers() throws {
        func openDescriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
        try requireProfiling()
        // Symbol tables (and their open ELF files) are cached across profiles on purpose, so a
        // profile may open a file that stays open when a sample first lands in a new library.
        // Count from after a warm-up profile and profile eight more times: a leak of even one
        // descriptor per profile grows the count by eight or more, the cache by a few at most.
        _ = try Profiler.profile { workloadOuter(rounds: 20) }
        let before = openDescriptors()
        let profiles = 8
        for _ in 0..<profiles {
            let (_, profile) = try Profiler.profile { workloadOuter(rounds: 20) }
            XCTAssertEqual(UInt64(profile.statistics.samples), profile.folded.total, "every sample is aggregated once")
        }
        let grown = openDescriptors() - before
        XCTAssertLessThan(grown, profiles, "\(grown) descriptors more after \(profiles) profiles: profiles must close their events when stopped")
    }

    // MARK: Misuse

    func testStopWithoutStartThrowsNotStarted() {
        XCTAssertThrowsError(try Profiler().stop()) { error in
            XCTAssertEqual(error as? SprofError, .notStarted)
        }
    }

    func testStartingTwiceThrowsAlreadyStarted() throws {
        let profiler = Profiler()
        try skippingWhenRefused { try profiler.start() }
        XCTAssertThrowsError(try profiler.start()) { XCTAssertEqual($0 as? SprofError, .alreadyStarted) }
        // A second profiler in the same process is refused too: it would sample the first one's work.
        XCTAssertThrowsError(try Profiler().start()) { XCTAssertEqual($0 as? SprofError, .alreadyStarted) }
        _ = try profiler.stop()
        XCTAssertThrowsError(try profiler.stop()) { XCTAssertEqual($0 as? SprofError, .notStarted) }
        // After a stop the profiler (and the process) can record again.
        try profiler.start()
        workloadSpin(iterations: 1000)
        XCTAssertNoThrow(try profiler.stop())
    }

    func testBodyErrorStopsTheProfiler() throws {
        struct Boom: Error {}
        try requireProfiling()
        XCTAssertThrowsError(try Profiler.profile { throw Boom() }) { XCTAssertTrue($0 is Boom, "\($0)") }
        // Had the profiler stayed on, this would throw alreadyStarted.
        XCTAssertNoThrow(try Profiler.profile { workloadSpin(iterations: 10) })
    }

    func testDroppedProfilerStopsSampling() throws {
        try skippingWhenRefused {
            let forgotten = Profiler()
            try forgotten.start()
            XCTAssertTrue(forgotten.isRunning)
        }
        // The forgotten profiler's deinit stopped it, so the process is free again.
        let profiler = Profiler()
        XCTAssertNoThrow(try profiler.start())
        XCTAssertNoThrow(try profiler.stop())
    }

    func testRealRefusalOfAKernelOnlyEvent() throws {
        // Provable only where kernel profiling is forbidden to this process. As root (CI) the same
        // refusal, built by the same engine, is checked through the CLI as `nobody` instead
        // (PromiseTests.testKernelOnlyEventIsRefusedToAnUnprivilegedUserWithTheFix).
        if let reason = perfEventAvailable() { throw XCTSkip(reason) }
        let settings = KernelSettings.current()
        if settings.kernelAllowed {
            guard settings.paranoid >= 2 else { throw XCTSkip("perf_event_paranoid is \(settings.paranoid): every user may profile the kernel here") }
            let sprof = try TestFixtures.sprofPath()
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-nobody-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
            let copy = dir.appendingPathComponent("sprof").path
            try FileManager.default.copyItem(atPath: sprof, toPath: copy)
            let setpriv = try XCTUnwrap(TestFixtures.findExecutable("setpriv"), "setpriv (util-linux) is needed to run as nobody")
            let r = try TestFixtures.run(setpriv, ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", copy, "run",
                                                   "-e", "cpu-clock:k", "-o", dir.appendingPathComponent("k").path, "--", "/bin/true"])
            XCTAssertNotEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("perf_event_paranoid is \(settings.paranoid)"), r.stderr)
            XCTAssertTrue(r.stderr.contains("sysctl"), r.stderr)
            return
        }
        let profiler = Profiler(options: try .init(event: "cpu-clock:k"))
        XCTAssertThrowsError(try profiler.start()) { error in
            guard case .refused(let reason)? = error as? SprofError else { return XCTFail("expected .refused, got \(error)") }
            XCTAssertTrue(reason.contains("perf_event_paranoid is \(settings.paranoid)"), reason)
            XCTAssertTrue(reason.contains("sysctl"), reason)
        }
        XCTAssertFalse(profiler.isRunning)
        // The failed start released the process: another profiler may start.
        let (_, profile) = try Profiler.profile { workloadSpin(iterations: 1000) }
        XCTAssertTrue(profile.kernelExcluded)
    }

    func testPermissionFailureBecomesRefusedWithTheFix() {
        let settings = KernelSettings(paranoid: 3)
        let hint = RecordingSession.hint(for: EACCES, event: .cpuClock, settings: settings)
        let error = SprofError(SyscallError(call: "perf_event_open", errno: EACCES, hint: hint))
        guard case .refused(let reason) = error else { return XCTFail("expected .refused, got \(error)") }
        XCTAssertTrue(reason.contains("perf_event_paranoid is 3"), reason)
        XCTAssertTrue(reason.contains("sysctl kernel.perf_event_paranoid="), reason)
        XCTAssertTrue(error.description.hasPrefix("sprof: perf_event_open refused"), error.description)
        XCTAssertEqual(SprofError(SyscallError(call: "perf_event_open", errno: ENOENT)).isUnsupported, true)
        XCTAssertEqual(SprofError(SyscallError(call: "mmap", errno: EPERM)), .system(SyscallError(call: "mmap", errno: EPERM)))
    }

    func testEveryErrorHasAOneLineDescription() {
        let errors: [SprofError] = [.alreadyStarted, .notStarted, .refused(reason: "r"), .unsupported(reason: "u"),
                                    .invalidEvent(reason: "i"), .system(SyscallError(call: "mmap", errno: ENOMEM))]
        for e in errors {
            XCTAssertFalse(e.description.isEmpty)
            XCTAssertFalse(e.description.contains("\n"), e.description)
        }
    }

    func testOptionsFromEventText() throws {
        XCTAssertEqual(try Profiler.Options(event: "task-clock").event.name, "task-clock")
        XCTAssertThrowsError(try Profiler.Options(event: "instructons")) { error in
            guard case .invalidEvent(let reason)? = error as? SprofError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("instructons"), reason)
        }
    }
}

extension SprofError {
    var isUnsupported: Bool { if case .unsupported = self { return true } else { return false } }
}

/// The calling thread's CPU time in seconds.
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
