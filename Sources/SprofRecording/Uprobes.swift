#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SprofCore

/// Uprobes opened through perf_event_open (the `uprobe` PMU): a probe on one instruction of a file,
/// firing in every process that maps that file, for the tasks the event follows.
///
/// Facts (include/uapi/linux/perf_event.h, kernel/trace/trace_event_perf.c): `attr.type` is the
/// dynamic PMU type in `/sys/bus/event_source/devices/uprobe/type`; `config1` points to the file's
/// path (the kernel copies it); `config2` is the probe's *file offset*; `config` bit 0 makes it a
/// return probe (`format/retprobe`). Opening one needs CAP_SYS_ADMIN (Linux 6.16 reverted the
/// CAP_PERFMON allowance, and stable kernels took the revert).
public enum Uprobes {
    /// The uprobe PMU's type, or nil when this kernel has none.
    public static var pmuType: UInt32? {
        readTextFile("/sys/bus/event_source/devices/uprobe/type").flatMap { UInt32($0.trimmingSpaces.filter { !$0.isNewline }) }
    }

    /// Paths handed to the kernel through `config1`: they must outlive every open, so each is
    /// copied once and kept for the life of the process (a few per run).
    nonisolated(unsafe) private static var paths: [String: UnsafeMutablePointer<CChar>] = [:]
    private static let pathsLock = NSLock()

    /// An event for a probe at `offset` (a file offset, see ``fileOffset(ofSymbol:in:)``) of the
    /// ELF file at `path`. User-space only: the registers and stack are the probed thread's.
    ///
    /// - Throws: `SyscallError` (ENOENT) when this kernel has no uprobe PMU.
    public static func event(path: String, offset: UInt64, name: String, returnProbe: Bool = false,
                             copiesUserStack: Bool = true, walksUserFramePointers: Bool = false) throws(SyscallError) -> EventSpec {
        guard let type = pmuType else {
            throw SyscallError(call: "perf_event_open", errno: ENOENT, hint: "this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe); heap profiles need CONFIG_UPROBE_EVENTS")
        }
        var spec = EventSpec(name: name, type: type, config: returnProbe ? 1 : 0)
        pathsLock.lock()
        let pointer = paths[path] ?? strdup(path)!
        paths[path] = pointer
        pathsLock.unlock()
        spec.config1 = UInt64(UInt(bitPattern: pointer))
        spec.config2 = offset
        spec.excludeKernel = true
        spec.excludeHypervisor = true
        spec.copiesUserStack = copiesUserStack
        spec.walksUserFramePointers = walksUserFramePointers
        return spec
    }

    /// The file offset of the defined function `symbol` in the ELF file at `path`: its value in
    /// `.dynsym` (else `.symtab`) moved from the virtual address of the PT_LOAD segment that
    /// holds it to that segment's file position (`value - p_vaddr + p_offset`).
    ///
    /// - Returns: nil when the file is not a 64-bit little-endian ELF file or does not define it.
    public static func fileOffset(ofSymbol symbol: String, in path: String) -> UInt64? {
        guard let bytes = readWholeFile(path) else { return nil }
        return ElfSymbolTable.fileOffset(of: symbol, in: bytes)
    }

    /// Closes uprobe events without waiting for the kernel to release them, and returns the pid
    /// of the process that holds them meanwhile (nil: closed here, because it could not start).
    ///
    /// Why: the last close of a uprobe event takes the kernel 65-100 ms here, one event at a time
    /// (it unregisters the probe and waits for RCU grace periods, kernel/trace/trace_event_perf.c),
    /// and `sprof run --heap` opens one per probe and CPU. Closed in sprof, they kept it from
    /// exiting ~0.35 s after its outputs were written (bench/RESULTS.md, issue 19). So the events
    /// (disabled first by the caller: they record nothing more) are handed to `/bin/cat`, spawned
    /// with them and with a socket as its input; sprof closes its copies, then the socket's other end, and cat's
    /// exit makes the last close, in the background. cat gets no other descriptor of this process
    /// (sprof's are close-on-exec; others are closed in the child), `/dev/null` as output and default signal actions; it is
    /// reaped by a thread here, or by init once sprof has exited.
    @discardableResult
    public static func closeDetached(_ fds: [Int32]) -> Int32? {
        guard !fds.isEmpty else { return nil }
        func closeHere() -> Int32? {
            for fd in fds { close(fd) }
            return nil
        }
        // A socket pair rather than a pipe: it can be made close-on-exec atomically (pipe2 is not
        // in the Glibc module), so no other spawn of this process can inherit it meanwhile.
        var input: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &input) == 0 else { return closeHere() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 onto itself clears close-on-exec in the child only (POSIX; glibc >= 2.29).
        for fd in fds where fd > 2 { posix_spawn_file_actions_adddup2(&actions, fd, fd) }
        // sprof opens everything close-on-exec; a program using the library may not have.
        let kept = Set(fds)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let fd = Int32(name), fd > 2, !kept.contains(fd) else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sprof-uprobe-release"), nil]
        defer { argv.forEach { free($0) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/cat", &actions, &attributes, argv, envp)
        close(input[0])
        guard spawned == 0 else {
            close(input[1])
            return closeHere()
        }
        for fd in fds { close(fd) }
        close(input[1])
        let helper = pid
        let reaper = Thread {
            var status: Int32 = 0
            while waitpid(helper, &status, 0) < 0 && errno == EINTR {}
        }
        reaper.name = "sprof-uprobe-reaper"
        reaper.start()
        return pid
    }
}

/// The little of ELF64 that ``Uprobes/fileOffset(ofSymbol:in:)`` needs, on the bytes of a file.
public enum ElfSymbolTable {
    /// ``Uprobes/fileOffset(ofSymbol:in:)`` on a file's bytes already read (several symbols).
    public static func fileOffset(of symbol: String, in b: [UInt8]) -> UInt64? {
        function(symbol, in: b)?.offset
    }

    /// The file offset and size (`st_size`, bytes) of the defined function `symbol`: see
    /// ``Uprobes/fileOffset(ofSymbol:in:)``.
    public static func function(_ symbol: String, in b: [UInt8]) -> (offset: UInt64, size: UInt64)? {
        func u16(_ o: Int) -> Int { o + 2 <= b.count ? Int(b[o]) | Int(b[o + 1]) << 8 : 0 }
        func u32(_ o: Int) -> UInt64 { o + 4 <= b.count ? (0..<4).reduce(0) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } : 0 }
        func u64(_ o: Int) -> UInt64 { u32(o) | u32(o + 4) << 32 }
        guard b.count >= 64, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46, b[4] == 2, b[5] == 1 else { return nil }
        let phoff = Int(clamping: u64(0x20)), shoff = Int(clamping: u64(0x28))
        let phentsize = u16(0x36), phnum = u16(0x38), shentsize = u16(0x3a), shnum = u16(0x3c)
        // Sections: SHT_DYNSYM (11) first, then SHT_SYMTAB (2); sh_link names the string table.
        var value: UInt64?
        var symbolSize: UInt64 = 0
        for wanted: UInt64 in [11, 2] where value == nil {
            for i in 0..<shnum {
                let sh = shoff + i * shentsize
                guard sh + 64 <= b.count, u32(sh + 4) == wanted else { continue }
                let offset = Int(clamping: u64(sh + 0x18)), size = Int(clamping: u64(sh + 0x20))
                let entsize = max(Int(clamping: u64(sh + 0x38)), 24), link = Int(u32(sh + 0x28))
                let strsh = shoff + link * shentsize
                guard strsh + 64 <= b.count else { continue }
                let strings = Int(clamping: u64(strsh + 0x18))
                var s = offset
                while s + 24 <= min(offset + size, b.count) {
                    let info = b[s + 4], shndx = u16(s + 6)
                    if info & 0xf == 2 /* STT_FUNC */, shndx != 0, symbolName(at: strings + Int(u32(s)), in: b, equals: symbol) {
                        value = u64(s + 8)
                        symbolSize = u64(s + 16)
                        break
                    }
                    s += entsize
                }
                if value != nil { break }
            }
        }
        guard let vaddr = value else { return nil }
        for i in 0..<phnum {
            let ph = phoff + i * phentsize
            guard ph + 56 <= b.count, u32(ph) == 1 /* PT_LOAD */ else { continue }
            let offset = u64(ph + 8), start = u64(ph + 0x10), fileSize = u64(ph + 0x20)
            if vaddr >= start && vaddr < start + fileSize { return (vaddr - start + offset, symbolSize) }
        }
        return nil
    }

    private static func symbolName(at offset: Int, in b: [UInt8], equals name: String) -> Bool {
        var i = offset
        for ch in name.utf8 {
            guard i < b.count, b[i] == ch else { return false }
            i += 1
        }
        return i < b.count && b[i] == 0
    }
}
