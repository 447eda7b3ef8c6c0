#if canImport(Glibc)
import Glibc
#endif
import XCTest
import Sprof
import SprofTestSupport

/// Runs `body`, turning "this machine cannot do that" into a skip that says why, and nothing else:
/// `.refused` (EACCES/EPERM) skips only when not root, `.unsupported` (ENOENT/EOPNOTSUPP) only for a
/// hardware event (`hardwareEvent: true`: no PMU in this VM). A software event (cpu-clock,
/// task-clock, page-faults, context-switches) that fails to open is sprof's bug: the error fails
/// the test.
func skippingWhenRefused<T>(hardwareEvent: Bool = false, _ body: () throws -> T) throws -> T {
    if let reason = perfEventAvailable() { throw XCTSkip(reason) }
    do {
        return try body()
    } catch let error as SprofError {
        switch error {
        case .refused(let reason) where geteuid() != 0:
            throw XCTSkip("perf_event_open refused to this user: \(reason)")
        case .unsupported(let reason) where hardwareEvent:
            throw XCTSkip("no hardware PMU event here: \(reason)")
        default:
            throw error
        }
    }
}

/// Runs `body` on a new thread and waits for it; returns the thread's kernel id and result.
private final class ThreadBox<T>: @unchecked Sendable {
    var tid: Int32 = 0
    var result: T?
    let done = DispatchSemaphore(value: 0)
}

func onNewThread<T>(name: String? = nil, _ body: @escaping () -> T) -> (tid: Int32, result: T) {
    let box = ThreadBox<T>()
    let thread = Thread {
        if let name { Profiler.nameCurrentThread(name) }
        box.tid = Profiler.currentThreadID
        box.result = body()
        box.done.signal()
    }
    thread.start()
    box.done.wait()
    return (box.tid, box.result!)
}

/// A loop whose instruction count is known exactly, built at run time because Swift has no inline
/// assembly: `1: dec %rdi; jnz 1b; ret` retires 2N + 1 instructions for N >= 1.
final class KnownLoop {
    typealias Function = @convention(c) (UInt64) -> Void
    let function: Function
    private let page: UnsafeMutableRawPointer

    init?() {
        #if arch(x86_64)
        let code: [UInt8] = [0x48, 0xFF, 0xCF, 0x75, 0xFB, 0xC3]
        guard let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else { return nil }
        p.copyMemory(from: code, byteCount: code.count)
        guard mprotect(p, 4096, PROT_READ | PROT_EXEC) == 0 else { munmap(p, 4096); return nil }
        page = p
        function = unsafeBitCast(p, to: Function.self)
        #else
        return nil
        #endif
    }

    deinit { munmap(page, 4096) }

    /// Runs the loop `n` (>= 1) times.
    func run(_ n: UInt64) { function(max(n, 1)) }
}

/// Skips (with the reason) when this process cannot profile itself: probes once with a real
/// start/stop, for tests whose assertions would otherwise swallow the refusal.
func requireProfiling() throws {
    try skippingWhenRefused {
        let probe = Profiler()
        try probe.start()
        _ = try probe.stop()
    }
}
