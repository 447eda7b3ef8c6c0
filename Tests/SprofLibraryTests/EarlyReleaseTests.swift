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

    func testCompanionEventsAreClosedWhenReadingEnds() throws {
        var options = SamplingOptions()
        options.offCPU = true
        let before = perfEventDescriptors()
        let command = try WaitingCommand(arguments: ["/bin/sh", "-c", "sleep 0.05"])
        let session: RecordingSession
        do {
            session = try RecordingSession.open(options, target: .command(command), notice: { _ in })
        } catch {
            command.cancel()
            throw XCTSkip("off-CPU recording refused here: \(error)")
        }
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
}
