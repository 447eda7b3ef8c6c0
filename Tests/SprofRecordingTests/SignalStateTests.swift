import XCTest
import SprofTestSupport

/// The shim's signal-forwarding state is one per program. A release build compiles each Swift
/// source file of a module to its own object file, each with its own copies of csprof.h's inline
/// functions: with that state `static`, the handler installed from RecordingSession.swift noted
/// Ctrl-C in its copy while `InterruptForwarding.lastSignal` read another, and `sprof run -p`
/// ended by Ctrl-C exited 0 instead of 130 (debug builds, one call site, hid it). The fixture
/// has the same split in C: two translation units including csprof.h.
final class SignalStateTests: XCTestCase {
    func testTwoObjectFilesShareTheSignalState() throws {
        let include = TestFixtures.packageRoot.appendingPathComponent("include").path
        let other = TestFixtures.cFixturesDirectory.appendingPathComponent("shim_signals_other.c").path
        let binary = try TestFixtures.buildC("shim_signals", flags: ["-I", include, other])
        let result = try TestFixtures.run(binary, [], timeout: 30)
        XCTAssertTrue(result.stdout.contains("last=2\n"), "the signal the other unit's handler caught is the one read here: \(result.stdout)")
        XCTAssertEqual(result.status, 0, "keep-catching set in one unit holds for the other's restore (143: SIGTERM killed it): \(result.stdout)")
        XCTAssertTrue(result.stdout.contains("kept last=15"), result.stdout)
    }
}
