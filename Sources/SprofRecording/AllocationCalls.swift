#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// Exact counts of the allocations one thread makes while a closure runs: the mechanism behind
/// allocation budgets (`Sprof.allocationCount(of:)`).
///
/// One uprobe per allocation function of the allocator (malloc, calloc, realloc, posix_memalign,
/// aligned_alloc, memalign, valloc, pvalloc), opened through perf_event_open for the calling
/// thread only (pid 0, any CPU, no inherit), each sampled at every call (period 1) with the
/// argument registers DI, SI and DX and nothing else (48-byte records, no stack), into one ring
/// buffer read after the closure returns. The events' counts (read(2)) never lose a call; the
/// records give the sizes, and are complete unless the buffer filled up (``Reading/complete``).
///
/// Each probed call traps into the kernel (about 1.5 µs here), on every thread of the process
/// while the probes are in place (the kernel installs them in this process's memory; only the
/// calling thread's calls are recorded). Needs CAP_SYS_ADMIN, as every uprobe.
public final class ThreadAllocationCounter {
    /// What one measurement saw.
    public struct Reading: Sendable, Equatable {
        /// Allocation calls that returned, or may return, new memory: every call of the probed
        /// functions but `realloc(ptr, 0)` (a free) and the allocator's calls to itself (glibc's
        /// `realloc(NULL, n)` calls `malloc`; that counts once).
        public var objects: Int
        /// Bytes asked for by those calls (`calloc(n, size)`: n × size), from the records.
        public var bytes: UInt64
        /// False when the ring buffer filled up and records were lost: ``objects`` still comes from
        /// the exact event counts (so an allocator's call to itself may then count twice), and
        /// ``bytes`` is a lower bound.
        public var complete: Bool
        /// Calls per function name, from the event counts.
        public var calls: [String: Int]

        /// A reading (tests of budget logic build their own).
        public init(objects: Int, bytes: UInt64, complete: Bool = true, calls: [String: Int] = [:]) {
            self.objects = objects
            self.bytes = bytes
            self.complete = complete
            self.calls = calls
        }
    }

    /// Where each probed function takes its size (x86-64 SysV: DI, SI, DX are the first three
    /// arguments).
    private enum SizeArgument {
        case first, product, second, third, realloc
    }

    /// Probed functions and their size arguments, in the order aliases are resolved (glibc's
    /// aligned_alloc may share memalign's address: the first name wins, and both take SI).
    private static let functions: [(String, SizeArgument)] = [
        ("malloc", .first), ("calloc", .product), ("realloc", .realloc), ("posix_memalign", .third),
        ("aligned_alloc", .second), ("memalign", .second), ("valloc", .first), ("pvalloc", .first),
    ]

    /// The allocator file probed (the file whose `malloc` this process calls).
    public let allocator: String
    private var descriptors: [Int32] = []
    /// The group leader (the first descriptor), kept apart: between enabling and disabling
    /// nothing may allocate, and in a debug build even `descriptors.first` does (a generic
    /// collection accessor's coroutine frame is malloc'ed).
    private var leader: Int32 = -1
    private var names: [String] = []
    private var arguments: [SizeArgument] = []
    private var roleByID: [UInt64: Int] = [:]
    private var ring: RingBuffer?
    private let parser: RecordParser
    private let mallocIndex: Int?
    /// Whether this allocator's `realloc(NULL, n)` enters the probed `malloc` (measured once).
    private var reallocCallsMalloc = false

    /// Ring-buffer data pages (1 MiB): about 21,000 calls' records per measurement.
    public static let defaultDataPages = 256

    /// Opens the probes, disabled, for the calling thread. Use the counter from this thread only.
    ///
    /// - Parameters:
    ///   - allocator: the ELF file defining the allocation functions (libc, or a preloaded
    ///     jemalloc…); only the functions it defines are probed, `malloc` at least.
    ///   - dataPages: ring-buffer data pages, a power of two.
    /// - Throws: `SyscallError`: ENOENT when the file defines no `malloc` or the kernel has no
    ///   uprobe PMU, EPERM/EACCES without CAP_SYS_ADMIN, other perf_event_open or mmap failures.
    public init(allocator: String, dataPages: Int = ThreadAllocationCounter.defaultDataPages) throws(SyscallError) {
        self.allocator = allocator
        let mask: UInt64 = 1 << 3 | 1 << 4 | 1 << 5  // DX, SI, DI: record order DX, SI, DI
        let layout = SampleLayout(sampleType: SampleBits.identifier | SampleBits.regsUser, regsUserMask: mask, sampleIDAll: false)
        parser = RecordParser(layout: layout)
        guard let bytes = readWholeFile(allocator) else {
            throw SyscallError(call: "allocations", errno: ENOENT, hint: "cannot read the allocator \(allocator)")
        }
        var offsets: Set<UInt64> = []
        var found: [(name: String, argument: SizeArgument, offset: UInt64)] = []
        for (name, argument) in Self.functions {
            guard let offset = ElfSymbolTable.fileOffset(of: name, in: bytes), offsets.insert(offset).inserted else { continue }
            found.append((name, argument, offset))
        }
        guard found.first?.name == "malloc" else {
            throw SyscallError(call: "allocations", errno: ENOENT, hint: "\(allocator) does not define malloc; nothing to probe")
        }
        mallocIndex = 0
        do throws(SyscallError) {
            for (name, argument, offset) in found {
                let event = try Uprobes.event(path: allocator, offset: offset, name: name, copiesUserStack: false)
                var attr = AttrBuilder.base(event)
                attr.sample_type = layout.sampleType
                attr.sample_regs_user = mask
                attr.sample_period = 1
                attr.disabled = 1
                attr.exclude_kernel = 1
                attr.exclude_hv = 1
                // One group led by the first event: enabling, disabling and resetting the group is
                // one ioctl each, so nothing runs between enabling the probes and `body`.
                let group = descriptors.first ?? -1
                let fd = try sysCall("perf_event_open", hint: { err in RecordingSession.hint(for: err, event: event, settings: KernelSettings.current()) }) {
                    csprof_perf_event_open(&attr, 0, -1, group, UInt(PERF_FLAG_FD_CLOEXEC))
                }
                descriptors.append(fd)
                if leader < 0 { leader = fd }
                names.append(name)
                arguments.append(argument)
                var id: UInt64 = 0
                if csprof_ioctl_id(fd, &id) == 0 { roleByID[id] = descriptors.count - 1 }
                if descriptors.count == 1 {
                    ring = try RingBuffer(fd: fd, dataPages: dataPages)
                } else if csprof_ioctl_set_output(fd, descriptors[0]) != 0 {
                    throw SyscallError(call: "ioctl(PERF_EVENT_IOC_SET_OUTPUT)", errno: errno, hint: "")
                }
            }
        } catch {
            closeAll()
            throw error
        }
        // glibc's realloc(NULL, n) is malloc(n) called from inside realloc: see whether this
        // allocator does that, so that such a call counts once.
        let probe = measure {
            let p = realloc(nil, 40)
            free(p)
        }
        reallocCallsMalloc = probe.calls["malloc", default: 0] > 0
    }

    deinit { closeAll() }

    private func closeAll() {
        ring = nil
        // ~80 ms per uprobe event in the kernel, one at a time: left to another process, so that
        // the test goes on (Uprobes.closeDetached).
        Uprobes.closeDetached(descriptors)
        descriptors = []
        leader = -1
    }

    /// Counts the calling thread's allocations while `body` runs.
    ///
    /// Nothing between enabling and disabling the probes allocates but `body`, so an empty
    /// closure reads zero.
    public func measure(_ body: () throws -> Void) rethrows -> Reading {
        _ = ring?.drain { _ in }
        guard leader >= 0 else { try body(); return Reading(objects: 0, bytes: 0) }
        _ = csprof_ioctl_reset(leader, 1)
        _ = csprof_ioctl_enable(leader, 1)
        do {
            try body()
        } catch {
            disable()
            throw error
        }
        disable()
        return collect()
    }

    private func disable() {
        if leader >= 0 { _ = csprof_ioctl_disable(leader, 1) }
    }

    /// Reads the counts and the records of the last span.
    private func collect() -> Reading {
        var calls: [String: Int] = [:]
        var counted = 0
        for (i, fd) in descriptors.enumerated() {
            var value: UInt64 = 0
            let n = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
            let c = n == 8 ? Int(value) : 0
            if c > 0 { calls[names[i], default: 0] += c }
            counted += c
        }
        var objects = 0, bytes: UInt64 = 0, records = 0, lost = false
        // The previous record was realloc(NULL, n): a malloc(n) right after it is realloc's own.
        var pendingRealloc: UInt64?
        _ = ring?.drain { raw in
            guard let record = try? parser.parse(raw) else { return }
            switch record {
            case .lost, .lostSamples:
                lost = true
            case .sample(let s):
                guard let index = roleByID[s.eventID], s.userRegisters.count == 3 else { return }
                records += 1
                let dx = s.userRegisters[0], si = s.userRegisters[1], di = s.userRegisters[2]
                if index == mallocIndex, let n = pendingRealloc, n == di, reallocCallsMalloc {
                    pendingRealloc = nil
                    return
                }
                pendingRealloc = nil
                let size: UInt64
                switch arguments[index] {
                case .first: size = di
                case .second: size = si
                case .third: size = dx
                case .product: size = di.multipliedReportingOverflow(by: si).overflow ? UInt64.max : di &* si
                case .realloc:
                    if di != 0 && si == 0 { return }  // a free
                    if di == 0 { pendingRealloc = si }
                    size = si
                }
                objects += 1
                bytes &+= size
            default:
                break
            }
        }
        if lost || records < counted {
            // Lost records: the counts are exact, the sizes partial.
            return Reading(objects: counted, bytes: bytes, complete: false, calls: calls)
        }
        return Reading(objects: objects, bytes: bytes, complete: true, calls: calls)
    }
}
