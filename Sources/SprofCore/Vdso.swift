internal import CSprof

/// The vdso's ELF image in our own memory. It is not on disk, but every process of a boot maps
/// the same image, so ours serves any profiled process (symbols for naming, CFI for unwinding).
public enum Vdso {
    /// The image, sized from its headers (section headers sit at the end of the image), or nil
    /// when the auxiliary vector has no vdso.
    public static func image() -> UnsafeRawBufferPointer? {
        guard let base = csprof_vdso_base() else { return nil }
        let eh = base.load(as: Elf64_Ehdr.self)
        guard eh.e_ident.0 == 0x7f, eh.e_ident.1 == UInt8(ascii: "E"), eh.e_ident.4 == 2 /* ELFCLASS64 */ else {
            return nil
        }
        var size = UInt64(eh.e_shoff) + UInt64(eh.e_shnum) * UInt64(eh.e_shentsize)
        size = max(size, UInt64(eh.e_phoff) + UInt64(eh.e_phnum) * UInt64(eh.e_phentsize))
        for i in 0..<Int(eh.e_phnum) {
            let ph = (base + Int(eh.e_phoff) + i * Int(eh.e_phentsize)).load(as: Elf64_Phdr.self)
            if ph.p_type == UInt32(PT_LOAD) { size = max(size, ph.p_offset + ph.p_filesz) }
        }
        return UnsafeRawBufferPointer(start: base, count: Int(size))
    }
}
