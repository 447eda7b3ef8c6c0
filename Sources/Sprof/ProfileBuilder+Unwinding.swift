import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// Unwind dispatch: the stack mode chooses how a sample's stack is taken.
extension ProfileBuilder {
    /// The sample's stack, leaf first, by the stack mode: kernel frames from the callchain and
    /// user frames unwound with libdw (DWARF), the kernel's frame-pointer callchain checked for a
    /// lost leaf caller (fp), or the callchain as recorded.
    func unwind(_ sample: SampleRecord, process: ProcessState) -> UnwoundStack {
        var unwound: UnwoundStack
        switch callGraph {
        case .dwarf where heap != nil && sample.callchain.contains(Callchain.contextUser):
            // An attached heap profile's entry probe: the kernel's frame-pointer walk (see
            // EventSpec.walksUserFramePointers).
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
            Self.addEntryReturnAddress(sample, to: &unwound)
            unwinder.checkFramePointerStack(&unwound, process: process)
        case .dwarf:
            // Kernel frames (leaf-most) from the callchain, then the user frames unwound with libdw.
            unwound = Callchain.frames(of: sample, userFrames: false, maxStack: maxStack)
            if !sample.userRegisters.isEmpty || sample.cpuMode == .user {
                let user = unwinder.unwindUser(sample, process: process)
                unwound.frames.append(contentsOf: user.frames)
                unwound.truncated = unwound.truncated || user.truncated
            }
        case .framePointer:
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
            if heap != nil && sample.userStack.count == 8 { Self.addEntryReturnAddress(sample, to: &unwound) }
            unwinder.checkFramePointerStack(&unwound, process: process)
        default:
            unwound = Callchain.frames(of: sample, maxStack: maxStack)
        }
        return unwound
    }

    /// At a probed function's entry the kernel's frame-pointer walk misses the first return
    /// address when the function's first instruction is not `push %rbp` or `endbr64`
    /// (is_uprobe_at_func_entry, arch/x86/events/core.c): it is the word at SP, the 8 bytes of
    /// stack the entry probes copy. Inserted after the leaf unless the walk has it already.
    static func addEntryReturnAddress(_ sample: SampleRecord, to unwound: inout UnwoundStack) {
        guard sample.userStack.count >= 8, !unwound.frames.isEmpty else { return }
        let returnAddress = sample.userStack.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        if unwound.frames.count < 2 || unwound.frames[1].address.rawValue != returnAddress {
            unwound.frames.insert(StackFrame(address: ProcessAddress(returnAddress), isReturnAddress: true, isKernel: false), at: 1)
        }
    }
}
