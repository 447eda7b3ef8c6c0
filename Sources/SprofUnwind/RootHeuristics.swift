#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
import SprofCore
import SprofRecording

/// Root heuristics: whether the outermost frame of a stack is where a thread's stack begins
/// (entry points, CFI that ends the stack, start functions by name, and in the C library the x86
/// decoding of an indirect call before a return address), and the check of frame-pointer stacks.
extension DwarfUnwinder {
    /// Whether `frame`, the outermost frame of a stack, is where a thread's stack begins, so that
    /// the stack is complete. Works without symbols or debug files (Debian's libc is stripped):
    ///
    /// - the function at an ELF entry point (`e_entry`: the executable's or ld.so's `_start`),
    ///   which may have no CFI at all;
    /// - code whose CFI marks the return address undefined, the ABI's "outermost frame" (glibc's
    ///   `_start` and the child side of `clone`/`clone3`);
    /// - a function named in the file's own symbol tables as a process or thread start (`_start`,
    ///   `__libc_start_main`, `__libc_start_call_main`, `start_thread`, `clone`, `clone3`, Go's
    ///   `runtime.goexit`/`runtime.mstart`): frame-pointer walks end there, one or two frames
    ///   above the entry point, because glibc's start code has no frame pointers and clears rbp;
    /// - in the C library, a return address just after an indirect call: stripped, libc names
    ///   neither `__libc_start_call_main` (`call *%rax` to main) nor `start_thread` (`call
    ///   *0x638(%rbx)` to the thread function), and those are its only calls through a pointer
    ///   that a frame-pointer chain ends at (a callback from qsort can be taken for one when
    ///   libc's own rbp happens to end the chain there).
    public func isRoot(_ frame: StackFrame, process: ProcessState) -> Bool {
        guard let session = session(for: process) else { return false }
        return isRoot(frame, session)
    }

    func isRoot(_ frame: StackFrame, _ session: Session) -> Bool {
        let pc = frame.lookupAddress.rawValue
        let key = frame.isReturnAddress ? pc : pc | (1 << 63)
        if let known = session.roots[key] { return known }
        var root = false
        if let mod = dwfl_addrmodule(session.dwfl, pc) {
            root = isEntryFunction(pc, mod, session) || cfiEndsStack(pc, mod) || hasRootName(pc, mod)
                || (frame.isReturnAddress && isCLibrary(mod) && followsIndirectCall(frame.address.rawValue, session))
        }
        session.roots[key] = root
        return root
    }

    static let rootNames: Set<String> = [
        "_start", "__libc_start_main", "__libc_start_main_impl", "__libc_start_call_main",
        "start_thread", "clone", "__clone", "clone3", "__clone3", "__clone_internal",
        "thread_start", "runtime.goexit", "runtime.goexit.abi0", "runtime.mstart", "runtime.rt0_go",
        "runtime.rt0_go.abi0",
    ]

    func hasRootName(_ pc: UInt64, _ mod: OpaquePointer) -> Bool {
        var offset: GElf_Off = 0
        var sym = GElf_Sym()
        guard let cname = dwfl_module_addrinfo(mod, pc, &offset, &sym, nil, nil, nil) else { return false }
        var name = String(cString: cname)
        if let at = name.firstIndex(of: "@") { name = String(name[..<at]) }
        return Self.rootNames.contains(name)
    }

    /// Whether the CFI row at `pc` says the caller's return address is undefined.
    func cfiEndsStack(_ pc: UInt64, _ mod: OpaquePointer) -> Bool {
        var bias: Dwarf_Addr = 0
        guard let cfi = dwfl_module_eh_cfi(mod, &bias) else { return false }
        var frame: OpaquePointer?
        guard dwarf_cfi_addrframe(cfi, pc &- bias, &frame) == 0, let frame else { return false }
        defer { free(UnsafeMutableRawPointer(frame)) }
        var opsMem = [Dwarf_Op](repeating: Dwarf_Op(), count: 3)
        return opsMem.withUnsafeMutableBufferPointer { buf in
            var ops: UnsafeMutablePointer<Dwarf_Op>?
            var count = 0
            guard dwarf_frame_register(frame, 16, buf.baseAddress!, &ops, &count) == 0 else { return false }
            return count == 0 && ops == buf.baseAddress
        }
    }

    func isCLibrary(_ mod: OpaquePointer) -> Bool {
        guard let cname = dwfl_module_info(mod, nil, nil, nil, nil, nil, nil, nil) else { return false }
        let name = String(cString: cname)
        let base = name.split(separator: "/").last.map(String.init) ?? name
        return base.hasPrefix("libc.so") || base.hasPrefix("libc-") || base.hasPrefix("ld-musl")
    }

    /// Whether the bytes before `returnAddress` are an indirect near call (`ff /2`): `call *%reg`,
    /// `call *disp8(%reg)`, `call *disp32(%reg)`, with or without a REX prefix.
    func followsIndirectCall(_ returnAddress: UInt64, _ session: Session) -> Bool {
        guard let bytes = code(before: returnAddress, count: 7, session) else { return false }
        func modrm(_ b: UInt8, mod: UInt8) -> Bool { b >> 6 == mod && (b >> 3) & 7 == 2 }
        let n = bytes.count
        // call *%reg: ff d0+r (2 bytes)
        if bytes[n - 2] == 0xff && modrm(bytes[n - 1], mod: 3) { return true }
        // call *disp8(%reg): ff 50+r d8 (3 bytes; 4 with a SIB byte)
        if bytes[n - 3] == 0xff && modrm(bytes[n - 2], mod: 1) && bytes[n - 2] & 7 != 4 { return true }
        if bytes[n - 4] == 0xff && modrm(bytes[n - 3], mod: 1) && bytes[n - 3] & 7 == 4 { return true }
        // call *disp32(%reg): ff 90+r d32 (6 bytes; 7 with a SIB byte)
        if bytes[n - 6] == 0xff && modrm(bytes[n - 5], mod: 2) && bytes[n - 5] & 7 != 4 { return true }
        if bytes[n - 7] == 0xff && modrm(bytes[n - 6], mod: 2) && bytes[n - 6] & 7 == 4 { return true }
        return false
    }

    /// `count` bytes of mapped file code ending at `address` (exclusive), or nil.
    func code(before address: UInt64, count: Int, _ session: Session) -> [UInt8]? {
        guard address >= UInt64(count) else { return nil }
        return code(at: address - UInt64(count), count: count, session)
    }

    /// `count` bytes of mapped file code at `address`, read from the module's file, or nil.
    func code(at address: UInt64, count: Int, _ session: Session) -> [UInt8]? {
        context.code(session.dwfl, at: address, count: count).flatMap { $0.count == count ? $0 : nil }
    }

    /// Frame-pointer stacks from the kernel (`Callchain.frames`), checked against the process:
    ///
    /// - a frame at a signal trampoline holds the trampoline's own start (the return address the
    ///   kernel planted for the handler), not an address after a call: it is looked up as is,
    ///   so that it is named `__restore_rt` instead of the function before it;
    /// - a return address in no executable mapping ends the stack, marked truncated: the walk
    ///   read data as a frame pointer, and every frame after it is as wrong;
    /// - a stack whose outermost user frame is not a root (``isRoot(_:process:)``) went through
    ///   code without frame pointers (glibc's `malloc`, `_int_free`) and lost its callers: it is
    ///   marked truncated, as DWARF stacks cut short are.
    public func checkFramePointerStack(_ stack: inout UnwoundStack, process: ProcessState) {
        // A return address in no executable mapping means the walk left the frame chain (code
        // without frame pointers: the "frame pointer" held data, such as text read as an address,
        // 0x4154454e4f4d5f42 in a new user's leak report); everything from there on is as wrong,
        // so the stack ends, cut, where it is still known.
        if !process.mappings.isEmpty,
           let bad = stack.frames.indices.dropFirst().first(where: { !stack.frames[$0].isKernel && process.mapping(containing: stack.frames[$0].address) == nil }) {
            stack.frames.removeSubrange(bad...)
            stack.truncated = true
        }
        guard let session = session(for: process) else { return }
        for i in stack.frames.indices where !stack.frames[i].isKernel && stack.frames[i].isReturnAddress {
            if code(at: stack.frames[i].address.rawValue, count: sigreturnTrampolineCode.count, session) == sigreturnTrampolineCode {
                stack.frames[i].isReturnAddress = false
            }
        }
        guard !stack.truncated, let last = stack.frames.last, !last.isKernel else { return }
        if !isRoot(last, session) { stack.truncated = true }
    }

    /// Whether `pc` lies in the function at its module's ELF entry point (`_start`).
    func isEntryFunction(_ pc: UInt64, _ mod: OpaquePointer, _ session: Session) -> Bool {
        if let range = session.entryFunctions[mod] { return range?.contains(pc) ?? false }
        var range: Range<UInt64>? = nil
        var bias: Dwarf_Addr = 0
        if let elf = dwfl_module_getelf(mod, &bias) {
            var ehdr = GElf_Ehdr()
            if gelf_getehdr(elf, &ehdr) != nil, ehdr.e_entry != 0 {
                let entry = ehdr.e_entry &+ bias
                var offset: GElf_Off = 0
                var sym = GElf_Sym()
                if dwfl_module_addrinfo(mod, entry, &offset, &sym, nil, nil, nil) != nil, sym.st_size > 0 {
                    let start = entry &- offset
                    range = start..<(start &+ sym.st_size)
                } else {
                    range = entry..<(entry &+ 64)
                }
            }
        }
        session.entryFunctions[mod] = .some(range)
        return range?.contains(pc) ?? false
    }
}
