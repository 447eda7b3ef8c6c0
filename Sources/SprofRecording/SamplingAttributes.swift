#if canImport(Glibc)
import Glibc
#endif
internal import CSprof

/// How samples are taken: how often and with what stack.
public struct SamplingOptions: Sendable {
    /// A sampling rate in Hz (the kernel adjusts the period) or a fixed event period.
    public enum Rate: Sendable, Equatable {
        /// Samples per second, per thread (`-F`).
        case frequency(Int)
        /// One sample every N events (`-c`).
        case period(UInt64)
    }

    /// How stacks are captured.
    public enum CallGraph: Sendable, Equatable {
        /// Only the sampled instruction pointer.
        case none
        /// Kernel-walked frame-pointer callchains (cheap; breaks through code without frame pointers).
        case framePointer
        /// Kernel callchain for kernel frames plus a copy of the user stack and registers, unwound
        /// later with DWARF CFI. `stackSize` is a multiple of 8, at most 65528.
        case dwarf(stackSize: UInt32)
    }

    /// The event to sample.
    public var event: EventSpec = .cpuClock
    /// The rate.
    public var rate: Rate = .frequency(999)
    /// The stack mode.
    public var callGraph: CallGraph = .framePointer
    /// Leave kernel samples and frames out (forced on when paranoid forbids them).
    public var excludeKernel = false
    /// Data pages per CPU ring buffer (a power of two).
    public var ringPages = 128
    /// Also record where threads block (`--off-cpu`): a second event, `context-switches` with
    /// period 1 and the same stack mode, whose samples are taken at each switch-out, plus
    /// PERF_RECORD_SWITCH records (`context_switch`) that time each off-CPU interval. Both write
    /// into the on-CPU event's buffers; samples carry PERF_SAMPLE_IDENTIFIER to tell them apart.
    /// The switch-out sample is taken in kernel context, so it needs kernel profiling (root,
    /// CAP_PERFMON or `perf_event_paranoid` <= 1).
    public var offCPU = false
    /// Events opened beside the sampled one on the same CPUs and tasks, each sampled at every
    /// occurrence (period 1) with the same stack mode, writing into the sampled event's buffers
    /// (heap profiles: uprobes on the allocation probe points). Their samples carry
    /// PERF_SAMPLE_IDENTIFIER; ``RecordingSession/heapRoles`` tells them apart.
    public var companions: [CompanionEvent] = []
    /// Bytes of user stack each companion copies in DWARF mode (a multiple of 8); nil: the stack
    /// mode's size, as the sampled event. Heap probes fire in bursts as fast as the program
    /// allocates, so `sprof run --heap` gives them 8 KiB while CPU samples keep their 32 KiB
    /// (``RoleEvent/stackSize``). Probes that copy no stack (``EventSpec/copiesUserStack``) keep 8.
    public var companionStackSize: UInt32?

    /// Creates options.
    public init(event: EventSpec = .cpuClock, rate: Rate = .frequency(999), callGraph: CallGraph = .framePointer) {
        self.event = event
        self.rate = rate
        self.callGraph = callGraph
    }

    /// The largest user-stack copy the kernel accepts: the record size is a u16.
    public static let maxDwarfStackSize: UInt32 = 65528

    /// Bytes of user stack copied per DWARF-mode sample unless `dwarf,SIZE` says otherwise.
    ///
    /// Measured on Debian programs (sample stacks that reach `_start`/`clone3`): with perf's 8192,
    /// sqlite3 running SQL had 99.9% of its stacks cut short and `bzip2 -9` 48-68%; with 16384
    /// sqlite3 had 0.15%; with 32768 both had none. A parallel gcc build: 7% cut at 8192, 2.6% at
    /// 32768, 0.8% at 65528 (cc1's recursive range queries really are that deep). sprof unwinds
    /// each copy and drops it, so unlike perf it writes nothing per byte: the cost is the kernel's
    /// copy and ring-buffer space, which ``defaultRingPages(for:rate:settings:cpus:lockableBytes:)`` sizes for.
    public static let defaultDwarfStackSize: UInt32 = 32768

    /// DWARF-mode samples a ring buffer should hold, per CPU, at the least: at 999 Hz about 64 ms
    /// of one CPU's samples, so a reader that is kept off the CPU for a while loses nothing.
    static let dwarfSamplesPerBuffer = 64

    /// At a higher rate, the buffer holds this long of one CPU's samples instead (a CPU takes at
    /// most `-F` samples a second of a clock event): at 16 kHz with 32 KiB copies, the 1024 pages
    /// sized for 64 copies (126 fit) lasted 8 ms, and a reader kept off the CPU longer than that
    /// on a loaded machine lost samples (40 of 42,418 in issue 20; 1,448-11,277 in debug builds).
    static let dwarfBufferMilliseconds = 50

    /// When privileged, the buffer holds this many milliseconds of one CPU's samples at least (at
    /// 999 Hz with 32 KiB copies, 8 MiB for 252): on a CI machine a reader kept off the CPU longer
    /// than the 126 copies of 4 MiB lost 37% of a 2-process command's samples. Unprivileged users
    /// are held to `perf_event_mlock_kb` anyway.
    static let privilegedBufferMilliseconds = 192

    /// The most memory the default DWARF buffers lock in all, when privileged (no kernel limit
    /// applies): 256 MiB, spread over the CPUs, and at most 64 MiB per CPU.
    static let privilegedRingBytes = 256 << 20

    /// Ring-buffer data pages per CPU (a power of two) for a stack mode and rate.
    ///
    /// Frame-pointer and no-stack samples are small: 128 pages (512 KiB). DWARF samples carry the
    /// stack copy, so the buffer holds ``dwarfSamplesPerBuffer`` of them, or
    /// ``dwarfBufferMilliseconds`` (``privilegedBufferMilliseconds`` when privileged) of them at
    /// `rate` when that is more (at least 512 pages), within
    /// what may be locked: when privileged (root, CAP_PERFMON, CAP_SYS_ADMIN),
    /// ``privilegedRingBytes`` over the `cpus` buffers (at least 2048 pages each); otherwise
    /// `kernel.perf_event_mlock_kb` per CPU plus, with a margin for other perf users of the same
    /// account, half of `RLIMIT_MEMLOCK` (`lockableBytes`, read with getrlimit when nil) spread
    /// over the `cpus` buffers. A `.period` rate says nothing of the rate: 64 copies, or when
    /// privileged as many as at 999 Hz.
    public static func defaultRingPages(for callGraph: CallGraph, rate: Rate? = nil, settings: KernelSettings = .current(),
                                        cpus: Int? = nil,
                                        lockableBytes: UInt64? = nil) -> Int {
        let page = 4096
        let buffers = max(cpus ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
        var wanted = 128
        if case .dwarf(let size) = callGraph {
            let milliseconds = settings.privileged ? privilegedBufferMilliseconds : dwarfBufferMilliseconds
            var samples = dwarfSamplesPerBuffer
            if case .frequency(let hz)? = rate {
                samples = max(samples, min(hz, settings.maxSampleRate) * milliseconds / 1000)
            } else if settings.privileged {
                samples = max(samples, 999 * milliseconds / 1000)  // the rate is unknown: as at the default -F
            }
            let bytes = (Int(size) + 512) * samples  // registers and header beside the copy
            var most = 2048
            while most < 16384 && most * 2 * page * buffers <= privilegedRingBytes { most *= 2 }
            wanted = 512
            while wanted * page < bytes && wanted < most { wanted *= 2 }
        }
        if settings.privileged { return wanted }
        // The kernel's rule (perf_mmap): a user may lock mlock_kb per online CPU in all, and beyond
        // that what RLIMIT_MEMLOCK allows; each buffer also maps its control page.
        let memlock = lockableBytes ?? Self.memlockLimit()
        let shared = Int(min(memlock / 2, UInt64(Int32.max))) / buffers
        let perCPU = settings.mlockKB * 1024 + shared
        let limit = max(1, perCPU / page - 1)
        var allowed = 1
        while allowed * 2 <= limit { allowed *= 2 }
        return min(wanted, allowed)
    }

    private static func memlockLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(8) /* RLIMIT_MEMLOCK */, &limit) == 0 else { return 0 }
        return limit.rlim_cur == rlim_t.max ? UInt64(1) << 40 : UInt64(limit.rlim_cur)
    }
}

/// The perf register numbers (x86-64, `asm/perf_regs.h`) sampled for DWARF unwinding, in the order
/// the kernel writes them (ascending bit order): AX BX CX DX SI DI BP SP IP, then R8–R15.
/// Segment and flag registers are not needed by CFI.
public enum UserRegisters {
    /// Register numbers in record order.
    public static let sampled: [Int] = [0, 1, 2, 3, 4, 5, 6, 7, 8] + Array(16...23)
    /// `sample_regs_user`.
    public static var mask: UInt64 { sampled.reduce(0) { $0 | (1 << UInt64($1)) } }
    /// Index into the sampled array of the stack pointer (perf reg 7).
    public static let spIndex = 7
    /// Index of the instruction pointer (perf reg 8).
    public static let ipIndex = 8
    /// Index of the frame pointer (perf reg 6).
    public static let bpIndex = 6
}

/// The sample layout implied by an attr, needed to parse records (pure data, no kernel state).
public struct SampleLayout: Sendable, Equatable {
    /// `perf_event_attr.sample_type`.
    public var sampleType: UInt64
    /// `perf_event_attr.sample_regs_user`.
    public var regsUserMask: UInt64
    /// Whether non-sample records carry the sample_id trailer.
    public var sampleIDAll: Bool

    /// Creates a layout.
    public init(sampleType: UInt64, regsUserMask: UInt64 = 0, sampleIDAll: Bool = true) {
        self.sampleType = sampleType
        self.regsUserMask = regsUserMask
        self.sampleIDAll = sampleIDAll
    }

    /// The layout sprof uses for `options`: ``sampling(_:)-swift.type.method`` of its stack mode, with
    /// PERF_SAMPLE_IDENTIFIER added when two events share a buffer (more than one row in
    /// ``SamplingOptions/roleEvents``), and with the user registers in every stack mode when a
    /// row's role reads them (``EventRole/readsUserRegisters``: one layout for every event of a
    /// buffer, so the on-CPU samples carry them too, 144 bytes each).
    public static func sampling(_ options: SamplingOptions) -> SampleLayout {
        var layout = sampling(options.callGraph)
        let rows = options.roleEvents
        if rows.count > 1 { layout.sampleType |= SampleBits.identifier }
        if layout.regsUserMask == 0 && rows.contains(where: { $0.role.readsUserRegisters }) {
            layout.sampleType |= SampleBits.regsUser
            layout.regsUserMask = UserRegisters.mask
        }
        // A probe at a function's entry needs the word at SP (its return address) in every stack
        // mode (``RoleEvent/stackSize``: 8 bytes per row without DWARF stacks).
        if rows.contains(where: { $0.stackSize > 0 }) { layout.sampleType |= SampleBits.stackUser }
        return layout
    }

    /// The layout sprof uses for a call-graph mode.
    public static func sampling(_ callGraph: SamplingOptions.CallGraph) -> SampleLayout {
        var type = SampleBits.ip | SampleBits.tid | SampleBits.time | SampleBits.cpu | SampleBits.period
        var mask: UInt64 = 0
        switch callGraph {
        case .none: break
        case .framePointer: type |= SampleBits.callchain
        case .dwarf:
            type |= SampleBits.callchain | SampleBits.regsUser | SampleBits.stackUser
            mask = UserRegisters.mask
        }
        return SampleLayout(sampleType: type, regsUserMask: mask)
    }
}

/// PERF_SAMPLE_* bits, spelled out so that the pure parser and its tests need no C import.
public enum SampleBits {
    public static let ip: UInt64 = 1 << 0
    public static let tid: UInt64 = 1 << 1
    public static let time: UInt64 = 1 << 2
    public static let addr: UInt64 = 1 << 3
    public static let read: UInt64 = 1 << 4
    public static let callchain: UInt64 = 1 << 5
    public static let id: UInt64 = 1 << 6
    public static let cpu: UInt64 = 1 << 7
    public static let period: UInt64 = 1 << 8
    public static let streamID: UInt64 = 1 << 9
    public static let raw: UInt64 = 1 << 10
    public static let branchStack: UInt64 = 1 << 11
    public static let regsUser: UInt64 = 1 << 12
    public static let stackUser: UInt64 = 1 << 13
    public static let identifier: UInt64 = 1 << 16
}

enum AttrBuilder {
    /// The attr for sampling `options` in a command started with enable_on_exec.
    /// `sideBand`: also ask for MMAP, COMM, FORK/EXIT (and, with `offCPU`, SWITCH) records; off for
    /// a second event writing into the same buffer, which would duplicate them.
    static func sampling(_ options: SamplingOptions, enableOnExec: Bool, inherit: Bool, sideBand: Bool = true) -> perf_event_attr {
        var attr = base(options.event)
        let layout = SampleLayout.sampling(options)
        attr.sample_type = layout.sampleType
        if options.records(.offCPU) && sideBand { attr.context_switch = 1 }
        switch options.rate {
        case .frequency(let hz):
            attr.freq = 1
            attr.sample_period = UInt64(max(hz, 1)) // union with sample_freq
        case .period(let n):
            attr.freq = 0
            attr.sample_period = max(n, 1)
        }
        attr.sample_regs_user = layout.regsUserMask
        if case .dwarf(let size) = options.callGraph {
            attr.sample_stack_user = size
            // The kernel part of the chain still comes from the kernel; the user part from the copy.
            attr.exclude_callchain_user = 1
        } else if layout.sampleType & SampleBits.stackUser != 0 {
            attr.sample_stack_user = options.roleEvents[0].stackSize  // the word at SP (see roleEvents)
        }
        attr.disabled = 1
        attr.enable_on_exec = enableOnExec ? 1 : 0
        attr.inherit = inherit ? 1 : 0
        if sideBand {
            attr.mmap = 1
            attr.mmap2 = 1
            attr.comm = 1
            attr.comm_exec = 1
            attr.task = 1
            attr.build_id = 1
        }
        attr.sample_id_all = 1
        // read() then also gives the event's count of records the kernel could not write (Linux
        // 6.0+, perf_event.h). LOST records alone under-count: the kernel writes one only ahead of
        // the next record that fits, so a buffer's last losses are never reported that way.
        // Kernels before 6.0 reject the bit with EINVAL; RecordingSession.open retries without it.
        attr.read_format = UInt64(PERF_FORMAT_LOST.rawValue)
        attr.use_clockid = 1
        attr.clockid = CLOCK_MONOTONIC
        if options.excludeKernel || options.event.excludeKernel {
            attr.exclude_kernel = 1
            attr.exclude_hv = 1
            attr.exclude_callchain_kernel = 1
        }
        if options.event.excludeUser { attr.exclude_user = 1 }
        if options.event.excludeHypervisor { attr.exclude_hv = 1 }
        return attr
    }

    /// The `context-switches` event of `--off-cpu`: the same stack mode and layout as the on-CPU
    /// event, one sample per switch-out (period 1), and no side-band records (the on-CPU event
    /// already delivers MMAP, COMM, FORK and SWITCH records into the same buffer).
    static func contextSwitches(_ options: SamplingOptions, enableOnExec: Bool, inherit: Bool) -> perf_event_attr {
        var cs = options
        cs.event = EventSpec.contextSwitches
        cs.rate = .period(1)
        return sampling(cs, enableOnExec: enableOnExec, inherit: inherit, sideBand: false)
    }

    /// A companion event (``SamplingOptions/companions``): every occurrence sampled, the on-CPU
    /// event's layout and stack mode with the row's own stack copy (``RoleEvent/stackSize``), no
    /// side-band records (the sampled event delivers them into the same buffer).
    static func companion(_ options: SamplingOptions, row: RoleEvent, enableOnExec: Bool, inherit: Bool) -> perf_event_attr {
        var c = options
        c.event = row.event
        c.rate = .period(1)
        c.offCPU = false
        var attr = sampling(c, enableOnExec: enableOnExec, inherit: inherit, sideBand: false)
        // The probed task's own registers and stack: a uprobe's kernel part is the trap handler.
        attr.exclude_callchain_kernel = 1
        if attr.sample_stack_user > 0 { attr.sample_stack_user = row.stackSize }
        if row.event.walksUserFramePointers && attr.sample_type & SampleBits.callchain != 0 { attr.exclude_callchain_user = 0 }
        return attr
    }

    /// The common part: type, config, size.
    static func base(_ event: EventSpec) -> perf_event_attr {
        var attr = perf_event_attr()
        attr.size = UInt32(MemoryLayout<perf_event_attr>.size)
        attr.type = event.type
        attr.config = event.config
        attr.config1 = event.config1 // union with bp_addr
        attr.config2 = event.config2 // union with bp_len
        attr.exclude_kernel = event.excludeKernel ? 1 : 0
        attr.exclude_user = event.excludeUser ? 1 : 0
        attr.exclude_hv = event.excludeHypervisor ? 1 : 0
        return attr
    }
}
