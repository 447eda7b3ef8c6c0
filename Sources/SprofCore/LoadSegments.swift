internal import CSprof

extension LoadSegment {
    /// The PT_LOAD program headers of an ELF file open in libelf (`Elf *`), in header order;
    /// empty when they cannot be read. The one reader of them: symbolization
    /// (`ElfFile`) and unwinding (load biases reported to libdwfl, file bytes of a mapping) both
    /// use it, so that both find the same segment for an address.
    public static func segments(of elf: OpaquePointer) -> [LoadSegment] {
        var count = 0
        guard elf_getphdrnum(elf, &count) == 0 else { return [] }
        var loads: [LoadSegment] = []
        for i in 0..<count {
            var ph = GElf_Phdr()
            guard gelf_getphdr(elf, Int32(i), &ph) != nil, ph.p_type == UInt32(PT_LOAD) else { continue }
            loads.append(LoadSegment(offset: ph.p_offset, vaddr: ph.p_vaddr, fileSize: ph.p_filesz,
                                     executable: ph.p_flags & UInt32(PF_X) != 0))
        }
        return loads
    }
}
