internal import CSprof
import SprofCore

/// Callbacks and search path shared by every per-file Dwfl. libdwfl keeps pointers to both for
/// the Dwfl's whole life, so they live in stable heap memory that each `ElfFile` keeps alive.
final class DwflContext {
    let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>
    private let pathSlot: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    /// Where inflated copies of compressed debug files are kept (``DebugFileCache``); nil: none.
    let debugCache: DebugFileCache?
    private let debugDirectories: [String]

    /// `debugDirectories` become libdwfl's `debuginfo_path`: the empty element is the binary's own
    /// directory, `.debug` its subdirectory, and each absolute root serves both
    /// `<root>/.build-id/xx/rest.debug` and `<root>/<binary's dir>/<debuglink>`.
    init(debugDirectories: [String], debugCache: DebugFileCache? = .standard) {
        self.debugCache = debugCache
        if DebuginfodClient.configuredURLs != nil { DebuginfodClient.boundTimeout() }
        self.debugDirectories = debugDirectories
        let path = ([""] + [".debug"] + debugDirectories).joined(separator: ":")
        pathSlot = .allocate(capacity: 1)
        pathSlot.initialize(to: strdup(path))
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: Dwfl_Callbacks(
            find_elf: dwfl_build_id_find_elf,
            find_debuginfo: { module, userdata, name, base, file, debuglink, crc, found in
                DwflContext.checkDebuginfodServers(before: module)
                let standard = { dwfl_standard_find_debuginfo(module, userdata, name, base, file, debuglink, crc, found) }
                // ElfFile puts its context in the module's userdata before anything is looked up.
                guard let context = userdata?.pointee.map({ Unmanaged<DwflContext>.fromOpaque($0).takeUnretainedValue() }) else {
                    return standard()
                }
                return context.findDebuginfo(module, file: file, debuglink: debuglink, found: found, standard: standard)
            },
            section_address: dwfl_offline_section_address,
            debuginfo_path: pathSlot))
    }

    /// The module's separate debug file: its inflated copy in ``debugCache`` when there is one,
    /// else what `standard` (libdwfl's search) finds, replaced by a new copy when it has compressed
    /// sections. Without `DEBUGINFOD_URLS`, `standard` is not called when no file it would try
    /// exists: after searching the disk it loads libdebuginfod (and libcurl, gnutls: ~5 ms of
    /// CPU per run) only to hear that no server is set.
    /// Only the module's own debug file goes through here: libdwfl asks the same callback for a
    /// dwz alternate file (`.gnu_debugaltlink`) once the debug file is open, and that file has
    /// another build-id.
    private func findDebuginfo(_ module: OpaquePointer?, file: UnsafePointer<CChar>?, debuglink: UnsafePointer<CChar>?,
                               found: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                               standard: () -> Int32) -> Int32 {
        var debugFile: UnsafePointer<CChar>?
        _ = dwfl_module_info(module, nil, nil, nil, nil, nil, nil, &debugFile)
        var bits: UnsafePointer<UInt8>?
        var vaddr: GElf_Addr = 0
        let n = dwfl_module_build_id(module, &bits, &vaddr)
        guard debugFile == nil, n > 0, let bits, let found else { return standard() }
        let id = hex(UnsafeBufferPointer(start: bits, count: Int(n)))
        if let copy = debugCache?.open(buildID: id) {
            found.pointee = strdup(copy.path)
            return copy.fd
        }
        if DebuginfodClient.configuredURLs == nil, !mayFindOnDisk(buildID: id, file: file, debuglink: debuglink) { return -1 }
        let fd = standard()
        guard fd >= 0, let copy = debugCache?.store(from: fd, buildID: id) else { return fd }
        close(fd)
        free(found.pointee)
        found.pointee = strdup(copy.path)
        return copy.fd
    }

    /// Whether one of the paths libdwfl's search of the disk tries exists: the build-id path under
    /// each absolute root, then the `.gnu_debuglink` name (or, without one, `<file>.debug` and
    /// the file's own name) in the file's directory, its `.debug/` and under each root, for the
    /// file's path and for the path its symlinks resolve to. A path that exists but holds another
    /// file only means libdwfl looks and rejects it, as before.
    private func mayFindOnDisk(buildID id: String, file: UnsafePointer<CChar>?, debuglink: UnsafePointer<CChar>?) -> Bool {
        let roots = debugDirectories.filter { $0.hasPrefix("/") }
        var candidates = roots.map { "\($0)/.build-id/\(id.prefix(2))/\(id.dropFirst(2)).debug" }
        if let file {
            var paths = [String(cString: file)]
            if let real = realpath(file, nil) {
                paths.append(String(cString: real))
                free(real)
            }
            let link = debuglink.map { String(cString: $0) }
            if let link, link.hasPrefix("/") { candidates.append(link) }
            for path in paths {
                let slash = path.lastIndex(of: "/")
                let dir = slash.map { String(path[..<$0]) } ?? "."
                let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
                for name in link.map({ [$0] }) ?? [base + ".debug", base] {
                    candidates += [dir + "/" + name, dir + "/.debug/" + name] + roots.map { $0 + dir + "/" + name }
                }
            }
            candidates.removeAll { paths.contains($0) }
        }
        return candidates.contains { access($0, F_OK) == 0 }
    }

    /// libdwfl asks the debuginfod servers several times per stripped file (for its symbol table,
    /// its DWARF, …), and a server that accepts connections but never answers makes each of those
    /// wait out `DEBUGINFOD_TIMEOUT`: a minute for one file. So the first file libdwfl would ask
    /// about is asked here first, once per process; when no server answers, every later query is
    /// turned off (``DebuginfodClient/disable()``) before libdwfl makes it. Files whose debug file
    /// is installed under `/usr/lib/debug/.build-id` are skipped: libdwfl finds those without the
    /// network.
    private static func checkDebuginfodServers(before module: OpaquePointer?) {
        guard DebuginfodClient.configuredURLs != nil else { return }
        var bits: UnsafePointer<UInt8>?
        var vaddr: GElf_Addr = 0
        let n = dwfl_module_build_id(module, &bits, &vaddr)
        guard n > 0, let bits else { return }
        let id = hex(UnsafeBufferPointer(start: bits, count: Int(n)))
        DebuginfodClient.checkServersOnce(buildID: id) { id in
            access("/usr/lib/debug/.build-id/\(id.prefix(2))/\(id.dropFirst(2)).debug", F_OK) == 0
        }
    }

    deinit {
        free(pathSlot.pointee)
        pathSlot.deallocate()
        callbacks.deallocate()
    }
}

/// One ELF file (or the vdso image), opened once: its load segments, its sorted symbol table
/// (`.symtab`, `.dynsym` and MiniDebugInfo, merged by libdwfl, from a separate debug file when
/// the binary is stripped), and lazily its DWARF for inline frames and lines.
///
/// Addresses inside are `FileAddress`es (the ELF's own `p_vaddr` space). libdwfl places the module
/// at its own address; `dwflBias` converts between the two.
final class ElfFile {
    let moduleName: String
    let loads: [LoadSegment]
    let buildID: [UInt8]
    let symbols: SymbolTable
    /// The entry point (`e_entry`) of a program or of the dynamic loader, where `_start` is even
    /// when no symbol says so (stripped executables); nil for other shared libraries, whose
    /// `e_entry` is something else (libc's prints its version).
    let programEntry: UInt64?
    /// The path the file was opened from (for notices).
    let path: String
    /// Frames already worked out, by file address: after warm-up, every lookup is this hit.
    var frameCache: [UInt64: [SymbolizedFrame]] = [:]
    /// Demangled (or raw) display names by symbol index, filled on first use: a profile hits a
    /// few hundred of a large program's symbols, so not an array sized by the table.
    var displayNames: [Int: FunctionName] = [:]

    private let context: DwflContext
    private let dwfl: OpaquePointer
    private let module: OpaquePointer
    private let dwflBias: UInt64
    private let elf: OpaquePointer
    /// `.eh_frame_hdr`'s FDE starts, read on the first unnamed address.
    private var fdeStarts: [UInt64]?
    /// CU ranges read from the CU DIEs, built on the first address `.debug_aranges` misses.
    private var cuRanges: AddressRanges<CompileUnit>?
    /// Concrete functions by address, per CU (keyed by the CU DIE's address in the debug data).
    private var functionRanges: [UnsafeRawPointer?: AddressRanges<Dwarf_Die>] = [:]

    /// Opens `path` (or, when `image` is given, that in-memory ELF image, named `path`).
    /// Returns nil when the file cannot be read as ELF.
    init?(path: String, moduleName: String, image: UnsafeRawBufferPointer? = nil, context: DwflContext) {
        guard let dwfl = dwfl_begin(context.callbacks) else { return nil }
        dwfl_report_begin(dwfl)
        let mod: OpaquePointer?
        if let image {
            // Offline reporting is the only libdwfl entry point that takes memory; it reads, but
            // its prototype is not const.
            mod = dwfl_report_offline_memory(dwfl, moduleName, path,
                                             UnsafeMutablePointer(mutating: image.baseAddress!.assumingMemoryBound(to: CChar.self)),
                                             image.count)
        } else {
            // base 0 with add_p_vaddr keeps libdwfl's addresses equal to file addresses for
            // both ET_EXEC and ET_DYN (the bias is read back below anyway).
            mod = dwfl_report_elf(dwfl, moduleName, path, -1, 0, true)
        }
        dwfl_report_end(dwfl, nil, nil)
        // For the find_debuginfo callback (the debug-file cache); `self` keeps the context alive.
        var userdata: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        if let mod, dwfl_module_info(mod, &userdata, nil, nil, nil, nil, nil, nil) != nil {
            userdata?.pointee = Unmanaged.passUnretained(context).toOpaque()
        }
        var bias: GElf_Addr = 0
        guard let mod, let elf = dwfl_module_getelf(mod, &bias) else {
            dwfl_end(dwfl)
            return nil
        }
        self.context = context
        self.dwfl = dwfl
        self.module = mod
        self.dwflBias = bias
        self.elf = elf
        self.moduleName = moduleName
        self.path = path
        self.loads = LoadSegment.segments(of: elf)
        self.buildID = Self.readBuildID(mod)
        var candidates = Self.readSymbols(mod, dwflBias: bias)
        candidates += Self.readPLTEntries(elf)
        self.symbols = SymbolTable(consume candidates)
        self.programEntry = Self.readProgramEntry(elf, moduleName: moduleName)
    }

    deinit { dwfl_end(dwfl) }

    /// The file has a `.symtab` of its own (it was not stripped of it).
    lazy var hasOwnSymbolTable: Bool = {
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            var shdr = GElf_Shdr()
            if gelf_getshdr(section, &shdr) != nil, shdr.sh_type == UInt32(SHT_SYMTAB) { return true }
            scn = elf_nextscn(elf, section)
        }
        return false
    }()

    private static func readProgramEntry(_ elf: OpaquePointer, moduleName: String) -> UInt64? {
        var ehdr = GElf_Ehdr()
        guard gelf_getehdr(elf, &ehdr) != nil, ehdr.e_entry != 0 else { return nil }
        if moduleName.hasPrefix("ld-linux") || moduleName.hasPrefix("ld-musl") || ehdr.e_type == UInt16(ET_EXEC) {
            return ehdr.e_entry
        }
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else { return nil }
        for i in 0..<count {
            var ph = GElf_Phdr()
            if gelf_getphdr(elf, Int32(i), &ph) != nil, ph.p_type == UInt32(PT_INTERP) { return ehdr.e_entry }
        }
        return nil
    }

    /// `count` bytes of the file's loaded contents at `fileAddress`, or nil outside its segments.
    func bytes(at fileAddress: UInt64, count: Int) -> [UInt8]? {
        var size = 0
        guard let raw = elf_rawfile(elf, &size) else { return nil }
        for seg in loads where fileAddress >= seg.vaddr && fileAddress &+ UInt64(count) <= seg.vaddr &+ seg.fileSize {
            let offset = seg.offset &+ (fileAddress &- seg.vaddr)
            // Without wrapping: a corrupt or foreign header can put `offset` near 2^64.
            guard offset <= UInt64(size), UInt64(count) <= UInt64(size) - offset else { return nil }
            return Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(raw) + Int(offset), count: count))
        }
        return nil
    }

    /// Debug sections compressed with zstd (`objcopy --compress-debug-sections=zstd`, the
    /// default of some newer toolchains), in the file or in the separate debug file libdwfl
    /// found: elfutils before 0.189 cannot read them, and inline frames and source lines then
    /// vanish without an error. Checked once, on the first lookup that finds no compile unit.
    lazy var zstdDebugSections: [String] = {
        var elves = [elf]
        var bias: Dwarf_Addr = 0
        if let dwarf = dwfl_module_getdwarf(module, &bias), let debugElf = dwarf_getelf(dwarf), debugElf != elf {
            elves.append(debugElf)
        }
        return elves.flatMap { CompressedSections.zstdDebugSections($0) }
    }()

    private static func readBuildID(_ mod: OpaquePointer) -> [UInt8] {
        var bits: UnsafePointer<UInt8>?
        var vaddr: GElf_Addr = 0
        let n = dwfl_module_build_id(mod, &bits, &vaddr)
        guard n > 0, let bits else { return [] }
        return Array(UnsafeBufferPointer(start: bits, count: Int(n)))
    }

    /// Code symbols only. Functions (and GNU ifuncs) outrank untyped labels at the same address;
    /// an untyped symbol counts only inside an executable section, which is how hand-written
    /// assembly entry points look.
    private static func readSymbols(_ mod: OpaquePointer, dwflBias: UInt64) -> [SymbolCandidate] {
        let n = dwfl_module_getsymtab(mod)
        guard n > 1 else { return [] }
        var out: [SymbolCandidate] = []
        out.reserveCapacity(Int(n))
        for i in 1..<n {
            var sym = GElf_Sym()
            var addr: GElf_Addr = 0
            var shndx: GElf_Word = 0
            var symElf: OpaquePointer?
            var symBias: Dwarf_Addr = 0
            guard let cname = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, &symElf, &symBias),
                  cname.pointee != 0 else { continue }
            if shndx == UInt32(SHN_UNDEF) || shndx == UInt32(SHN_ABS) { continue }
            let type = Int32(sym.st_info & 0xf)
            let binding = Int32(sym.st_info >> 4)
            let isFunction = type == STT_FUNC || type == STT_GNU_IFUNC
            guard isFunction || type == STT_NOTYPE else { continue }
            var limit = UInt64.max
            if let symElf, let scn = elf_getscn(symElf, Int(shndx)) {
                var shdr = GElf_Shdr()
                if gelf_getshdr(scn, &shdr) != nil {
                    if shdr.sh_flags & UInt64(SHF_EXECINSTR) == 0 { continue }
                    limit = shdr.sh_addr &+ shdr.sh_size &+ symBias &- dwflBias
                }
            } else if !isFunction {
                continue
            }
            // Local labels (`.L…`) and ARM/AArch64 mapping symbols (`$x`, `$d.12`) are not
            // functions; Swift's `$s…` names are, so only the two-character form is dropped.
            let c0 = cname[0], c1 = cname[1]
            if c0 == CChar(UInt8(ascii: ".")) && c1 == CChar(UInt8(ascii: "L")) { continue }
            if c0 == CChar(UInt8(ascii: "$")) && c1 != 0 && (cname[2] == 0 || cname[2] == CChar(UInt8(ascii: "."))) { continue }
            let bindRank = binding == STB_GLOBAL ? 2 : (binding == STB_WEAK ? 1 : 0)
            out.append(SymbolCandidate(start: addr &- dwflBias, size: sym.st_size, name: String(cString: cname),
                                       rank: (isFunction ? 4 : 0) + bindRank, limit: limit))
        }
        return out
    }

    /// `name@plt` for each PLT stub, as objdump and perf name them: no symbol table lists them,
    /// and without this a sample in a stub (every call into a shared library passes one) shows
    /// as a bare `[module+0x…]`. Layout-independent: each x86-64 stub in `.plt`, `.plt.sec` or
    /// `.plt.got` is an indirect `jmp *GOT(%rip)` (after an optional `endbr64` and `bnd`), and
    /// the relocation of that GOT slot names the function. Other architectures get none.
    private static func readPLTEntries(_ elf: OpaquePointer) -> [SymbolCandidate] {
        var ehdr = GElf_Ehdr()
        guard gelf_getehdr(elf, &ehdr) != nil, ehdr.e_machine == UInt16(EM_X86_64) else { return [] }
        var shstrndx = 0
        guard elf_getshdrstrndx(elf, &shstrndx) == 0 else { return [] }
        // GOT slot address -> the name its relocation binds.
        var slotNames: [UInt64: String] = [:]
        var stubSections: [(address: UInt64, entrySize: Int, bytes: [UInt8])] = []
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            defer { scn = elf_nextscn(elf, section) }
            var shdr = GElf_Shdr()
            guard gelf_getshdr(section, &shdr) != nil else { continue }
            if shdr.sh_type == UInt32(SHT_RELA) {
                guard let symtab = elf_getscn(elf, Int(shdr.sh_link)), let relocs = elf_getdata(section, nil) else { continue }
                var symShdr = GElf_Shdr()
                guard gelf_getshdr(symtab, &symShdr) != nil, let symbols = elf_getdata(symtab, nil) else { continue }
                let count = shdr.sh_entsize > 0 ? Int(shdr.sh_size / shdr.sh_entsize) : 0
                for i in 0..<count {
                    var rela = GElf_Rela()
                    guard gelf_getrela(relocs, Int32(i), &rela) != nil else { continue }
                    let type = UInt32(truncatingIfNeeded: rela.r_info)
                    guard type == UInt32(R_X86_64_JUMP_SLOT) || type == UInt32(R_X86_64_GLOB_DAT) else { continue }
                    var sym = GElf_Sym()
                    guard gelf_getsym(symbols, Int32(truncatingIfNeeded: rela.r_info >> 32), &sym) != nil,
                          let name = elf_strptr(elf, Int(symShdr.sh_link), Int(sym.st_name)), name.pointee != 0 else { continue }
                    slotNames[rela.r_offset] = String(cString: name)
                }
            } else if shdr.sh_type == UInt32(SHT_PROGBITS), shdr.sh_flags & UInt64(SHF_EXECINSTR) != 0,
                      let cname = elf_strptr(elf, shstrndx, Int(shdr.sh_name)),
                      [".plt", ".plt.sec", ".plt.got"].contains(String(cString: cname)),
                      let data = elf_getdata(section, nil), let buffer = data.pointee.d_buf {
                let bytes = Array(UnsafeRawBufferPointer(start: buffer, count: Int(data.pointee.d_size)))
                stubSections.append((shdr.sh_addr, shdr.sh_entsize > 0 ? Int(shdr.sh_entsize) : 16, bytes))
            }
        }
        guard !slotNames.isEmpty else { return [] }
        var out: [SymbolCandidate] = []
        for (address, entrySize, bytes) in stubSections {
            var entry = 0
            while entry + entrySize <= bytes.count {
                defer { entry += entrySize }
                var i = entry
                if bytes[i..<min(i + 4, bytes.count)].elementsEqual([0xf3, 0x0f, 0x1e, 0xfa]) { i += 4 } // endbr64
                if i < bytes.count, bytes[i] == 0xf2 { i += 1 } // bnd
                guard i + 6 <= entry + entrySize, bytes[i] == 0xff, bytes[i + 1] == 0x25 else { continue }
                let disp = bytes[(i + 2)..<(i + 6)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                let slot = address &+ UInt64(i + 6) &+ UInt64(bitPattern: Int64(Int32(bitPattern: disp)))
                guard let name = slotNames[slot] else { continue }
                out.append(SymbolCandidate(start: address &+ UInt64(entry), size: UInt64(entrySize), name: name + "@plt", rank: 0))
            }
        }
        return out
    }

    /// Start of the function containing `fileAddress` by `.eh_frame`, for a stripped binary's
    /// code that no symbol names: every x86-64 function has a frame description entry (FDE)
    /// saying where it starts. Naming unknown code by its function's start rather than the
    /// sampled address keeps one frame per function, where per-address names would split a flame
    /// graph into a sliver per instruction. Nil when no FDE covers the address.
    func cfiFunctionStart(containing fileAddress: UInt64) -> UInt64? {
        // libdw says whether an FDE covers the address (its own ranges are rows of the CFI
        // table, finer than functions); .eh_frame_hdr's sorted table says where that FDE starts.
        var cfiBias: Dwarf_Addr = 0
        guard let cfi = dwfl_module_eh_cfi(module, &cfiBias) else { return nil }
        var frame: OpaquePointer?
        guard dwarf_cfi_addrframe(cfi, fileAddress &+ dwflBias &- cfiBias, &frame) == 0, let frame else { return nil }
        free(UnsafeMutableRawPointer(frame))
        if fdeStarts == nil { fdeStarts = Self.readFDEStarts(elf) }
        let starts = fdeStarts!
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= fileAddress { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 ? starts[lo - 1] : nil
    }

    /// The half-open range of the function containing `fileAddress` by `.eh_frame`: from
    /// ``cfiFunctionStart(containing:)`` to the next FDE's start (the padding after a function
    /// included), or for the last one to the end of its code section. For disassembling a
    /// stripped binary's function; nil when no FDE covers the address.
    func cfiFunctionRange(containing fileAddress: UInt64) -> (start: UInt64, end: UInt64)? {
        guard let start = cfiFunctionStart(containing: fileAddress) else { return nil }
        let end = fdeStarts?.first(where: { $0 > start }) ?? codeSectionEnd(containing: start)
        return end.map { (start, $0) }
    }

    /// The end of the executable section (`.text`) holding `fileAddress`, nil outside one.
    private func codeSectionEnd(containing fileAddress: UInt64) -> UInt64? {
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            scn = elf_nextscn(elf, section)
            var shdr = GElf_Shdr()
            guard gelf_getshdr(section, &shdr) != nil, shdr.sh_flags & UInt64(SHF_EXECINSTR) != 0,
                  shdr.sh_addr <= fileAddress, fileAddress < shdr.sh_addr + shdr.sh_size else { continue }
            return shdr.sh_addr + shdr.sh_size
        }
        return nil
    }

    /// FDE start addresses from `.eh_frame_hdr`'s binary-search table, in the layout every
    /// x86-64 toolchain writes (datarel sdata4 pairs); empty for any other.
    private static func readFDEStarts(_ elf: OpaquePointer) -> [UInt64] {
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else { return [] }
        for i in 0..<count {
            var ph = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(i), &ph) != nil, ph.p_type == UInt32(PT_GNU_EH_FRAME) else { continue }
            var size = 0
            guard let raw = elf_rawfile(elf, &size), ph.p_offset + ph.p_filesz <= UInt64(size), ph.p_filesz >= 12 else { return [] }
            let bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(raw) + Int(ph.p_offset), count: Int(ph.p_filesz))
            // version 1; eh_frame_ptr 4 bytes (pcrel/datarel sdata4 or udata4); fde_count udata4;
            // table entries datarel sdata4 (DW_EH_PE_datarel | DW_EH_PE_sdata4 = 0x3b).
            guard bytes[0] == 1, [0x03, 0x0b].contains(bytes[1] & 0x0f), bytes[2] == 0x03, bytes[3] == 0x3b else { return [] }
            let fdeCount = Int(bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            guard fdeCount <= (bytes.count - 12) / 8 else { return [] }
            var starts: [UInt64] = []
            starts.reserveCapacity(fdeCount)
            for entry in 0..<fdeCount {
                let relative = Int64(bytes.loadUnaligned(fromByteOffset: 12 + entry * 8, as: Int32.self))
                starts.append(UInt64(bitPattern: Int64(bitPattern: ph.p_vaddr) &+ relative))
            }
            return starts.sorted()
        }
        return []
    }

    /// The load bias of a mapping (see `SprofCore.loadBias`).
    func loadBias(mapStart: UInt64, fileOffset: UInt64) -> UInt64 {
        SprofCore.loadBias(mappingStart: mapStart, fileOffset: fileOffset, segments: loads)
    }

    /// Inline chain and source location at `fileAddress`, innermost first: for each inlined
    /// subroutine its name and the location inside it, then the location in the containing
    /// function. Empty `inlined` and nil location when there is no DWARF.
    func debugInfo(at fileAddress: UInt64, inlines: Bool, lines: Bool, naming: Naming)
        -> (inlined: [(name: FunctionName, file: String?, line: Int?)], file: String?, line: Int?)
    {
        guard inlines || lines else { return ([], nil, nil) }
        guard let unit = compileUnit(at: fileAddress &+ dwflBias) else {
            if !checkedDebugSections {
                checkedDebugSections = true
                if !zstdDebugSections.isEmpty { missingDebugInfo = zstdDebugSections }
            }
            return ([], nil, nil)
        }
        let cu = unit.die
        let pc = fileAddress &+ dwflBias &- unit.bias
        var file: String?
        var line: Int?
        if lines, let row = lineTable(of: cu)?.lookup(pc) {
            line = row.line
            file = row.file
        }
        var inlined: [(name: FunctionName, file: String?, line: Int?)] = []
        guard inlines else { return ([], file, line) }
        guard let function = functions(in: cu).lookup(pc) else { return ([], file, line) }
        for var die in DwarfScopes.inlinedChain(in: function, pc: pc) {
            inlined.append((dieName(&die, naming: naming) ?? FunctionName(name: "[inlined]"), file, line))
            // The caller continues at the call site recorded on the inlined subroutine.
            var attr = Dwarf_Attribute()
            var value: Dwarf_Word = 0
            line = nil
            if dwarf_attr(&die, UInt32(DW_AT_call_line), &attr) != nil, dwarf_formudata(&attr, &value) == 0, value > 0 {
                line = Int(value)
            }
            file = nil
            if dwarf_attr(&die, UInt32(DW_AT_call_file), &attr) != nil, dwarf_formudata(&attr, &value) == 0,
               let files = lineTable(of: cu)?.files, value < UInt64(files.count) {
                file = files[Int(value)]
            }
            if !lines { file = nil; line = nil }
        }
        return (inlined, file, line)
    }

    /// The compile unit covering `address` (a libdwfl module address). libdwfl's own lookup
    /// goes through `.debug_aranges`; on a miss the CUs' own ranges are consulted (read once,
    /// on the first miss), since LLVM-based compilers emit no `.debug_aranges` by default.
    private func compileUnit(at address: Dwarf_Addr) -> CompileUnit? {
        var bias: Dwarf_Addr = 0
        if let die = dwfl_module_addrdie(module, address, &bias) { return CompileUnit(die: die, bias: bias) }
        if cuRanges == nil { cuRanges = DwarfScopes.compileUnitRanges(module) }
        return cuRanges!.lookup(address)
    }

    /// The line table of a CU, decoded on first use (see `LineTable` for why not libdw's).
    private func lineTable(of cu: UnsafeMutablePointer<Dwarf_Die>) -> LineTable? {
        let key = UnsafeRawPointer(cu.pointee.addr)
        if let known = lineTables[key] { return known }
        var table: LineTable?
        if let dwarf = dwarf_cu_getdwarf(cu.pointee.cu) {
            let dwarfKey = UnsafeRawPointer(dwarf)
            if lineSections[dwarfKey] == nil { lineSections[dwarfKey] = .some(LineTable.Sections(dwarf)) }
            if let sections = lineSections[dwarfKey]! { table = LineTable.read(cu: cu, sections: sections) }
        }
        lineTables[key] = .some(table)
        return table
    }

    /// The source line at `fileAddress` from `LineTable` (`libdw: false`) or from libdw's own
    /// `dwarf_getsrc_die` (`libdw: true`, which keeps every row of the CU in memory): for tests
    /// that check the two agree. Nil when no CU or no row covers the address.
    func sourceLine(at fileAddress: UInt64, libdw: Bool) -> (file: String?, line: Int?)? {
        guard let unit = compileUnit(at: fileAddress &+ dwflBias) else { return nil }
        let pc = fileAddress &+ dwflBias &- unit.bias
        guard libdw else { return lineTable(of: unit.die)?.lookup(pc) }
        guard let l = dwarf_getsrc_die(unit.die, pc) else { return nil }
        var n: Int32 = 0
        let line = dwarf_lineno(l, &n) == 0 && n > 0 ? Int(n) : nil
        return (dwarf_linesrc(l, nil, nil).map { String(cString: $0) }, line)
    }

    /// Rows kept in the line table of the CU at `fileAddress` (for tests).
    func lineTableRowCount(at fileAddress: UInt64) -> Int? {
        guard let unit = compileUnit(at: fileAddress &+ dwflBias) else { return nil }
        return lineTable(of: unit.die)?.rowCount
    }

    /// Line tables by CU DIE address; nil records a CU without one.
    private var lineTables: [UnsafeRawPointer?: LineTable?] = [:]
    /// The sections line tables read, per `Dwarf` (a separate debug file has its own).
    private var lineSections: [UnsafeRawPointer: LineTable.Sections?] = [:]

    /// The concrete functions of a CU by address, indexed on first use.
    private func functions(in cu: UnsafeMutablePointer<Dwarf_Die>) -> AddressRanges<Dwarf_Die> {
        let key = UnsafeRawPointer(cu.pointee.addr)
        if let known = functionRanges[key] { return known }
        let ranges = DwarfScopes.functionRanges(cu)
        functionRanges[key] = ranges
        return ranges
    }

    /// The name of an inlined subroutine's abstract origin: its linkage name (demangled) when it
    /// has one, since `DW_AT_name` lacks namespaces and types; else `DW_AT_name`.
    private func dieName(_ die: UnsafeMutablePointer<Dwarf_Die>, naming: Naming) -> FunctionName? {
        var attr = Dwarf_Attribute()
        for at in [Int32(DW_AT_linkage_name), Int32(DW_AT_MIPS_linkage_name)] {
            if dwarf_attr_integrate(die, UInt32(at), &attr) != nil, let s = dwarf_formstring(&attr) {
                return naming.name(String(cString: s))
            }
        }
        // No linkage name (GCC gives none to template instances such as
        // `dispatch_storage<main(int, char**)::<lambda(auto:1&& ...)>&>`): qualify DW_AT_name
        // with the namespaces, classes and functions that enclose the declaration, so the frame
        // reads like the same function's non-inlined name.
        var origin = die.pointee
        for _ in 0..<8 {
            var next = Dwarf_Die()
            if dwarf_attr(&origin, UInt32(DW_AT_abstract_origin), &attr) != nil, dwarf_formref_die(&attr, &next) != nil {
                origin = next
            } else if dwarf_attr(&origin, UInt32(DW_AT_specification), &attr) != nil, dwarf_formref_die(&attr, &next) != nil {
                origin = next
            } else {
                break
            }
        }
        let key = dwarf_dieoffset(&origin)
        if let known = qualifiedNames[key] { return known }
        guard let base = dwarf_diename(&origin) else { return nil }
        var name = String(cString: base)
        if let scope = Self.scopePrefix(&origin) { name = scope + "::" + name }
        let result = FunctionName(name: name)
        qualifiedNames[key] = result
        return result
    }

    private var checkedDebugSections = false
    /// Debug sections that exist but cannot be read (zstd), once a lookup needed them; the
    /// symbolizer turns this into one notice per file.
    var missingDebugInfo: [String] = []

    /// Names of DIEs without a linkage name, qualified, by the offset of the DIE that names them.
    private var qualifiedNames: [Dwarf_Off: FunctionName] = [:]

    /// `ns::Class` for a DIE nested in namespaces, types or functions; nil at file scope.
    private static func scopePrefix(_ die: UnsafeMutablePointer<Dwarf_Die>) -> String? {
        var scopes: UnsafeMutablePointer<Dwarf_Die>?
        let count = Int(dwarf_getscopes_die(die, &scopes))
        guard count > 2, let scopes else { free(scopes); return nil }
        defer { free(scopes) }
        var parts: [String] = []
        // scopes[0] is the DIE itself, scopes[count - 1] its compile unit.
        for i in (1..<(count - 1)).reversed() {
            let scope = scopes + i
            switch dwarf_tag(scope) {
            case Int32(DW_TAG_namespace):
                parts.append(dwarf_diename(scope).map { String(cString: $0) } ?? "(anonymous namespace)")
            case Int32(DW_TAG_class_type), Int32(DW_TAG_structure_type), Int32(DW_TAG_union_type),
                 Int32(DW_TAG_subprogram), Int32(DW_TAG_module):
                if let n = dwarf_diename(scope) { parts.append(String(cString: n)) }
            default:
                break
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: "::")
    }
}
