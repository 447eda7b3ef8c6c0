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
    /// Each thread's last block read, for the next read to share when its bytes are the same:
    /// a thread in one deep call tree has the same callers' frames at every sample, and copying
    /// ~140 KiB per sample (and spilling it) took a third of a CPU on bench/deep-stacks-like
    /// loads and lost samples (CI, 2026-12-06: 967 lost, 255 stacks cut).
    private var lastBlock: [Int32: LiveStackBlock] = [:]
    private var lastBlockBytes = 0
    private var nextSerial: UInt64 = 1
    /// The most bytes of ``lastBlock`` held at once; beyond it the others are forgotten (their
    /// threads' next reads make new blocks).
    let heldLimit: Int
    /// Reads whose bytes were those of the thread's previous block.
    var shared = 0

    init(heldLimit: Int = 64 << 20) { self.heldLimit = heldLimit }

    /// The live bytes just beyond `copy` (the kernel's copy of thread stack memory from the
    /// sampled stack pointer `sp` of thread `tid` of process `pid`): a block and the offset in it
    /// where they start, the rest of the block being those bytes, a multiple of 8. nil when there
    /// are none (the copy reached its mapping's end), the read fails, or the thread's stack
    /// changed at the copy's end. A block equal to the thread's previous one from the offset on is
    /// that one (``LiveStackBlock/serial`` tells the consumer it has it already).
    mutating func readBeyond(pid: Int32, tid: Int32, sp: UInt64, copy: UnsafeRawBufferPointer, now: UInt64) -> (block: LiveStackBlock, offset: Int)? {
        guard pid > 0, copy.count >= Self.overlap else { return nil }
        let copyEnd = sp &+ UInt64(copy.count)
        // The mapping that holds the stack pointer: a copy that ran past its end into memory
        // mapped right above (a heap, another thread's stack) already holds the whole stack, and
        // reading on into that memory only cost the reader time (bench/deep-stacks lost samples).
        guard copyEnd > sp, let mappingEnd = end(of: sp, pid: pid, now: now), mappingEnd > copyEnd else { return nil }
        let want = Int(min(UInt64(Self.limit), mappingEnd - copyEnd)) & ~7
        guard want > 0 else { return nil }
        if scratch.count < Self.overlap + Self.limit { scratch = [UInt8](repeating: 0, count: Self.overlap + Self.limit) }
        let start = copyEnd - UInt64(Self.overlap)
        let previous = lastBlock[tid]
        let result: (block: LiveStackBlock, offset: Int)? = scratch.withUnsafeMutableBytes { buffer in
            let n = csprof_read_process_memory(pid, buffer.baseAddress, Self.overlap + want, start)
            guard n >= Self.overlap + 8 else { return nil }
            guard memcmp(buffer.baseAddress!, copy.baseAddress! + (copy.count - Self.overlap), Self.overlap) == 0 else {
                changed += 1
                return nil
            }
            reads += 1
            let kept = (n - Self.overlap) & ~7
            let got = UnsafeRawBufferPointer(rebasing: buffer[Self.overlap..<(Self.overlap + kept)])
            if let previous, copyEnd >= previous.start, copyEnd &+ UInt64(kept) == previous.end {
                let offset = Int(copyEnd - previous.start)
                let same = previous.bytes.withUnsafeBytes { old in
                    kept == 0 || memcmp(old.baseAddress! + offset, got.baseAddress!, kept) == 0
                }
                if same {
                    shared += 1
                    return (previous, offset)
                }
            }
            let block = LiveStackBlock(serial: nextSerial, start: copyEnd, bytes: [UInt8](got))
            nextSerial += 1
            return (block, 0)
        }
        if let result, result.block !== previous {
            lastBlockBytes -= previous?.bytes.count ?? 0
            if lastBlockBytes + result.block.bytes.count > heldLimit {
                lastBlock.removeAll()
                lastBlockBytes = 0
            }
            lastBlock[tid] = result.block
            lastBlockBytes += result.block.bytes.count
        }
        return result
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

    /// Forgets a thread that exited (its tid may be reused).
    mutating func forgetThread(_ tid: Int32) {
        if let old = lastBlock.removeValue(forKey: tid) { lastBlockBytes -= old.bytes.count }
    }
}

/// A run of a thread's live stack read beyond a sample's copy (``LiveStackReader``), shared by
/// the samples whose reads gave the same bytes. `serial` is unique in a recording: it is how the
/// reader's output refers to a block the consumer already has (``RecordParser/typeLiveStackRef``).
final class LiveStackBlock: @unchecked Sendable {
    let serial: UInt64
    /// The address of the first byte.
    let start: UInt64
    let bytes: [UInt8]
    var end: UInt64 { start &+ UInt64(bytes.count) }

    init(serial: UInt64, start: UInt64, bytes: [UInt8]) {
        self.serial = serial
        self.start = start
        self.bytes = bytes
    }
}

/// Which live-stack block each thread's samples may refer to without carrying it, kept the same
/// way on both sides of the hand-over: the reader, as it releases records in order, notes each
/// block it sends whole and sends a reference to it after; the consumer, reading the same records
/// in the same order, keeps the blocks themselves. The same operations in the same order give the
/// same state on both sides, so the reader never refers to a block the consumer forgot; a block
/// whose records were lost (the memory budget) is detected by its serial and its samples keep
/// only the copied stack (counted as cut short, never given wrong bytes).
struct LiveStackLedger<Value> {
    private(set) var entries: [Int32: (serial: UInt64, size: Int, value: Value)] = [:]
    private(set) var bytes = 0
    /// The most bytes of blocks kept; a block that would pass it clears the others.
    let limit: Int

    init(limit: Int) { self.limit = limit }

    mutating func insert(tid: Int32, serial: UInt64, size: Int, value: Value) {
        remove(tid: tid)
        if bytes + size > limit {
            entries.removeAll()
            bytes = 0
        }
        entries[tid] = (serial, size, value)
        bytes += size
    }

    mutating func remove(tid: Int32) {
        if let old = entries.removeValue(forKey: tid) { bytes -= old.size }
    }

    /// The value of `tid`'s block when it is the one numbered `serial`.
    func lookup(tid: Int32, serial: UInt64) -> Value? {
        guard let e = entries[tid], e.serial == serial else { return nil }
        return e.value
    }
}
