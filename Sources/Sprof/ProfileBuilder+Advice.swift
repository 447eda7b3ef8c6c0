import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// What to tell the user about the stacks: copies that ran out, unwind information unread.
extension ProfileBuilder {
    /// A notice when at least 1% of the DWARF stacks were cut short because the copied user stack
    /// ran out (deep recursion, big frames), naming a larger copy; nil otherwise. The kernel
    /// copies at most 65528 bytes per sample (`sample_stack_user`, perf_event_open(2)).
    var stackCopyAdvice: String? {
        guard case .dwarf(let size) = callGraph else { return nil }
        let cut = unwinder.statistics.stackExhausted
        guard cut > 0, cut * 100 >= statistics.samples else { return nil }
        let share = "\(cut) of \(statistics.samples) stacks were cut short because the \(size)-byte stack copy ran out"
        let limit: UInt32 = 65528
        guard size < limit else { return share + " (the kernel copies at most \(limit) bytes)" }
        return share + "; copy more with --call-graph dwarf,\(min(limit, max(32768, size * 4)))"
    }

    /// Notices about DWARF stacks cut short for reasons other than the copy's size: one per file
    /// whose unwind information elfutils cannot read (a zstd-compressed `.debug_frame`).
    var unwindNotices: [String] {
        guard case .dwarf = callGraph else { return [] }
        var notices: [String] = []
        let abi32 = unwinder.statistics.abi32
        if abi32 > 0 {
            notices.append("\(abi32) sample\(abi32 == 1 ? "" : "s") of 32-bit (i386) code: sprof unwinds x86-64 stacks only, "
                + "so their stacks are the sampled function alone, marked [truncated]")
        }
        return notices + unwinder.unreadableUnwindInfo.map { entry in
            "\(entry.path): its unwind information (.debug_frame) is zstd-compressed, which elfutils \(DwarfUnwinder.elfutilsVersion) cannot read: "
                + "\(entry.stacks) stack\(entry.stacks == 1 ? "" : "s") through it end there, marked [truncated]; "
                + "objcopy --decompress-debug-sections makes it readable"
        }
    }
}
