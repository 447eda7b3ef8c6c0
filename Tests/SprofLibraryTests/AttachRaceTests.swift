import Foundation
import XCTest
import SprofRecording

/// An attached process that exits between the listing of its threads and the start of recording
/// ends the recording at once. Per-thread events hang up when their task exits, but the heap
/// probes are per-CPU events, which never do: `sprof run --heap -p PID` on a process that exited
/// as sprof attached waited for Ctrl-C or --duration.
final class AttachRaceTests: XCTestCase {
    func testAProcessGoneBeforeRecordingEndsItAtOnce() throws {
        let options = try optionsWithAUprobe()
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { argv.forEach { free($0) } }
        XCTAssertEqual(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ), 0)
        let session: RecordingSession
        do {
            session = try RecordingSession.open(options, target: .threads(pid: pid, tids: [pid]), notice: { _ in })
        } catch {
            kill(pid, SIGKILL)
            throw XCTSkip("uprobes refused here (they need CAP_SYS_ADMIN): \(error)")
        }
        // Gone, and reaped, before recording starts.
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // The session asks itself to stop before recording starts; if it did not, nothing else
        // would end it, so the test then stops it itself (and fails) rather than hang.
        var stoppedBySession = false
        try session.record(started: {
            stoppedBySession = session.isStopRequested
            if !stoppedBySession { session.requestStop() }
        }) { _ in }
        session.closeEvents()
        XCTAssertTrue(session.targetExitedBeforeRecording)
        XCTAssertTrue(stoppedBySession, "the recording would have gone on until stopped from outside")
    }
}
