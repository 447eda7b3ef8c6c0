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
