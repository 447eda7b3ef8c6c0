#if canImport(Glibc)
import Glibc
#endif
internal import CSprof

/// ELF sections compressed with zstd (`objcopy --compress-debug-sections=zstd`, the default of
/// some newer toolchains). elfutils before 0.189 reads zlib-compressed sections but not these, and
/// says nothing: the symbolizer loses inline frames and lines, the unwinder loses `.debug_frame`.
public enum CompressedSections {
    /// Names of the `.debug_*` sections of `elf` (a libelf `Elf *`) whose compression header
    /// (`Elf64_Chdr`, starting with its u32 `ch_type`) says `ELFCOMPRESS_ZSTD` (2).
    public static func zstdDebugSections(_ elf: OpaquePointer) -> [String] {
        var shstrndx = 0
        guard elf_getshdrstrndx(elf, &shstrndx) == 0 else { return [] }
        var names: [String] = []
        var scn = elf_nextscn(elf, nil)
        while let section = scn {
            scn = elf_nextscn(elf, section)
            var shdr = GElf_Shdr()
            guard gelf_getshdr(section, &shdr) != nil, shdr.sh_flags & UInt64(SHF_COMPRESSED) != 0,
                  let cname = elf_strptr(elf, shstrndx, Int(shdr.sh_name)) else { continue }
            let name = String(cString: cname)
            guard name.hasPrefix(".debug_"), let raw = elf_rawdata(section, nil), let bytes = raw.pointee.d_buf,
                  raw.pointee.d_size >= 4, bytes.loadUnaligned(as: UInt32.self) == 2 else { continue }
            names.append(name)
        }
        return names
    }
}
