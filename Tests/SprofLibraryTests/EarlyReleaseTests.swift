import Foundation
import XCTest
import SprofRecording

/// The events that write into the CPU buffers (heap probes, context switches) are closed once the
/// reader has read the last record, while the consumer still unwinds, not when the session is
/// closed or sprof exits: the kernel takes ~100 ms to release each uprobe event here, and at exit
/// that added ~0.35 s to every heap run (bench/RESULTS.md, issue 19).
final class EarlyReleaseTests: XCTestCase {
    /// The perf events this process holds (`anon_inode:[perf_event]` in /proc/self/fd).
    private func perfEventDescriptors() -> Int {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return fds.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) == "anon_inode:[perf_event]" }.count
    }

    /// A session on a command not yet started; skips, saying why, when the kernel refuses.
    private func open(_ options: SamplingOptions, _ arguments: [String], refused: String) throws -> (WaitingCommand, RecordingSession) {
        let command = try WaitingCommand(arguments: arguments)
        do {
            return (command, try RecordingSession.open(options, target: .command(command), notice: { _ in }))
        } catch {
            command.cancel()
            throw XCTSkip("\(refused): \(error)")
        }
    }

    func testCompanionEventsAreClosedWhenReadingEnds() throws {
        var options = SamplingOptions()
        options.offCPU = true
        let before = perfEventDescriptors()
        let (command, session) = try open(options, ["/bin/sh", "-c", "sleep 0.05"], refused: "off-CPU recording refused here")
        let opened = perfEventDescriptors() - before
        try session.record(started: { try? command.start() }) { _ in }
        _ = command.wait()
        let left = perfEventDescriptors() - before
        session.closeEvents()
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        XCTAssertGreaterThan(opened, cpus, "the off-CPU events besides the sampled ones (\(opened) opened)")
        XCTAssertEqual(left, cpus, "only the CPU buffers stay open once reading ended (\(opened) opened)")
        XCTAssertEqual(perfEventDescriptors(), before)
    }

    /// Uprobe events are not released by this process at all: their last close (~100 ms each in
    /// the kernel) is left to a helper process, so sprof exits as soon as its outputs are written.
    func testUprobeEventsAreReleasedByAHelperProcess() throws {
        let options = try optionsWithAUprobe()
        let before = perfEventDescriptors()
        let (command, session) = try open(options, ["/bin/true"], refused: "uprobes refused here (they need CAP_SYS_ADMIN)")
        let opened = perfEventDescriptors() - before
        XCTAssertNil(session.uprobeReleaserPID)
        try session.record(started: { try? command.start() }) { _ in }
        _ = command.wait()
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        let helper = try XCTUnwrap(session.uprobeReleaserPID, "the uprobe events were closed by this process")
        XCTAssertEqual(perfEventDescriptors() - before, cpus, "only the CPU buffers stay open (\(opened) opened)")
        // While it lives (the kernel may be done already), the helper holds the uprobe events and
        // only them besides its standard input, output and error.
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(helper)/fd")) ?? []
        if !fds.isEmpty {
            let links = fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(helper)/fd/" + $0) }
            let others = links.filter { $0 != "anon_inode:[perf_event]" }
            XCTAssertLessThanOrEqual(others.count, 3, "the helper inherited \(others)")
            XCTAssertLessThanOrEqual(links.count - others.count, opened - cpus)
        } else {
            print("the helper \(helper) had released the events before it was looked at")
        }
        session.closeEvents()
        XCTAssertEqual(perfEventDescriptors(), before)
    }
}
