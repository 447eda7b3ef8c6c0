#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// Reads, for a sample whose user-stack copy ends before the stack does, the rest of the
/// thread's stack from the live process (`process_vm_readv`) as the reader thread takes the
/// sample from the ring buffer, a few milliseconds after it was taken, rather than when it is
/// unwound (the consumer may be seconds behind, and by then most threads had moved on).
///
/// A copy ends before the stack when the kernel filled it to the size asked (65528 bytes at
/// most: threads with big frames need more), and also when it stopped at a stack page that was
/// not resident (the copy is made where pages cannot be faulted in): GNU sort's workers keep
/// large, partly untouched buffers on their stacks, and their copies held 672-912 bytes of the
/// 32 KiB asked. Either way the copy's end lies below the end of the mapping that holds the
/// stack pointer, which is the test here; a copy that reached the top of its stack (the usual
/// case), or ran past it into the next mapping, has nothing beyond it.
///
/// Sound only where the thread has not returned past the copy's end since: the read starts
/// ``overlap`` bytes below the copy's end, and the bytes beyond are kept only when those equal the
/// copied ones (the frames further out belong to callers still running, unchanged). Reads stop at
/// the end of the mapping holding the stack (from /proc/PID/maps) and at ``limit``.
struct LiveStackReader {
    /// Bytes below the copy's end that the live read must match.
    static let overlap = 512
    /// How far beyond the copy the live stack is read at most.
    static let limit = 512 << 10
    /// Reads that gave bytes beyond the copy.
    var reads = 0
    /// Reads refused because the bytes at the copy's end had changed (the thread moved on).
    var changed = 0
    /// Readable ranges of each process, from its maps file (in address order); re-read when an
    /// address falls outside them (a new thread's stack), at most once per process per
    /// ``refreshNanoseconds``.
    private var ranges: [Int32: (read: UInt64, ranges: [Range<UInt64>])] = [:]
    private static let refreshNanoseconds: UInt64 = 50_000_000

    /// Reused for every read: a fresh 512 KiB buffer per sample (zeroed, trimmed, copied again)
    /// cost the reader thread more than the read itself.
    private var scratch: [UInt8] = []

    /// Appends to `raw` (the sample's record) the live bytes just beyond `copy` (the kernel's
    /// copy of thread stack memory from the sampled stack pointer `sp` of process `pid`) as
    /// ``RecordParser/typeLiveStack`` records, a multiple of 8 bytes in all. Returns false, with
    /// `raw` unchanged, when there are none (the copy reached its mapping's end), the read fails,
    /// or the thread's stack changed at the copy's end.
    mutating func appendBeyond(to raw: inout [UInt8], pid: Int32, sp: UInt64, copy: UnsafeRawBufferPointer, now: UInt64) -> Bool {
        guard pid > 0, copy.count >= Self.overlap else { return false }
        let copyEnd = sp &+ UInt64(copy.count)
        // The mapping that holds the stack pointer: a copy that ran past its end into memory
        // mapped right above (a heap, another thread's stack) already holds the whole stack, and
        // reading on into that memory only cost the reader time (bench/deep-stacks lost samples).
        guard copyEnd > sp, let mappingEnd = end(of: sp, pid: pid, now: now), mappingEnd > copyEnd else { return false }
        let want = Int(min(UInt64(Self.limit), mappingEnd - copyEnd)) & ~7
        guard want > 0 else { return false }
        if scratch.count < Self.overlap + Self.limit { scratch = [UInt8](repeating: 0, count: Self.overlap + Self.limit) }
        let start = copyEnd - UInt64(Self.overlap)
        return scratch.withUnsafeMutableBytes { buffer in
            let n = csprof_read_process_memory(pid, buffer.baseAddress, Self.overlap + want, start)
            guard n >= Self.overlap + 8 else { return false }
            guard memcmp(buffer.baseAddress!, copy.baseAddress! + (copy.count - Self.overlap), Self.overlap) == 0 else {
                changed += 1
                return false
            }
            reads += 1
            let kept = (n - Self.overlap) & ~7
            RecordParser.appendLiveStackRecords(UnsafeRawBufferPointer(rebasing: buffer[Self.overlap..<(Self.overlap + kept)]), to: &raw)
            return true
        }
    }

    /// The end of the mapping of `pid` that holds `address`, or nil.
    private mutating func end(of address: UInt64, pid: Int32, now: UInt64) -> UInt64? {
        if let known = ranges[pid], let r = Self.range(holding: address, in: known.ranges) { return r.upperBound }
        if let known = ranges[pid], now &- known.read < Self.refreshNanoseconds { return nil }
        guard let maps = readTextFile("/proc/\(pid)/maps") else {
            ranges[pid] = (now, [])
            return nil
        }
        var found: [Range<UInt64>] = []
        for line in maps.split(separator: "\n") {
            // "start-end perms offset dev inode path": only the readable ones.
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count >= 2, fields[1].first == "r" else { continue }
            let ends = fields[0].split(separator: "-")
            guard ends.count == 2, let lo = UInt64(ends[0], radix: 16), let hi = UInt64(ends[1], radix: 16), lo < hi else { continue }
            found.append(lo..<hi)
        }
        found.sort { $0.lowerBound < $1.lowerBound }
        ranges[pid] = (now, found)
        return Self.range(holding: address, in: found)?.upperBound
    }

    /// The range of `sorted` (in address order, not overlapping) that holds `address`.
    static func range(holding address: UInt64, in sorted: [Range<UInt64>]) -> Range<UInt64>? {
        var lo = 0, hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid].upperBound <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < sorted.count && sorted[lo].contains(address) ? sorted[lo] : nil
    }

    /// Forgets a process that exited (its pid may be reused).
    mutating func forget(_ pid: Int32) { ranges[pid] = nil }
}
