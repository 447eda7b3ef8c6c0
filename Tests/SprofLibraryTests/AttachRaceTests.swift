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
        // Only as a way out if the fix is undone: the test then fails instead of hanging.
        let rescued = ManagedFlag()
        DispatchQueue.global().asyncAfter(deadline: .now() + 20) {
            rescued.set()
            session.requestStop()
        }
        try session.record(started: {}) { _ in }
        session.closeEvents()
        XCTAssertTrue(session.targetExitedBeforeRecording)
        XCTAssertFalse(rescued.value, "the recording went on until it was stopped from outside")
    }
}

private final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.lock(); flag = true; lock.unlock() }
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
}
