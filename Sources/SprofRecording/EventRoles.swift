#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore

/// What the samples of one opened event stand for. Every event a ``RecordingSession`` opens has
/// exactly one role, declared in one table (``SamplingOptions/roleEvents``): the session opens
/// the table's rows and tells each sample's role by its event id (``RecordingSession/role(of:)``);
/// the profile builder turns each role's samples into values of the role's sample types (the
/// `Sprof` target's `EventInterpretation.swift`). A new kind of event is a new case here, a row
/// in ``SamplingOptions/roleEvents`` and its interpretation there; nothing else branches on it.
/// samply's `EventInterpretation` is the same idea.
public enum EventRole: Sendable, Hashable {
    /// The sampled event (`-e`, cpu-clock by default): a sample is the stack that was on a CPU,
    /// worth one sample and its period (CPU nanoseconds for the clock events).
    case onCPU
    /// `context-switches` with period 1 (`--off-cpu`): a sample is the stack of a thread leaving
    /// the CPU, and the SWITCH records of the on-CPU event time how long it was away. Taken in
    /// kernel context, so it needs kernel samples.
    case offCPU
    /// A heap probe of ``SamplingOptions/companions`` (`--heap`): a uprobe on an allocation, a
    /// free, or an allocator's entry or return, which its ``HeapRole`` says; the heap profile
    /// reads pointer and size from the sampled registers.
    case heapProbe(HeapRole)

    /// Whether this is a heap probe (a uprobe of ``SamplingOptions/companions``): its losses are
    /// told apart, and its event is released by another process (``Uprobes/closeDetached(_:)``).
    public var isHeapProbe: Bool {
        if case .heapProbe = self { return true }
        return false
    }

    /// Whether this role's events are also opened in a system-wide recording (`-a`): heap probes
    /// are per process (their library is preloaded into the command), the others are not.
    public var opensSystemWide: Bool {
        if case .heapProbe = self { return false }
        return true
    }

    /// Whether this role's samples are read through the probed thread's user registers (the heap
    /// probes take pointer and size from DI, SI, DX, AX and SP): the buffer's layout then has
    /// them in every stack mode (``SampleLayout/sampling(_:)-swift.type.method``), not only with
    /// DWARF, so `-g` stays frame-pointer stacks for every event.
    public var readsUserRegisters: Bool {
        if case .heapProbe = self { return true }
        return false
    }

    /// Whether this role's events are inherited by the tasks that the followed ones create.
    /// Not the heap probes': the kernel makes a child's copy of a uprobe event by reading the
    /// probed file's path again from `config1` (perf_uprobe_init, through inherit_event and
    /// perf_event_alloc), a pointer into sprof's memory read in the forking task, so every fork
    /// and clone of the followed tasks failed with EFAULT. In a command's recording they are
    /// opened per CPU for every process instead (``opensForEveryProcess``); attached to another
    /// process, per thread; in sprof's own process (the in-process profiler), where the path is
    /// valid, inherited but removed at exec (`remove_on_exec`).
    public var inherits: Bool {
        if case .heapProbe = self { return false }
        return true
    }

    /// Whether a command's recording opens this role's events per CPU for every process (pid -1,
    /// enabled at once) rather than for the command: the roles that cannot be inherited, which
    /// would miss the command's children otherwise. Only processes that preload sprof's heap
    /// library reach its probes, and the heap profile keeps the samples of the command's process
    /// tree (the pids of the sampled event's FORK records).
    public var opensForEveryProcess: Bool { !inherits }

    /// Refuses a role the sampled event or this kernel cannot serve, before anything is opened:
    /// off-CPU stacks are kernel samples (taken at each switch-out), and the wall view adds the
    /// on-CPU event's period to off-CPU nanoseconds, so the sampled event must count nanoseconds.
    /// Throws `EINVAL` (wrong event) or `EACCES` (kernel samples forbidden), each with a hint.
    public func check(sampled event: EventSpec, settings: KernelSettings) throws(SyscallError) {
        guard case .offCPU = self else { return }
        guard event.isClock else {
            throw SyscallError(call: "perf_event_open", errno: EINVAL,
                               hint: "--off-cpu needs a clock event (-e cpu-clock or task-clock), not \(event): wall time adds its nanoseconds to off-CPU time")
        }
        guard settings.kernelAllowed else {
            throw SyscallError(call: "perf_event_open", errno: EACCES, hint: settings.offCPUHint)
        }
    }
}

/// What a heap probe's samples mean (``EventRole/heapProbe(_:)``), carried by its row of the
/// role table so that the heap profile reads each event's samples by its id alone.
public enum HeapRole: Sendable, Hashable {
    /// The preload library's `sprof_heap_sampled(ptr, size)`: a sampled allocation (DI, SI).
    case sampled
    /// A free of `ptr` (DI): `sprof_heap_freed`, or the allocator's `free` when attached.
    case freed
    /// The entry of an allocator function when attached; the size is in `size`, and realloc's
    /// old pointer (DI) is freed.
    case entry(HeapSizeArgument)
    /// The return of an allocator function when attached: the pointer in AX.
    case returned
}

/// Where an allocator function takes its size (x86-64 SysV: DI, SI are the first two arguments).
public enum HeapSizeArgument: Sendable, Hashable {
    /// malloc(size), valloc(size), pvalloc(size).
    case first
    /// calloc(n, size).
    case product
    /// memalign(alignment, size), aligned_alloc(alignment, size).
    case second
    /// realloc(ptr, size): also a free of ptr.
    case realloc
}

/// A heap probe opened beside the sampled event (``SamplingOptions/companions``): the event and
/// what its samples mean.
public struct CompanionEvent: Sendable {
    /// The event opened (a uprobe).
    public var event: EventSpec
    /// What its samples mean.
    public var role: HeapRole

    /// A companion event.
    public init(event: EventSpec, role: HeapRole) {
        self.event = event
        self.role = role
    }
}

/// One row of the role table: an event a session opens and what its samples stand for.
public struct RoleEvent: Sendable {
    /// What its samples stand for.
    public var role: EventRole
    /// The event opened.
    public var event: EventSpec
    /// Bytes of user stack each of its samples copies (`sample_stack_user`); 0 without a DWARF
    /// stack mode. Each role has its own: heap probes fire as fast as the program allocates and
    /// need small records (``SamplingOptions/companionStackSize``), CPU samples need deep copies.
    public var stackSize: UInt32 = 0
}

extension SamplingOptions {
    /// The role table: every event a session with these options opens on each CPU (and thread),
    /// in opening order. Row 0 is the sampled event, which owns the ring buffer and delivers the
    /// side-band records (MMAP, COMM, FORK/EXIT, SWITCH); the other rows write into its buffer.
    public var roleEvents: [RoleEvent] {
        var copy: UInt32 = 0
        var dwarf = false
        if case .dwarf(let size) = callGraph { (copy, dwarf) = (size, true) }
        // Without DWARF stacks, a probe that walks frame pointers from a function's entry still
        // needs the word at SP (below): one layout per buffer, so every row copies those 8 bytes.
        if !dwarf && companions.contains(where: { $0.event.walksUserFramePointers }) { copy = 8 }
        var rows = [RoleEvent(role: .onCPU, event: event, stackSize: copy)]
        if offCPU { rows.append(RoleEvent(role: .offCPU, event: .contextSwitches, stackSize: copy)) }
        for probe in companions {
            // The record layout stays the buffer's (one parser for every event in it), so a probe
            // that copies no stack keeps the field at its smallest, 8 bytes: 0 is not used because
            // the kernel then still writes the dyn_size word it did not count in the record's size.
            // Those 8 bytes are the word at the stack pointer: at a function's entry, its return
            // address, which a frame-pointer walk from there misses (the callee has not pushed a frame).
            let size = copy == 0 ? 0 : probe.event.copiesUserStack && dwarf ? companionStackSize ?? copy : 8
            rows.append(RoleEvent(role: .heapProbe(probe.role), event: probe.event, stackSize: size))
        }
        return rows
    }

    /// Whether any row has `role`.
    public func records(_ role: EventRole) -> Bool {
        roleEvents.contains { $0.role == role }
    }

    /// Checks every role against the sampled event and the kernel (``EventRole/check(sampled:settings:)``).
    public func checkRoles(settings: KernelSettings) throws(SyscallError) {
        for row in roleEvents { try row.role.check(sampled: event, settings: settings) }
    }
}

extension AttrBuilder {
    /// The attr of a row of the role table other than the sampled event: every occurrence
    /// sampled (period 1), the sampled event's layout and stack mode, and no side-band records,
    /// which the sampled event already delivers into the same buffer.
    static func attr(for row: RoleEvent, _ options: SamplingOptions, enableOnExec: Bool, inherit: Bool) -> perf_event_attr {
        switch row.role {
        case .onCPU: return sampling(options, enableOnExec: enableOnExec, inherit: inherit)
        case .offCPU: return contextSwitches(options, enableOnExec: enableOnExec, inherit: inherit)
        case .heapProbe: return companion(options, row: row, enableOnExec: enableOnExec, inherit: inherit)
        }
    }
}
