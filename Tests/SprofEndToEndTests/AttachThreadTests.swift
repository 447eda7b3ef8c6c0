#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import SprofTestSupport

/// `-p` with the id of a thread that is not its process's main thread: /proc answers it as if it
/// were a process, so sprof once counted "2 processes, 5 threads" for one process. `-p` means
/// the whole process, as perf's does.
final class AttachThreadTests: XCTestCase {
    func testAThreadIdAttachesToItsProcess() throws {
        try SprofCLI.requirePerfEvents()
        // The worker spins, so that it has samples; the main thread waits for it.
        let script = "import threading\ndef spin():\n    while True: pass\nt = threading.Thread(target=spin)\nt.start()\nt.join()\n"
        let target = try BackgroundProcess("/usr/bin/python3", ["-c", script])
        defer {
            target.send(SIGKILL)
            _ = target.wait(timeout: 10)
        }
        // The worker thread: the task of the process that is not the process itself.
        var worker: Int32?
        for _ in 0..<100 where worker == nil {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(target.pid)/task")) ?? []
            worker = tasks.compactMap { Int32($0) }.first { $0 != target.pid }
            if worker == nil { usleep(50_000) }
        }
        let tid = try XCTUnwrap(worker, "python3 started no thread")
        let prefix = SprofCLI.outputPrefix("attach-thread")
        let result = try SprofCLI.run(["run", "-p", "\(tid)", "--duration", "0.5", "-o", prefix], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("\(tid) is a thread of process \(target.pid)"), result.stderr)
        XCTAssertTrue(result.stderr.contains(" 1 process,"), result.stderr)
    }
}
