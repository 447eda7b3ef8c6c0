import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// The last progress report (what `sprof serve` shows for a job) has the command's peak resident
/// set from wait4 even when no reading of /proc saw it: with the timeline off (`memoryRate` 0)
/// there is no reading at all, so the peak can only be the kernel's high-water mark.
final class PeakProgressTests: XCTestCase {
    func testTheLastProgressReportHasTheKernelsPeak() throws {
        let binary = try TestFixtures.buildC("alloc", flags: TestFixtures.noFramePointerFlags)
        let last = LastReport()
        var options = RunOptions()
        options.memoryRate = 0
        options.progress = { last.set($0) }
        // The forked child starts with this process's resident set, and exec carries that mark
        // into wait4's, so a peak is taken only above it: the command touches 64 MiB more than
        // this test process holds (a host of the library can be large, as the whole suite is).
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let ownKiB = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        let mib = ownKiB / 1024 + 64
        let recorded = try skippingWhenRefused { try CommandProfiler.profile([binary, String(mib), "0"], options: options) }
        XCTAssertEqual(recorded.exitStatus, .exited(0))
        let report = try XCTUnwrap(last.value)
        XCTAssertTrue(report.done)
        XCTAssertGreaterThanOrEqual(report.peakRSS, UInt64(mib) << 20, "\(report)")
        XCTAssertEqual(recorded.profile.metadata.commandPeakRSS, report.peakRSS)
    }
}

private final class LastReport: @unchecked Sendable {
    private let lock = NSLock()
    private var report: RecordingProgress?
    func set(_ r: RecordingProgress) { lock.lock(); report = r; lock.unlock() }
    var value: RecordingProgress? { lock.lock(); defer { lock.unlock() }; return report }
}
