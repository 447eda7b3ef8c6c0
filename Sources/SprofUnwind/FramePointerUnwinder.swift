import SprofCore
import SprofRecording

/// A stack ready for symbolization.
public struct UnwoundStack: Sendable, Equatable {
    /// Frames, leaf first.
    public var frames: [StackFrame]
    /// True when the stack is known to be incomplete (the kernel's depth cap, or the copied user
    /// stack ran out): the folded output marks its root `[truncated]`.
    public var truncated: Bool

    /// Creates a stack.
    public init(frames: [StackFrame], truncated: Bool) {
        self.frames = frames
        self.truncated = truncated
    }
}

/// Turns the kernel's callchain (frame-pointer walked for user space) into frames.
public enum Callchain {
    // PERF_CONTEXT_* markers: the top 4095 values of u64.
    static let contextHypervisor = UInt64(bitPattern: -32)
    static let contextKernel = UInt64(bitPattern: -128)
    /// PERF_CONTEXT_USER: the user part of a callchain follows.
    public static let contextUser = UInt64(bitPattern: -512)
    static let contextMax = UInt64(bitPattern: -4095)

    /// Frames from a sample's callchain, leaf first. In each context the first address is the
    /// interrupted instruction and the rest are return addresses. `userFrames: false` keeps only
    /// the kernel part (DWARF mode unwinds user space itself). Guest and hypervisor contexts are
    /// skipped. `maxStack` is `kernel.perf_event_max_stack`: a chain that reaches it was cut.
    public static func frames(of sample: SampleRecord, userFrames: Bool = true, maxStack: Int = 127) -> UnwoundStack {
        if sample.callchain.isEmpty {
            let kernel = sample.cpuMode == .kernel
            if !userFrames && !kernel { return UnwoundStack(frames: [], truncated: false) }
            return UnwoundStack(frames: [StackFrame(address: ProcessAddress(sample.ip), isReturnAddress: false, isKernel: kernel)],
                                truncated: false)
        }
        var frames: [StackFrame] = []
        frames.reserveCapacity(sample.callchain.count)
        var context = contextUser
        var firstInContext = true
        var entries = 0
        for value in sample.callchain {
            if value >= contextMax {
                context = value
                firstInContext = true
                continue
            }
            entries += 1
            guard context == contextKernel || (context == contextUser && userFrames) else { continue }
            // Zero and the all-ones sentinel end some user chains; they are not frames.
            if value == 0 || value == UInt64.max { continue }
            frames.append(StackFrame(address: ProcessAddress(value), isReturnAddress: !firstInContext,
                                     isKernel: context == contextKernel))
            firstInContext = false
        }
        let truncated = entries + markerCount(sample.callchain) >= maxStack && userFrames
        return UnwoundStack(frames: frames, truncated: truncated)
    }

    private static func markerCount(_ chain: [UInt64]) -> Int {
        var n = 0
        for v in chain where v >= contextMax { n += 1 }
        return n
    }
}
