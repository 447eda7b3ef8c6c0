// All unsafe ring-buffer code lives in this file: the mapping, the head/tail protocol and the copy
// of records that wrap past the end of the data area.
#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// Owns one perf mmap ring buffer: a control page followed by 2^n data pages. Unmaps in `deinit`.
struct RingBuffer: ~Copyable {
    private let base: UnsafeMutableRawPointer
    private let mapLength: Int
    private let data: UnsafeRawPointer
    private let dataSize: UInt64
    /// Records that wrap are copied here so that parsers always see contiguous bytes.
    private var scratch: UnsafeMutableRawBufferPointer

    /// Maps the buffer of the event `fd` with `dataPages` (a power of two) data pages.
    init(fd: Int32, dataPages: Int) throws(SyscallError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = (1 + dataPages) * page
        let pointer = try sysCallPointer("mmap", failure: MAP_FAILED, hint: { err in
            guard err == EPERM || err == ENOMEM else { return "" }
            let settings = KernelSettings.current()
            return Advice.ringBuffer(dataPages: dataPages, pageSize: page, settings: settings, privileged: settings.privileged)
        }) {
            mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        }
        let control = pointer.assumingMemoryBound(to: perf_event_mmap_page.self)
        // data_offset/data_size are set by kernels since 4.1; older ones start data one page in.
        let offset = control.pointee.data_offset != 0 ? Int(control.pointee.data_offset) : page
        let size = control.pointee.data_size != 0 ? control.pointee.data_size : UInt64(dataPages * page)
        self.base = pointer
        self.mapLength = length
        self.data = UnsafeRawPointer(pointer + offset)
        self.dataSize = size
        self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
    }

    /// A buffer in anonymous memory laid out like the kernel's, holding `data` as its data area
    /// and the given free-running `tail` and `head`: tests drive the exact code the kernel's buffer
    /// takes, including records that wrap.
    init(syntheticData data: [UInt8], tail: UInt64, head: UInt64) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        precondition(data.count % page == 0 && data.count > 0, "data area must be whole pages")
        let length = page + data.count
        let pointer = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!
        precondition(pointer != MAP_FAILED, "mmap failed")
        let control = pointer.assumingMemoryBound(to: perf_event_mmap_page.self)
        control.pointee.data_offset = UInt64(page)
        control.pointee.data_size = UInt64(data.count)
        control.pointee.data_head = head
        control.pointee.data_tail = tail
        data.withUnsafeBytes { (pointer + page).copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        self.base = pointer
        self.mapLength = length
        self.data = UnsafeRawPointer(pointer + page)
        self.dataSize = UInt64(data.count)
        self.scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
    }

    /// The consumer position, as stored for the kernel.
    var tail: UInt64 { base.assumingMemoryBound(to: perf_event_mmap_page.self).pointee.data_tail }

    deinit {
        munmap(base, mapLength)
        scratch.deallocate()
    }

    /// Bytes written by the kernel and not yet consumed.
    var pendingBytes: UInt64 {
        csprof_ring_load_head(base) &- base.assumingMemoryBound(to: perf_event_mmap_page.self).pointee.data_tail
    }

    /// Calls `body` with each complete record available now, in order, then releases the space to
    /// the kernel. The bytes passed to `body` are valid only during the call. Returns the number of
    /// records visited.
    @discardableResult
    mutating func drain(_ body: (UnsafeRawBufferPointer) throws -> Void) rethrows -> Int {
        let head = csprof_ring_load_head(base)
        var tail = base.assumingMemoryBound(to: perf_event_mmap_page.self).pointee.data_tail
        var count = 0
        defer { csprof_ring_store_tail(base, tail) }
        while tail < head {
            let available = head - tail
            guard available >= 8 else { break }
            let start = Int(tail % dataSize)
            let size = UInt64(readHeaderSize(at: start))
            // A size below a header's means a corrupt buffer: drop what is left rather than spin.
            guard size >= 8 else { tail = head; break }
            // The kernel publishes head only past whole records; be conservative anyway.
            guard size <= available else { break }
            let contiguous = UInt64(dataSize) - UInt64(start)
            if size <= contiguous {
                try body(UnsafeRawBufferPointer(start: data + start, count: Int(size)))
            } else {
                let first = Int(contiguous)
                scratch.baseAddress!.copyMemory(from: data + start, byteCount: first)
                (scratch.baseAddress! + first).copyMemory(from: data, byteCount: Int(size) - first)
                try body(UnsafeRawBufferPointer(start: scratch.baseAddress, count: Int(size)))
            }
            tail += size
            count += 1
        }
        return count
    }

    /// The header's u16 size field, which may itself straddle the end of the data area.
    private func readHeaderSize(at start: Int) -> UInt16 {
        let at = start + 6
        if at + 2 <= Int(dataSize) { return data.loadUnaligned(fromByteOffset: at, as: UInt16.self) }
        let lo = data.load(fromByteOffset: at % Int(dataSize), as: UInt8.self)
        let hi = data.load(fromByteOffset: (at + 1) % Int(dataSize), as: UInt8.self)
        return UInt16(lo) | UInt16(hi) << 8
    }
}
