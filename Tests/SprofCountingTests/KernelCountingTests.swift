#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Foundation
import SprofCore
import SprofRecording
import SprofTestSupport
@testable import SprofCounting

/// Real counting through perf_event_open. Only what the machine lacks skips (PerfSkipPolicy): a
/// refusal to a user other than root, or a hardware counter without a PMU.
final class KernelCountingTests: XCTestCase {
    private func events(_ text: String) throws -> [CounterGroup] { try CounterEvents.parse(text) }

    /// Runs a command; a refusal skips only as PerfSkipPolicy allows.
    private func count(_ arguments: [String], _ list: String, hardwareEvent: Bool = false) throws -> CountedRun {
        do {
            return try CommandCounter.count(arguments, groups: try events(list))
        } catch let error as SyscallError {
            if let reason = PerfSkipPolicy.skipReason(errno: error.errno, hardwareEvent: hardwareEvent, detail: "\(error)") {
                throw XCTSkip(reason)
            }
            throw error
        }
    }

    /// A refusal of a software event: a skip only for a user other than root.
    private func skipIfRefused(_ error: SyscallError) throws -> Never {
        if let reason = PerfSkipPolicy.skipReason(errno: error.errno, hardwareEvent: false, detail: "\(error)") { throw XCTSkip(reason) }
        throw error
    }

    /// The value of a hardware counter, or a skip saying why the machine cannot count it.
    private func hardware(_ value: CounterValue) throws -> Double {
        if case .notSupported(let reason) = value.status { throw XCTSkip("\(value.event) not supported here: \(reason)") }
        return try XCTUnwrap(value.value, "\(value.event) \(value.status.label)")
    }

    /// A C program whose forked child touches PAGES fresh pages (THP off so each is a fault).
    private func forkTouchBinary() throws -> String {
        let dir = TestFixtures.scratchDirectory
        let source = dir.appendingPathComponent("fork_touch.c")
        try """
            #include <stdlib.h>
            #include <sys/mman.h>
            #include <sys/wait.h>
            #include <unistd.h>
            int main(int argc, char **argv) {
                long pages = argc > 1 ? atol(argv[1]) : 0;
                pid_t pid = fork();
                if (pid < 0) return 1;
                if (pid == 0) {
                    long size = pages * 4096;
                    if (size == 0) _exit(0);
                    volatile char *p = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                    if (p == MAP_FAILED) _exit(1);
                    madvise((void *)p, size, MADV_NOHUGEPAGE);
                    for (long i = 0; i < size; i += 4096) p[i] = 1;
                    _exit(0);
                }
                int status = 0;
                waitpid(pid, &status, 0);
                return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
            }
            """.write(to: source, atomically: true, encoding: .utf8)
        let output = dir.appendingPathComponent("fork_touch").path
        let result = try TestFixtures.run("/usr/bin/cc", ["-O2", source.path, "-o", output])
        XCTAssertEqual(result.status, 0, result.stderr)
        return output
    }

    func testSoftwareCountersForACommand() throws {
        let run = try count(["/bin/true"], "task-clock,page-faults,context-switches")
        XCTAssertEqual(run.exitStatus, .exited(0))
        XCTAssertEqual(run.values.map(\.event.name), ["task-clock", "page-faults", "context-switches"])
        XCTAssertEqual(run.values[0].status, .counted)
        XCTAssertGreaterThan(run.values[0].value ?? 0, 0)
        XCTAssertLessThan(run.values[0].value ?? .infinity, 2e9, "task-clock is in ns: /bin/true takes a few ms")
        XCTAssertGreaterThan(run.values[1].value ?? 0, 10, "exec of /bin/true faults in pages")
        XCTAssertLessThan(run.values[1].value ?? .infinity, 400, "/bin/true faults in tens of pages, not more")
        XCTAssertNotNil(run.userSeconds)
    }

    func testCountsFromAForkedChildAreIncluded() throws {
        let binary = try forkTouchBinary()
        let pages = 4000
        let run = try count([binary, String(pages)], "page-faults")
        XCTAssertEqual(run.exitStatus, .exited(0))
        XCTAssertGreaterThanOrEqual(run.values[0].value ?? 0, Double(pages), "the child's faults are counted")
        XCTAssertLessThanOrEqual(run.values[0].value ?? .infinity, Double(pages) + 300, "and counted once")
        let none = try count([binary, "0"], "page-faults")
        XCTAssertLessThan(none.values[0].value ?? .infinity, 300, "without the child's work the count is small")
    }

    func testForkedChildInstructionsAreIncluded() throws {
        let loop = try TestFixtures.buildC("count_loop", flags: ["-O2"])
        let n = 5_000_000
        let run = try count(["/bin/sh", "-c", "\(loop) \(n); exit 0"], "instructions:u", hardwareEvent: true)
        let value = try hardware(run.values[0])
        XCTAssertGreaterThanOrEqual(value, Double(2 * n), "the loop ran in a forked child of sh")
        XCTAssertLessThanOrEqual(value, Double(2 * n) * 1.05 + 2_000_000, "sh and the loop, counted once")
    }

    func testInstructionsOfTheCountLoopWithinOnePercent() throws {
        let loop = try TestFixtures.buildC("count_loop", flags: ["-O2"])
        let n = 10_000_000
        let full = try hardware(try count([loop, String(n)], "instructions:u", hardwareEvent: true).values[0])
        let overhead = try hardware(try count([loop, "0"], "instructions:u", hardwareEvent: true).values[0])
        let expected = Double(2 * n + 1)
        XCTAssertEqual(full - overhead, expected, accuracy: expected * 0.01)
        XCTAssertEqual(full, expected, accuracy: expected * 0.01, "start-up overhead is small next to 2N")
    }

    func testMoreHardwareEventsThanCountersShowARunningPercentage() throws {
        let loop = try TestFixtures.buildC("count_loop", flags: ["-O2"])
        let names = ["cycles", "instructions", "branches", "branch-misses", "cache-references", "cache-misses"]
        let list = (names + names.map { $0 + ":u" }).joined(separator: ",")
        let run = try count([loop, "200000000"], list, hardwareEvent: true)
        for v in run.values { _ = try hardware(v) }
        let percents = run.values.compactMap(\.runningPercent)
        XCTAssertTrue(percents.contains { $0 < 100 }, "12 hardware events cannot all fit: \(percents)")
        for v in run.values where v.isMultiplexed {
            XCTAssertGreaterThan(v.value!, Double(v.raw), "multiplexed values are scaled up")
        }
        let report = StatReport(runs: [run], groups: try events(list), command: [loop])
        XCTAssertTrue(StatFormatter.text(report).contains("%)"), "the text output shows the running share")
    }

    func testAnEventTheKernelLacksIsNotSupportedNotZero() throws {
        // A software event number past PERF_COUNT_SW_MAX: every kernel answers ENOENT.
        var bogus = EventSpec(name: "sw-bogus", type: 1, config: 1000)
        bogus.modifiers = ""
        let groups = [CounterGroup(events: [bogus]), CounterGroup(events: [EventCatalog.named("task-clock")!])]
        let run: CountedRun
        do { run = try CommandCounter.count(["/bin/true"], groups: groups) } catch let e as SyscallError { try skipIfRefused(e) }
        guard case .notSupported(let reason) = run.values[0].status else { return XCTFail("got \(run.values[0].status)") }
        XCTAssertFalse(reason.isEmpty)
        XCTAssertNil(run.values[0].value)
        XCTAssertEqual(run.values[1].status, .counted, "other events still count")
        let text = StatFormatter.text(StatReport(runs: [run], groups: groups, command: ["/bin/true"]))
        XCTAssertTrue(text.contains("<not supported>      sw-bogus"), text)
    }

    func testExitStatusPassesThroughAndMissingCommandsAre127() throws {
        let run = try count(["/bin/sh", "-c", "exit 3"], "task-clock")
        XCTAssertEqual(run.exitStatus, .exited(3))
        XCTAssertEqual(StatReport(runs: [run], groups: try events("task-clock")).exitStatus, 3)
        do {
            _ = try CommandCounter.count(["sprof-no-such-command-xyz"], groups: try events("task-clock"))
            XCTFail("expected a launch error")
        } catch let error as LaunchError {
            XCTAssertEqual(error.exitStatus, 127)
        } catch let error as SyscallError {
            try skipIfRefused(error)
        }
    }

    func testAttachCountsARunningProcessUntilItExits() throws {
        // About 1.2 s of CPU time, bounded by iterations: attaching takes milliseconds of it.
        let busy = try TestFixtures.buildC("busy", flags: TestFixtures.framePointerFlags)
        let process = try BackgroundProcess(busy, ["3000"])
        defer { process.send(SIGKILL) }
        let run: CountedRun
        do {
            run = try CommandCounter.attach(pid: process.pid, groups: try events("task-clock,context-switches"))
        } catch let e as SyscallError {
            try skipIfRefused(e)
        }
        XCTAssertEqual(process.wait(), 0)
        let total = try XCTUnwrap(process.stdout.split(separator: "cpu_ns=").last.flatMap { Double($0.prefix { $0.isNumber }) }, process.stdout)
        let clock = try XCTUnwrap(run.values[0].value) / 1e6  // ns → ms
        XCTAssertEqual(run.values[0].status, .counted)
        XCTAssertGreaterThan(clock, 0.5 * total / 1e6, "task-clock \(clock) ms of \(total / 1e6) ms")
        XCTAssertLessThanOrEqual(clock, total / 1e6 + 20, "task-clock \(clock) ms of \(total / 1e6) ms")
        XCTAssertFalse(run.interrupted)
        XCTAssertNil(run.exitStatus)
        XCTAssertThrowsError(try CommandCounter.attach(pid: 999_999_999, groups: try events("task-clock")))
    }
}
