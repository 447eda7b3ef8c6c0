import XCTest
@testable import SprofRecording

/// Error advice fits who asks and what was asked (issue 12): the sysctl value named covers the
/// request, root is not told about a limit that does not bind it.
final class AdviceTests: XCTestCase {
    func testRingBufferAdviceForAUserNamesAValueThatCoversTheRequest() {
        let settings = KernelSettings(paranoid: 2, mlockKB: 516)
        let text = Advice.ringBuffer(dataPages: 1024, pageSize: 4096, settings: settings, privileged: false)
        XCTAssertTrue(text.contains("kernel.perf_event_mlock_kb=4100"), text)   // (1024 + 1) × 4 KiB
        XCTAssertTrue(text.contains("-m 128"), "the largest -m within 516 KiB: \(text)")
        XCTAssertFalse(text.contains("=2048"), text)
        let small = Advice.ringBuffer(dataPages: 1024, pageSize: 4096, settings: KernelSettings(paranoid: 2, mlockKB: 4), privileged: false)
        XCTAssertFalse(small.contains("-m 0"), small)
    }

    /// A request within the limit in effect fails only because another recording holds the
    /// user's locked-memory budget: say so, and never advise the value already set (issue 20).
    func testRingBufferAdviceWhenAnotherRecordingHoldsTheBudget() {
        let text = Advice.ringBuffer(dataPages: 64, pageSize: 4096, settings: KernelSettings(paranoid: 2, mlockKB: 516), privileged: false)
        XCTAssertTrue(text.contains("another recording"), text)
        XCTAssertFalse(text.contains("perf_event_mlock_kb=260"), text)
        XCTAssertFalse(text.contains("perf_event_mlock_kb=516"), text)
    }

    func testRingBufferAdviceForRootIsAboutMemoryNotTheSysctl() {
        let text = Advice.ringBuffer(dataPages: 65536, pageSize: 4096, settings: KernelSettings(paranoid: 2, mlockKB: 516), privileged: true)
        XCTAssertFalse(text.contains("perf_event_mlock_kb"), text)
        XCTAssertTrue(text.contains("-m 16384"), text)
        // Never more than one buffer can have (2^18 pages): the advice must be a value that works.
        let huge = Advice.ringBuffer(dataPages: 1 << 21, pageSize: 4096, settings: KernelSettings(paranoid: 2, mlockKB: 516), privileged: true)
        XCTAssertTrue(huge.contains("-m 262144"), huge)
    }

    func testAForeignProcessIsNamedOnlyWhenItIsForeign() {
        // Process 1 belongs to root: foreign for any other user, never for root itself.
        XCTAssertNil(Advice.foreignProcess(1, euid: 0))
        let text = Advice.foreignProcess(1, euid: 65534)
        // Said once: "as root (sudo -u root sprof …) or as root" repeated itself.
        XCTAssertEqual(text, "process 1 belongs to root, and only root may profile it: run sprof as root (sudo sprof …)")
        XCTAssertNil(Advice.foreignProcess(getpid(), euid: geteuid()))
        XCTAssertNil(Advice.foreignProcess(999_999_999, euid: 65534), "a missing process is not blamed on its owner")
    }
}
