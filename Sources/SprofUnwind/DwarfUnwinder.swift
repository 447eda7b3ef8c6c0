#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore
import SprofRecording

/// Unwinds the user part of DWARF-mode samples (registers + a copy of the top of the stack) with
/// libdw's CFI unwinder (`.eh_frame` / `.debug_frame`).
///
/// One `Dwfl` per process is kept across samples: modules are reported once (and new mappings
/// added incrementally), the CFI libdw parses stays cached, and each sample only swaps the
/// registers and stack bytes the memory callbacks serve. A `Dwfl` per sample would re-open and
/// re-parse every ELF file for every sample.
///
/// Not thread-safe: one pipeline thread.
public final class DwarfUnwinder {
    /// Counters for diagnostics and benchmarks.
    public struct Statistics: Sendable, Equatable {
        /// Samples unwound.
        public var samples = 0
        /// User frames produced.
        public var frames = 0
        /// Stacks marked truncated.
        public var truncated = 0
        /// Truncated because a read fell outside the copied stack.
        public var stackExhausted = 0
        /// Stopped by the depth cap.
        public var depthCapped = 0
        /// Stopped before a frame whose stack pointer was not above the previous frame's within
        /// the copied stack (it would have been read from memory no live frame owns).
        public var leftStack = 0
        /// Stopped by another libdw error after some frames (no CFI for a pc, bad CFA, ...).
        public var otherErrors = 0
        /// Stacks whose walk used the thread's live stack beyond the kernel's copy.
        public var readPastCopy = 0
        /// Samples of 32-bit (i386) tasks: their stacks are the sampled pc alone, marked truncated.
        public var abi32 = 0
        /// `Dwfl` sessions created (one per process, again after exec).
        public var sessions = 0
        /// Modules reported to libdwfl.
        public var modules = 0
        /// Memory reads served from mapped files rather than the copied stack.
        public var fileReads = 0
        /// Time spent in `unwindUser`, in nanoseconds.
        public var nanoseconds: UInt64 = 0
        /// Creates zeroed counters.
        public init() {}
    }

    /// Frames per stack at most, beyond what the copy allows. A walk cannot loop (each frame's
    /// stack pointer must lie above the last one's, within the copy), so the copy itself bounds
    /// it: one frame per 8 bytes, a return address each. The default follows the copy to its end.
    public var maxFrames = Int.max
    /// Whether a walk that runs out of the copied stack continues into the bytes of the thread's
    /// stack beyond it that the recording read from the live process as it took the sample
    /// (``SampleRecord/liveStack``: only when the kernel's copy ended before the stack and the live bytes at its
    /// end were still the copied ones, so the frames further out are unchanged callers).
    ///
    /// The kernel copies at most 65528 bytes per sample; threads with big frames (GNU sort's
    /// workers) need more. On unless the environment says `SPROF_LIVE_STACK=0` (for measuring
    /// what it adds: bench/deep-stacks).
    public var readsLiveStack = getenv("SPROF_LIVE_STACK").map { String(cString: $0) != "0" } ?? true
    /// Counters since creation.
    public var statistics: Statistics {
        var s = stats
        s.fileReads = context.fileReads
        return s
    }

    private var stats = Statistics()
    let context = UnwindContext()
    private let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>
    private let threadCallbacks: UnsafeMutablePointer<Dwfl_Thread_Callbacks>
    private var sessions: [Int32: Session] = [:]
    private var layouts: [String: ElfLayout?] = [:]
    private var vdsoPath: String??
    private var vdsoFD: Int32 = -1
    /// An x86-64 ELF that outlives every Dwfl (the vdso image in our own memory, else nil).
    private let architectureElf: OpaquePointer?

    /// Creates an unwinder with no process state.
    public init() {
        _ = elf_version(UInt32(EV_CURRENT))
        callbacks = .allocate(capacity: 1)
        // No separate debug info for unwinding: libdwfl tries a module's .debug_frame before its
        // .eh_frame, and looking for .debug_frame loads the separate debug file (Debian's libc6-dbg
        // is ~11 MB of zlib-compressed DWARF, inflated at once) for every new process, which was
        // most of the unwinding cost of a fork+exec-heavy program. .eh_frame is in every x86-64
        // binary; .debug_frame in the file itself is still used.
        callbacks.initialize(to: Dwfl_Callbacks(
            find_elf: dwfl_build_id_find_elf,
            find_debuginfo: { _, _, _, _, _, _, _, _ in -1 },
            section_address: dwfl_offline_section_address,
            debuginfo_path: nil))
        if let image = Vdso.image() {
            architectureElf = elf_memory(UnsafeMutableRawPointer(mutating: image.baseAddress!).assumingMemoryBound(to: CChar.self), image.count)
        } else {
            architectureElf = nil
        }
        threadCallbacks = .allocate(capacity: 1)
        threadCallbacks.initialize(to: Dwfl_Thread_Callbacks(
            next_thread: dwarfNextThread,
            get_thread: dwarfGetThread,
            memory_read: dwarfMemoryRead,
            set_initial_registers: dwarfSetInitialRegisters,
            detach: nil,
            thread_detach: nil))
    }

    deinit {
        if debugErrors {
            let s = statistics
            let us = s.samples > 0 ? Double(s.nanoseconds) / Double(s.samples) / 1000 : 0
            debugLog("sprof dwarf: \(s.samples) samples, \(s.frames) frames, \(us) us/sample, truncated \(s.truncated) (stack \(s.stackExhausted), cap \(s.depthCapped), errors \(s.otherErrors)), sessions \(s.sessions), modules \(s.modules), file reads \(s.fileReads)")
        }
        for (_, s) in sessions { dwfl_end(s.dwfl) }
        sessions = [:]
        callbacks.deallocate()
        threadCallbacks.deallocate()
        if let architectureElf { elf_end(architectureElf) }
        if vdsoFD >= 0 { close(vdsoFD) }
    }

    /// Drops the cached state of `pid` (on exec or exit).
    public func forgetProcess(_ pid: Int32) {
        if let s = sessions.removeValue(forKey: pid) { dwfl_end(s.dwfl) }
    }

    /// Number of processes with a cached `Dwfl`.
    public var cachedProcessCount: Int { sessions.count }

    /// The user frames of `sample`, leaf first: the sampled user pc, then return addresses.
    /// `truncated` is set when the walk stopped before the outermost frame (the copied stack ran
    /// out, the depth cap, or an unwinding error after the first frame).
    public func unwindUser(_ sample: SampleRecord, process: ProcessState) -> UnwoundStack {
        let regs = sample.userRegisters
        guard regs.count >= UserRegisters.sampled.count else {
            if sample.cpuMode == .user {
                return UnwoundStack(frames: [StackFrame(address: ProcessAddress(sample.ip), isReturnAddress: false, isKernel: false)],
                                    truncated: false)
            }
            return UnwoundStack(frames: [], truncated: false)
        }
        stats.samples += 1
        let started = Self.now()
        defer { stats.nanoseconds &+= Self.now() &- started }
        let pc = regs[UserRegisters.ipIndex]
        let leafOnly = UnwoundStack(frames: [StackFrame(address: ProcessAddress(pc), isReturnAddress: false, isKernel: false)],
                                    truncated: true)
        // An i386 task (PERF_SAMPLE_REGS_ABI_32): the unwinder drives libdw with x86-64
        // registers and 8-byte stack words, which would read i386 frames wrongly.
        if sample.userRegistersABI == 1 {
            stats.abi32 += 1
            stats.truncated += 1
            stats.frames += 1
            return leafOnly
        }
        guard let session = session(for: process), session.attached else {
            stats.truncated += 1
            stats.otherErrors += 1
            stats.frames += 1
            return leafOnly
        }

        let ctx = context
        DwarfRegisters.fill(ctx.dwarfRegisters, fromPerf: regs)
        ctx.pc = pc
        ctx.sp = regs[UserRegisters.spIndex]
        ctx.frames.removeAll(keepingCapacity: true)
        ctx.maxFrames = max(1, min(maxFrames, (sample.userStack.count + (readsLiveStack ? sample.liveStack.count : 0)) / 8 + 2))
        ctx.hitCap = false
        ctx.stackExhausted = false
        ctx.threadHandedOut = false
        ctx.leftStack = false
        ctx.switchedStack = false
        ctx.stackSwitches = session.stackSwitches
        if !session.writesJitMap && session.samplesSinceJitLookup >= 4096 {
            session.writesJitMap = access("/tmp/perf-\(process.pid).map", F_OK) == 0
            session.samplesSinceJitLookup = 0
        }
        session.samplesSinceJitLookup &+= 1
        // Empty: every return address is taken (see UnwindContext.isExecutable).
        ctx.mappings = session.writesJitMap ? [] : process.mappings
        ctx.popped = nil
        ctx.pid = process.pid
        ctx.beyond = readsLiveStack ? sample.liveStack : []
        ctx.usedBeyond = false
        let rc: Int32 = sample.userStack.withUnsafeBytes { bytes in
            ctx.stack = bytes
            defer { ctx.stack = UnsafeRawBufferPointer(start: nil, count: 0) }
            return dwfl_getthread_frames(session.dwfl, process.pid, dwarfFrameCallback, Unmanaged.passUnretained(ctx).toOpaque())
        }

        if ctx.usedBeyond { stats.readPastCopy += 1 }
        var result = UnwoundStack(frames: ctx.frames, truncated: false)
        if result.frames.isEmpty {
            // set_initial_registers or the first frame failed: keep the sampled pc.
            result = leafOnly
        }
        // A stack is complete when it ends where a thread's stack begins, whatever libdw's return
        // code: libdw ends a walk with rc 0 when a rule's memory read fails (a register becomes
        // undefined) or a return address is 0, and with an error at an entry point without CFI
        // (node's `_start`), so rc alone both hid cut stacks and marked whole ones.
        if ctx.hitCap {
            stats.depthCapped += 1
            result.truncated = true
        } else if let last = result.frames.last, isRoot(last, session) {
            // complete
        } else if ctx.leftStack || ctx.switchedStack {
            stats.leftStack += 1
            result.truncated = true
            if debugErrors {
                debugLog("sprof dwarf: pid \(process.pid): stopped after \(result.frames.count) frames: the next frame's stack pointer is not above the last one within the copied stack")
            }
        } else if ctx.stackExhausted {
            stats.stackExhausted += 1
            result.truncated = true
            if debugErrors {
                debugLog("sprof dwarf: pid \(process.pid): the stack copy (\(sample.userStack.count) bytes) ran out after \(result.frames.count) frames")
            }
        } else {
            stats.otherErrors += 1
            result.truncated = true
            if let last = result.frames.last { noteUnreadableUnwindInfo(at: last, session) }
            if debugErrors {
                let msg = rc != 0 ? dwfl_errmsg(-1).map { String(cString: $0) } ?? "?" : "ended outside any known root"
                let last = result.frames.last.map { $0.address.description } ?? "-"
                debugLog("sprof dwarf: pid \(process.pid): \(msg) after \(result.frames.count) frames (last \(last))")
            }
        }
        if result.truncated { stats.truncated += 1 }
        stats.frames += result.frames.count
        return result
    }

    private let debugErrors = getenv("SPROF_DEBUG_DWARF") != nil

    /// Files whose only unwind information is a `.debug_frame` compressed with zstd, which
    /// elfutils 0.188 cannot read (zstd support came in 0.189), with the number of stacks that
    /// ended in them; sorted by path. Without it a stack through such a file ends at its frame.
    public var unreadableUnwindInfo: [(path: String, stacks: Int)] {
        zstdStops.map { (path: $0.key, stacks: $0.value) }.sorted { $0.path < $1.path }
    }
    private var zstdStops: [String: Int] = [:]
    /// The version of the elfutils libdw in use (`dwfl_version`), e.g. "0.188".
    public static var elfutilsVersion: String { dwfl_version(nil).map { String(cString: $0) } ?? "?" }
    /// Per module file: whether its `.debug_frame` is zstd-compressed.
    private var zstdDebugFrame: [String: Bool] = [:]

    /// Counts a stack that ended at `frame` against its file when the file has no CFI libdw can
    /// read for the frame's pc and its `.debug_frame` is zstd-compressed.
    private func noteUnreadableUnwindInfo(at frame: StackFrame, _ session: Session) {
        let pc = frame.lookupAddress.rawValue
        guard let mod = dwfl_addrmodule(session.dwfl, pc) else { return }
        var bias: Dwarf_Addr = 0
        if let cfi = dwfl_module_eh_cfi(mod, &bias) {
            var cfiFrame: OpaquePointer?
            if dwarf_cfi_addrframe(cfi, pc &- bias, &cfiFrame) == 0 {
                free(UnsafeMutableRawPointer(cfiFrame))
                return
            }
        }
        guard let elf = dwfl_module_getelf(mod, &bias) else { return }
        var mainfile: UnsafePointer<CChar>?
        _ = dwfl_module_info(mod, nil, nil, nil, nil, nil, &mainfile, nil)
        guard let mainfile else { return }
        let path = String(cString: mainfile)
        let zstd: Bool
        if let known = zstdDebugFrame[path] {
            zstd = known
        } else {
            zstd = CompressedSections.zstdDebugSections(elf).contains(".debug_frame")
            zstdDebugFrame[path] = zstd
        }
        if zstd { zstdStops[path, default: 0] += 1 }
    }

    /// Go functions that run their callee on another stack than their own caller's: the
    /// goroutine's frames are on the goroutine stack, the callee's on the thread's g0 (signal,
    /// system) stack, and the CFI does not describe the switch. Go's own traceback stops there
    /// too (`funcID_systemstack`, `funcID_mcall`, `funcID_morestack`).
    private static let goStackSwitchNames: Set<String> = [
        "runtime.systemstack", "runtime.systemstack.abi0", "runtime.mcall", "runtime.mcall.abi0",
        "runtime.morestack", "runtime.morestack.abi0", "runtime.asmcgocall", "runtime.asmcgocall.abi0",
        // vDSO calls: the clock is read on the g0 stack.
        "time.now", "time.now.abi0", "runtime.nanotime1", "runtime.nanotime1.abi0", "runtime.walltime",
        "runtime.walltime.abi0", "runtime.walltime1", "runtime.walltime1.abi0",
    ]

    /// The address ranges of `mod`'s Go stack-switching functions; empty for a module that is
    /// not a Go program (no `.gopclntab` section), so other modules cost one section scan.
    private static func goStackSwitches(_ mod: OpaquePointer) -> [Range<UInt64>] {
        var bias: Dwarf_Addr = 0
        guard let elf = dwfl_module_getelf(mod, &bias) else { return [] }
        var shstrndx = 0
        guard elf_getshdrstrndx(elf, &shstrndx) == 0 else { return [] }
        var isGo = false
        var scn = elf_nextscn(elf, nil)
        while let section = scn, !isGo {
            scn = elf_nextscn(elf, section)
            var shdr = GElf_Shdr()
            if gelf_getshdr(section, &shdr) != nil, let name = elf_strptr(elf, shstrndx, Int(shdr.sh_name)) {
                isGo = strcmp(name, ".gopclntab") == 0
            }
        }
        guard isGo else { return [] }
        var ranges: [Range<UInt64>] = []
        let count = dwfl_module_getsymtab(mod)
        guard count > 0 else { return [] }
        for i in 0 ..< count {
            var sym = GElf_Sym()
            var address: GElf_Addr = 0
            guard let cname = dwfl_module_getsym_info(mod, Int32(i), &sym, &address, nil, nil, nil),
                  sym.st_size > 0, goStackSwitchNames.contains(String(cString: cname)) else { continue }
            ranges.append(address ..< address &+ sym.st_size)
        }
        return ranges
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    // MARK: - Sessions

    /// One libdwfl session for one process.
    final class Session {
        let dwfl: OpaquePointer
        var generation = Int.min
        var attached = false
        /// Address ranges of reported modules, with the file they came from.
        var modules: [(start: UInt64, end: UInt64, path: String, bias: UInt64)] = []
        /// Each module's entry function range, once looked up.
        var entryFunctions: [OpaquePointer: Range<UInt64>?] = [:]
        /// Whether a frame ends a stack, by lookup address (the top bit set for non-return addresses).
        var roots: [UInt64: Bool] = [:]
        /// Address ranges of Go's stack-switching functions in the reported modules.
        var stackSwitches: [Range<UInt64>] = []
        /// Whether the process writes a JIT map (`/tmp/perf-PID.map`): its generated code lives in
        /// anonymous memory made executable with mprotect, which no MMAP record announces, so a
        /// return address outside the known mappings is no sign of stale memory there. Looked up
        /// again every 4,096 samples until found (a runtime writes it once it starts compiling).
        var writesJitMap = false
        var samplesSinceJitLookup = Int.max
        init(dwfl: OpaquePointer) { self.dwfl = dwfl }
    }

    func session(for process: ProcessState) -> Session? {
        if let s = sessions[process.pid] {
            if s.generation == process.generation { return s }
            if sync(s, process) { return s }
            // A mapping replaced a reported module: start over.
            forgetProcess(process.pid)
        }
        guard let dwfl = dwfl_begin(callbacks) else { return nil }
        let s = Session(dwfl: dwfl)
        stats.sessions += 1
        sessions[process.pid] = s
        _ = sync(s, process)
        return s
    }

    /// Reports mappings not yet known to `s`. Returns false when a new mapping overlaps a module
    /// of another file (the address space was rebuilt underneath us), which needs a new session.
    private func sync(_ s: Session, _ process: ProcessState) -> Bool {
        let pageEnd: (UInt64) -> UInt64 = { ($0 + 4095) & ~4095 }
        var pending: [(Mapping, String)] = []
        for m in process.mappings {
            guard let path = reportablePath(m, pid: process.pid) else { continue }
            let lo = m.start.rawValue, hi = m.end.rawValue
            // A module's range ends at its last segment's p_memsz, not on a page boundary, so a
            // mapping of the same file that overlaps it belongs to it. Reporting it again would
            // make libdwfl reopen the module (and free the Ebl the process state may use).
            var covered = false
            for r in s.modules where r.start < hi && lo < pageEnd(r.end) {
                if r.path != path { return false }
                covered = true
            }
            if !covered { pending.append((m, path)) }
        }
        if !pending.isEmpty {
            dwfl_report_begin_add(s.dwfl)
            for (m, path) in pending {
                // Two mappings of one file: the first report may already cover the second.
                if s.modules.contains(where: { $0.path == path && $0.start < m.end.rawValue && m.start.rawValue < pageEnd($0.end) }) { continue }
                guard let layout = layout(of: path) else { continue }
                let bias = layout.bias(mappingStart: m.start.rawValue, fileOffset: m.fileOffset)
                // A second mapping of a file at the same bias is an alias (V8 maps node's embedded
                // builtins a second time, from node's own non-PIE text): the module exists
                // already, and reporting it again made libdwfl drop it, so that every later stack
                // through node lost its module (its `_start` no longer ended a complete stack).
                if s.modules.contains(where: { $0.path == path && $0.bias == bias }) { continue }
                guard let mod = dwfl_report_elf(s.dwfl, m.moduleName, path, -1, bias, true) else { continue }
                var start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
                _ = dwfl_module_info(mod, nil, &start, &end, nil, nil, nil, nil)
                s.modules.append((start, end, path, bias))
                s.stackSwitches += Self.goStackSwitches(mod)
                if debugErrors { debugLog("sprof dwarf: pid \(process.pid) gen \(process.generation): map \(String(m.start.rawValue, radix: 16))-\(String(m.end.rawValue, radix: 16)) off \(String(m.fileOffset, radix: 16)) \(path) bias \(String(bias, radix: 16)) [\(String(start, radix: 16)), \(String(end, radix: 16)))") }
                stats.modules += 1
            }
            dwfl_report_end(s.dwfl, nil, nil)
        }
        if !s.attached && !s.modules.isEmpty {
            if debugErrors { debugLog("sprof dwarf: pid \(process.pid) attach") }
            // An Elf of our own decides the architecture: with nil, libdwfl borrows the Ebl of
            // some module, which dangles if that module is ever re-reported or dropped.
            s.attached = dwfl_attach_state(s.dwfl, architectureElf, process.pid, threadCallbacks, Unmanaged.passUnretained(context).toOpaque())
        }
        s.generation = process.generation
        return true
    }

    /// The file to report for a mapping: its path, or for a deleted file or a memfd the
    /// process's view of it (`MappedFiles`); nil for anonymous and special mappings.
    private func reportablePath(_ m: Mapping, pid: Int32) -> String? {
        if m.path == "[vdso]" { return vdsoFile() }
        return MappedFiles.readablePath(m, pid: pid)
    }

    private func layout(of path: String) -> ElfLayout? {
        if let cached = layouts[path] { return cached }
        let l = ElfLayout(path: path)
        layouts[path] = l
        return l
    }

    /// The vdso image (the same in every process of this boot) written once to a temporary file,
    /// since `dwfl_report_elf` wants a path. The file is unlinked at once and reached through
    /// `/proc/self/fd/N`, so nothing is left behind however sprof ends.
    private func vdsoFile() -> String? {
        if let cached = vdsoPath { return cached }
        var result: String? = nil
        if let image = Vdso.image() {
            var template = Array("/tmp/sprof-vdso-XXXXXX.so".utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 3) }
            if fd >= 0 {
                unlink(template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                var written = 0
                while written < image.count {
                    let n = write(fd, image.baseAddress! + written, image.count - written)
                    if n <= 0 { break }
                    written += n
                }
                if written == image.count {
                    vdsoFD = fd
                    result = "/proc/self/fd/\(fd)"
                } else {
                    close(fd)
                }
            }
        }
        vdsoPath = .some(result)
        return result
    }
}

// MARK: - Register mapping

/// perf's x86-64 user registers (in `UserRegisters.sampled` order) to DWARF numbering.
enum DwarfRegisters {
    /// DWARF x86-64 registers 0..15: rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8..r15 — and the
    /// index of each in the sampled perf array (AX BX CX DX SI DI BP SP IP R8..R15).
    static let perfIndexForDwarf: [Int] = [0, 3, 2, 1, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]
    /// DWARF register 16 is the return address column (rip).
    static let count = 17
    /// rbx, rbp, r12-r15: the registers a function must restore before it returns (System V
    /// x86-64 psABI, 3.2.1), in DWARF numbering.
    static let calleeSaved = [3, 6, 12, 13, 14, 15]

    /// DWARF-ordered registers 0..16 from perf-ordered samples.
    static func dwarfOrder(fromPerf regs: [UInt64]) -> [UInt64] {
        var out = [UInt64](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { fill($0.baseAddress!, fromPerf: regs) }
        return out
    }

    static func fill(_ out: UnsafeMutablePointer<UInt64>, fromPerf regs: [UInt64]) {
        for (d, p) in perfIndexForDwarf.enumerated() { out[d] = regs[p] }
        out[16] = regs[UserRegisters.ipIndex]
    }
}

// MARK: - ELF layout (for load biases)

/// The PT_LOAD segments of a file, read once per path, for load biases.
struct ElfLayout {
    var isExecutable: Bool // ET_EXEC: fixed addresses, bias 0
    var loads: [LoadSegment]

    init(isExecutable: Bool, loads: [LoadSegment]) {
        self.isExecutable = isExecutable
        self.loads = loads
    }

    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else { return nil }
        defer { elf_end(elf) }
        var ehdr = GElf_Ehdr()
        guard gelf_getehdr(elf, &ehdr) != nil else { return nil }
        let loads = LoadSegment.segments(of: elf)
        guard !loads.isEmpty else { return nil }
        self.init(isExecutable: ehdr.e_type == UInt16(ET_EXEC), loads: loads)
    }

    /// The bias to report to libdwfl for a mapping (the same rule the symbolizer uses).
    func bias(mappingStart start: UInt64, fileOffset pgoff: UInt64) -> UInt64 {
        isExecutable ? 0 : loadBias(mappingStart: start, fileOffset: pgoff, segments: loads)
    }
}

// MARK: - libdwfl callbacks

/// The per-sample state the C callbacks read, reached through the `arg` pointer bound once per
/// `Dwfl` by `dwfl_attach_state` (it lives as long as the unwinder, longer than any `Dwfl`).
final class UnwindContext {
    let dwarfRegisters = UnsafeMutablePointer<UInt64>.allocate(capacity: DwarfRegisters.count)
    var pc: UInt64 = 0
    var sp: UInt64 = 0
    var stack = UnsafeRawBufferPointer(start: nil, count: 0)
    var frames: [StackFrame] = []
    var maxFrames = 1024
    var hitCap = false
    var stackExhausted = false
    var threadHandedOut = false
    /// Set when the walk was stopped because an unwound frame's stack pointer did not lie above
    /// the previous one within the copied stack (``acceptsFrame(_:)``).
    var leftStack = false
    /// The stack pointer of the last frame kept.
    var lastSP: UInt64 = 0
    /// The process's executable mappings: a return address outside all of them was not written
    /// by a call.
    var mappings: [Mapping] = []
    /// Go's stack-switching functions in the process (``DwarfUnwinder``'s session), and whether
    /// the walk stopped after one of them.
    var stackSwitches: [Range<UInt64>] = []
    var switchedStack = false
    /// The process being unwound.
    var pid: Int32 = 0
    /// The thread's stack beyond the copy (the sample's ``SampleRecord/liveStack``), starting at
    /// the copy's end.
    var beyond: ArraySlice<UInt8> = []
    /// A word beyond the copy served this walk.
    var usedBeyond = false
    var fileReads = 0
    /// The leaf's restored-register slots below the stack pointer (``poppedSlots(_:)``), worked
    /// out at the first read below it; nil until then. Reset for every sample.
    var popped: [(address: UInt64, value: UInt64)]?

    init() { dwarfRegisters.initialize(repeating: 0, count: DwarfRegisters.count) }
    deinit { dwarfRegisters.deallocate() }

    /// One 8-byte read: the copied stack, else the file mapped at `addr`.
    func read(_ dwfl: OpaquePointer, _ addr: UInt64, _ result: UnsafeMutablePointer<Dwarf_Word>) -> Bool {
        if stack.count >= 8, addr >= sp, addr - sp <= UInt64(stack.count - 8) {
            result.pointee = stack.loadUnaligned(fromByteOffset: Int(addr - sp), as: UInt64.self)
            return true
        }
        // Unwinding the leaf (the callback has seen frame 0 only), just under the stack pointer:
        // a slot the kernel did not copy. In an epilogue it held a register already popped.
        if addr < sp, sp - addr <= 128, frames.count == 1 {
            if popped == nil { popped = poppedSlots(dwfl) }
            if let hit = popped!.first(where: { $0.address == addr }) {
                result.pointee = hit.value
                return true
            }
        }
        let end = sp &+ UInt64(stack.count)
        if addr >= end, addr - end <= UInt64(beyond.count), Int(addr - end) + 8 <= beyond.count {
            result.pointee = beyond.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: Int(addr - end), as: UInt64.self) }
            usedBeyond = true
            return true
        }
        if readFileWord(dwfl, addr, result) {
            fileReads += 1
            return true
        }
        // Above the copy but within any plausible stack: the copy ran out.
        if addr >= sp && addr - sp < 64 << 20 { stackExhausted = true }
        return false
    }

    /// When the leaf pc is in an epilogue (``Epilogue/reachesReturn(_:)``: nothing but pops and
    /// scratch-register work before `ret`), the
    /// slots below the stack pointer where the leaf's CFI says a register is saved, each with the
    /// register's current value; otherwise none.
    ///
    /// Compilers describe an epilogue's pops by moving the CFA but keep each register's "saved at
    /// CFA-n" rule (LLVM emits no `.cfi_restore` there), so at `pop %rbp; ret` the rule for rbp
    /// names a slot below rsp. The kernel copies the user stack from rsp upwards
    /// (`sample_stack_user`), so that slot is missing, libdw leaves rbp undefined, and the caller's
    /// rbp-based CFA cannot be computed: the stack ends after two frames (1.4% of qsl-bench's
    /// samples, nearly all at a `ret`). A popped register holds exactly what its slot held, so
    /// its current value is the answer. Code that still writes a callee-saved register before
    /// its `ret` is not taken for an epilogue: a leaf that spilled a register into the red zone
    /// with `mov` holds another value until it restores it.
    func poppedSlots(_ dwfl: OpaquePointer) -> [(address: UInt64, value: UInt64)] {
        guard let bytes = code(dwfl, at: pc, count: 64), Epilogue.reachesReturn(bytes) else { return [] }
        guard let mod = dwfl_addrmodule(dwfl, pc) else { return [] }
        var bias: Dwarf_Addr = 0
        guard let cfi = dwfl_module_eh_cfi(mod, &bias) ?? dwfl_module_dwarf_cfi(mod, &bias) else { return [] }
        var frame: OpaquePointer?
        guard dwarf_cfi_addrframe(cfi, pc &- bias, &frame) == 0, let frame else { return [] }
        defer { free(UnsafeMutableRawPointer(frame)) }
        // libdw gives the CFA rule as one DW_OP_bregx (register, offset) and an "offset(n)" rule
        // as DW_OP_call_frame_cfa, then DW_OP_plus_uconst n unless n is 0 (libdw's
        // frame_register.c / cfi.c).
        var cfaOps: UnsafeMutablePointer<Dwarf_Op>?
        var cfaCount = 0
        guard dwarf_frame_cfa(frame, &cfaOps, &cfaCount) == 0, cfaCount == 1, let cfaOp = cfaOps?.pointee,
              cfaOp.atom == 0x92 /* DW_OP_bregx */, cfaOp.number < 16 else { return [] }
        let cfa = dwarfRegisters[Int(cfaOp.number)] &+ cfaOp.number2
        var slots: [(address: UInt64, value: UInt64)] = []
        var memory = [Dwarf_Op](repeating: Dwarf_Op(), count: 3)
        for register in DwarfRegisters.calleeSaved {
            var ops: UnsafeMutablePointer<Dwarf_Op>?
            var count = 0
            guard dwarf_frame_register(frame, Int32(register), &memory, &ops, &count) == 0, let ops,
                  count >= 1, ops[0].atom == 0x9c /* DW_OP_call_frame_cfa */ else { continue }
            var slot = cfa
            if count == 2, ops[1].atom == 0x23 /* DW_OP_plus_uconst */ {
                slot = cfa &+ ops[1].number
            } else if count != 1 {
                continue
            }
            if slot < sp { slots.append((slot, dwarfRegisters[register])) }
        }
        return slots
    }

    /// Whether the frame libdw unwound to lies on the thread's stack above the frame before it.
    ///
    /// A caller's stack pointer (its CFA) is above its callee's, and a frame whose return address
    /// was read from the copied stack has its stack pointer within the copy. When the CFI does not
    /// describe a stack switch, libdw keeps computing frames from whatever lies there: under Go's
    /// `runtime.systemstack`, the code runs on the thread's g0 stack, and the words above its
    /// frames are left over from earlier calls (`runtime.newproc`, an address in no mapping).
    /// libdw's frame-pointer fallback (no CFI for a pc) can likewise follow rbp anywhere. Such a
    /// frame and everything after it would be invented, so the walk stops before it and the stack
    /// is marked truncated. Where libdw cannot tell the stack pointer, the frame is kept.
    func acceptsFrame(_ state: OpaquePointer) -> Bool {
        var sp: Dwarf_Word = 0
        guard dwfl_frame_reg(state, 7, &sp) == 0 else { return true }
        if frames.isEmpty {
            lastSP = sp
            return true
        }
        let end = self.sp &+ UInt64(stack.count + beyond.count)
        guard sp > lastSP, sp <= end else {
            leftStack = true
            return false
        }
        lastSP = sp
        return true
    }

    /// Whether `address` lies in one of the process's executable mappings (sorted, disjoint).
    func isExecutable(_ address: UInt64) -> Bool {
        var lo = 0, hi = mappings.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if mappings[mid].end.rawValue <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < mappings.count && mappings[lo].start.rawValue <= address
    }

    /// `count` bytes of the file mapped at `address`, or nil.
    func code(_ dwfl: OpaquePointer, at address: UInt64, count: Int) -> [UInt8]? {
        var out: [UInt8] = []
        var word: Dwarf_Word = 0
        var at = address
        while out.count < count {
            guard readFileWord(dwfl, at, &word) else { return out.isEmpty ? nil : out }
            withUnsafeBytes(of: word) { out.append(contentsOf: $0) }
            at &+= 8
        }
        return Array(out.prefix(count))
    }

    /// One 8-byte read from the file mapped at `addr` (its PT_LOAD bytes), without the stack.
    func readFileWord(_ dwfl: OpaquePointer, _ addr: UInt64, _ result: UnsafeMutablePointer<Dwarf_Word>) -> Bool {
        guard let mod = dwfl_addrmodule(dwfl, addr) else { return false }
        var bias: Dwarf_Addr = 0
        guard let elf = dwfl_module_getelf(mod, &bias) else { return false }
        let vaddr = addr &- bias
        for seg in LoadSegment.segments(of: elf) {
            guard vaddr >= seg.vaddr, vaddr &+ 8 <= seg.vaddr &+ seg.fileSize else { continue }
            let offset = seg.offset + (vaddr - seg.vaddr)
            var size = 0
            if let raw = elf_rawfile(elf, &size), offset + 8 <= UInt64(size) {
                result.pointee = UnsafeRawPointer(raw).loadUnaligned(fromByteOffset: Int(offset), as: UInt64.self)
                return true
            }
            guard let data = elf_getdata_rawchunk(elf, Int64(offset), 8, ELF_T_BYTE), let buf = data.pointee.d_buf else {
                return false
            }
            result.pointee = UnsafeRawPointer(buf).loadUnaligned(as: UInt64.self)
            return true
        }
        return false
    }
}

private func context(_ arg: UnsafeMutableRawPointer?) -> UnwindContext {
    Unmanaged<UnwindContext>.fromOpaque(arg!).takeUnretainedValue()
}

/// The one thread of a sample: handed out once per walk.
private let dwarfNextThread: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> pid_t = { dwfl, arg, threadArg in
    let ctx = context(arg)
    if ctx.threadHandedOut { return 0 }
    ctx.threadHandedOut = true
    threadArg?.pointee = arg
    return dwfl_pid(dwfl!)
}

/// Any tid asked for is the sample's thread.
private let dwarfGetThread: @convention(c) (OpaquePointer?, pid_t, UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Bool = { _, _, arg, threadArg in
    threadArg?.pointee = arg
    return true
}

private let dwarfMemoryRead: @convention(c) (OpaquePointer?, Dwarf_Addr, UnsafeMutablePointer<Dwarf_Word>?, UnsafeMutableRawPointer?) -> Bool = { dwfl, addr, result, arg in
    context(arg).read(dwfl!, addr, result!)
}

private let dwarfSetInitialRegisters: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Bool = { thread, arg in
    let ctx = context(arg)
    guard dwfl_thread_state_registers(thread!, 0, UInt32(DwarfRegisters.count), ctx.dwarfRegisters) else { return false }
    dwfl_thread_state_register_pc(thread!, ctx.pc)
    return true
}

private let dwarfFrameCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { state, arg in
    let ctx = context(arg)
    var pc: Dwarf_Addr = 0
    var isActivation = false
    guard dwfl_frame_pc(state!, &pc, &isActivation) else { return Int32(DWARF_CB_ABORT) }
    guard ctx.acceptsFrame(state!) else { return Int32(DWARF_CB_ABORT) }
    if !isActivation, !ctx.frames.isEmpty, !ctx.mappings.isEmpty, !ctx.isExecutable(pc &- 1) {
        // Not an address after a call: a word of stale memory taken for a return address.
        ctx.leftStack = true
        return Int32(DWARF_CB_ABORT)
    }
    ctx.frames.append(StackFrame(address: ProcessAddress(pc), isReturnAddress: !isActivation, isKernel: false))
    if !ctx.stackSwitches.isEmpty {
        let lookup = isActivation ? pc : pc &- 1
        if ctx.stackSwitches.contains(where: { $0.contains(lookup) }) {
            // The caller is on another stack: what lies above this frame belongs to no live call.
            ctx.switchedStack = true
            return Int32(DWARF_CB_ABORT)
        }
    }
    if ctx.frames.count >= ctx.maxFrames {
        ctx.hitCap = true
        return Int32(DWARF_CB_ABORT)
    }
    return Int32(DWARF_CB_OK)
}

/// SPROF_DEBUG_DWARF diagnostics go to stderr, never into the profiled command's stdout.
private func debugLog(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
