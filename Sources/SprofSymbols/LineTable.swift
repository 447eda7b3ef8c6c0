internal import CSprof

/// One compile unit's line table (`.debug_line`, DWARF 2 to 5), decoded here rather than by
/// libdw's `dwarf_getsrclines`, which keeps every row of the unit as a ~100-byte allocation (one
/// `malloc` per row while decoding, then an array of `Dwarf_Line`s): a 100,000-function program
/// built with `-O0 -g` has ~900,000 rows, ~97 MB of which a profile needs a few hundred.
///
/// Answers exactly what `dwarf_getsrc_die` + `dwarf_lineno` + `dwarf_linesrc` answer (same row
/// order: by address, an end of sequence before other rows at its address, then program order;
/// same file names: libdw's joining of directory and file name, except that a relative include
/// directory is joined to the compilation directory, which libdw 0.188 does not do), from only the rows that can be
/// an answer: in a sequence, a row with the previous row's file and line, or at the address of
/// the next row, never is. 16 bytes per kept row.
struct LineTable {
    /// File names by the line program's file register, as libdw names them: index 0 is `???`
    /// before DWARF 5 (files count from 1 there), a relative name is joined to its directory.
    let files: [String?]
    private var addresses: [UInt64] = []
    private var lines: [UInt32] = []
    /// `endOfSequence` marks the row that ends a sequence.
    private var fileIndexes: [UInt32] = []
    private static let endOfSequence = UInt32.max

    /// The file and line at `address` (a CU address); nil when no row covers it (then libdw
    /// gives neither). `line` is nil for line 0.
    func lookup(_ address: UInt64) -> (file: String?, line: Int?)? {
        var lo = 0, hi = addresses.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if addresses[mid] <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0, fileIndexes[lo - 1] != Self.endOfSequence else { return nil }
        let line = Int32(bitPattern: lines[lo - 1])
        let file = Int(fileIndexes[lo - 1])
        return (file < files.count ? files[file] : nil, line > 0 ? Int(line) : nil)
    }

    var rowCount: Int { addresses.count }

    /// Sections a line program refers to, valid while the `Dwarf` they come from lives.
    struct Sections {
        var line: UnsafeRawBufferPointer
        var lineStr: UnsafeRawBufferPointer?
        var str: UnsafeRawBufferPointer?

        /// `.debug_line` (required), `.debug_line_str` and `.debug_str` of `dwarf`'s file, as
        /// libdw loaded them (decompressed).
        init?(_ dwarf: OpaquePointer) {
            guard let elf = dwarf_getelf(dwarf) else { return nil }
            var shstrndx = 0
            guard elf_getshdrstrndx(elf, &shstrndx) == 0 else { return nil }
            var line: UnsafeRawBufferPointer?
            var scn = elf_nextscn(elf, nil)
            while let section = scn {
                defer { scn = elf_nextscn(elf, section) }
                var shdr = GElf_Shdr()
                guard gelf_getshdr(section, &shdr) != nil, shdr.sh_type != UInt32(SHT_NOBITS),
                      let cname = elf_strptr(elf, shstrndx, Int(shdr.sh_name)) else { continue }
                let name = String(cString: cname)
                guard name == ".debug_line" || name == ".debug_line_str" || name == ".debug_str",
                      let data = elf_getdata(section, nil), let buffer = data.pointee.d_buf else { continue }
                let bytes = UnsafeRawBufferPointer(start: buffer, count: Int(data.pointee.d_size))
                switch name {
                case ".debug_line": line = bytes
                case ".debug_line_str": lineStr = bytes
                default: str = bytes
                }
            }
            guard let line else { return nil }
            self.line = line
        }
    }

    /// The line table of `cu` (a CU DIE), or nil when it has none or it cannot be decoded (libdw
    /// then finds no line either).
    static func read(cu: UnsafeMutablePointer<Dwarf_Die>, sections: Sections) -> LineTable? {
        var attr = Dwarf_Attribute()
        var offset: Dwarf_Word = 0
        guard dwarf_attr(cu, UInt32(DW_AT_stmt_list), &attr) != nil, dwarf_formudata(&attr, &offset) == 0 else { return nil }
        var compDir: String?
        if dwarf_attr(cu, UInt32(DW_AT_comp_dir), &attr) != nil, let s = dwarf_formstring(&attr) { compDir = String(cString: s) }
        return decode(sections, offset: offset, compDir: compDir)
    }

    /// Decodes the line program at `offset` in `sections.line`; compacts rows unless two
    /// sequences overlap (code discarded by the linker, left at address 0), where a row dropped
    /// from one sequence could have answered for an address inside the other.
    static func decode(_ sections: Sections, offset: UInt64, compDir: String?) -> LineTable? {
        guard let compact = decode(sections, offset: offset, compDir: compDir, compact: true) else { return nil }
        if !compact.overlaps { return compact.table }
        return decode(sections, offset: offset, compDir: compDir, compact: false)?.table
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var at: Int
        var end: Int
        var failed = false

        mutating func u8() -> UInt8 {
            guard at < end else { failed = true; return 0 }
            defer { at += 1 }
            return bytes[at]
        }
        mutating func fixed(_ size: Int) -> UInt64 {
            guard size <= 8, end - at >= size else { failed = true; at = end; return 0 }
            var value: UInt64 = 0
            for i in 0..<size { value |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += size
            return value
        }
        mutating func uleb() -> UInt64 {
            var value: UInt64 = 0, shift: UInt64 = 0
            while true {
                let b = u8()
                if failed { return 0 }
                if shift < 64 { value |= UInt64(b & 0x7f) << shift }
                shift += 7
                if b & 0x80 == 0 { return value }
            }
        }
        mutating func sleb() -> Int64 {
            var value: Int64 = 0, shift: Int64 = 0
            var b: UInt8 = 0
            repeat {
                b = u8()
                if failed { return 0 }
                if shift < 64 { value |= Int64(b & 0x7f) << shift }
                shift += 7
            } while b & 0x80 != 0
            if shift < 64 && b & 0x40 != 0 { value |= -(Int64(1) << shift) }
            return value
        }
        mutating func cString() -> String? {
            var i = at
            while i < end, bytes[i] != 0 { i += 1 }
            guard i < end else { failed = true; return nil }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<i]), as: UTF8.self)
            at = i + 1
            return s
        }
        mutating func skip(_ count: UInt64) {
            guard count <= UInt64(end - at) else { failed = true; at = end; return }
            at += Int(count)
        }
    }

    private static func string(in section: UnsafeRawBufferPointer?, at offset: UInt64) -> String? {
        guard let section, offset < UInt64(section.count) else { return nil }
        var r = Reader(bytes: section, at: Int(offset), end: section.count)
        return r.cString()
    }

    /// A DWARF 5 entry-format value: a string for `DW_LNCT_path`, a number for
    /// `DW_LNCT_directory_index`, skipped otherwise. Nil (and `r.failed`) on a form this reader
    /// does not know.
    private enum FormValue { case string(String?), number(UInt64), none }

    private static func readForm(_ form: UInt64, _ r: inout Reader, offsetSize: Int, _ sections: Sections) -> FormValue {
        switch form {
        case 0x08: return .string(r.cString())                                            // string
        case 0x1f: return .string(string(in: sections.lineStr, at: r.fixed(offsetSize)))  // line_strp
        case 0x0e: return .string(string(in: sections.str, at: r.fixed(offsetSize)))      // strp
        case 0x0b: return .number(r.fixed(1))                                             // data1
        case 0x05: return .number(r.fixed(2))                                             // data2
        case 0x06: return .number(r.fixed(4))                                             // data4
        case 0x07: return .number(r.fixed(8))                                             // data8
        case 0x0f: return .number(r.uleb())                                               // udata
        case 0x1e: r.skip(16); return .none                                               // data16 (MD5)
        case 0x09: r.skip(r.uleb()); return .none                                         // block
        case 0x17: return .number(r.fixed(offsetSize))                                    // sec_offset
        default: r.failed = true; return .none
        }
    }

    private static func join(_ dir: String?, _ name: String) -> String {
        if name.hasPrefix("/") { return name }
        guard let dir else { return name }
        return dir + "/" + name
    }

    private static func decode(_ sections: Sections, offset: UInt64, compDir: String?, compact: Bool)
        -> (table: LineTable, overlaps: Bool)?
    {
        let section = sections.line
        guard offset < UInt64(section.count) else { return nil }
        var r = Reader(bytes: section, at: Int(offset), end: section.count)
        var unitLength = r.fixed(4)
        var offsetSize = 4
        if unitLength == 0xffff_ffff { unitLength = r.fixed(8); offsetSize = 8 }
        guard !r.failed, unitLength <= UInt64(section.count - r.at) else { return nil }
        r.end = r.at + Int(unitLength)
        let version = r.fixed(2)
        guard (2...5).contains(version) else { return nil }
        if version >= 5 { _ = r.u8(); _ = r.u8() }  // address_size, segment_selector_size
        let headerLength = r.fixed(offsetSize)
        guard !r.failed, headerLength <= UInt64(r.end - r.at) else { return nil }
        let programStart = r.at + Int(headerLength)
        let minInstLength = UInt64(r.u8())
        let maxOps = version >= 4 ? UInt64(max(r.u8(), 1)) : 1
        _ = r.u8()  // default_is_stmt: every row counts for a lookup
        let lineBase = Int64(Int8(bitPattern: r.u8()))
        let lineRange = UInt64(r.u8())
        let opcodeBase = UInt64(r.u8())
        guard !r.failed, opcodeBase > 0 else { return nil }
        var standardLengths: [UInt8] = []
        for _ in 1..<opcodeBase { standardLengths.append(r.u8()) }

        var dirs: [String?] = []
        var files: [String?] = ["???"]
        if version < 5 {
            dirs.append(compDir)
            // A relative include directory (`-I src` from the build directory) is relative to
            // the compilation directory. libdw 0.188 leaves it relative, which names no file
            // unless sprof runs where the program was built; DWARF 5 tables carry the joined
            // form themselves (directory 0 is the compilation directory).
            while r.at < r.end, r.bytes[r.at] != 0 { dirs.append(r.cString().map { join(compDir, $0) }) }
            _ = r.u8()
            while r.at < r.end, r.bytes[r.at] != 0 {
                guard let name = r.cString() else { return nil }
                let dir = r.uleb()
                _ = r.uleb(); _ = r.uleb()
                guard dir < UInt64(dirs.count) else { return nil }
                files.append(join(dirs[Int(dir)], name))
            }
            _ = r.u8()
        } else {
            for isFiles in [false, true] {
                let formatCount = Int(r.u8())
                var formats: [(content: UInt64, form: UInt64)] = []
                for _ in 0..<formatCount { formats.append((r.uleb(), r.uleb())) }
                let count = r.uleb()
                guard !r.failed, count <= UInt64(r.end - r.at) else { return nil }
                for n in 0..<Int(count) {
                    var path: String?
                    var dir: UInt64?
                    for f in formats {
                        let value = readForm(f.form, &r, offsetSize: offsetSize, sections)
                        if f.content == 1, case .string(let s) = value { path = s }           // DW_LNCT_path
                        if f.content == 2, case .number(let v) = value { dir = v }            // DW_LNCT_directory_index
                    }
                    guard !r.failed, let path else { return nil }
                    if !isFiles {
                        // Entry 0 is the compilation directory; later relative ones are relative to it.
                        dirs.append(n == 0 ? path : join(dirs.first ?? nil, path))
                        continue
                    }
                    guard let dir, dir < UInt64(dirs.count) else { return nil }
                    let name = join(dirs[Int(dir)], path)
                    if n == 0 { files[0] = name } else { files.append(name) }
                }
            }
        }
        guard !r.failed, r.at <= programStart else { return nil }
        r.at = programStart

        var sequences: [(start: UInt64, end: UInt64)] = []
        // Rows: kept in program order per sequence, sorted at the end.
        var addresses: [UInt64] = [], lines: [UInt32] = [], fileIndexes: [UInt32] = []
        var address: UInt64 = 0, opIndex: UInt64 = 0, file: UInt64 = 1, line: UInt32 = 1
        var sequenceFirst = 0           // index of the sequence's first kept row
        var dropped: (address: UInt64, line: UInt32, file: UInt32)?  // the last row compaction dropped
        var defined = files
        var sequenceHighest: UInt64 = 0
        var irregular = false

        func advance(_ operations: UInt64) {
            if maxOps == 1 {
                address &+= minInstLength &* operations
            } else {
                address &+= minInstLength &* ((opIndex &+ operations) / maxOps)
                opIndex = (opIndex &+ operations) % maxOps
            }
        }
        func row(end: Bool) {
            // Compaction assumes addresses that never go back within a sequence, as DWARF says.
            if address < sequenceHighest { irregular = true }
            sequenceHighest = address
            let f = end ? endOfSequence : UInt32(truncatingIfNeeded: min(file, UInt64(UInt32.max - 1)))
            if compact {
                let last = addresses.count - 1
                if end {
                    // A dropped row at the end's own address sorts after it and still answers there.
                    if let d = dropped, d.address == address {
                        addresses.append(d.address); lines.append(d.line); fileIndexes.append(d.file)
                    }
                } else {
                    if last >= sequenceFirst, addresses[last] == address {
                        // An earlier row at the same address is never an answer.
                        addresses.removeLast(); lines.removeLast(); fileIndexes.removeLast()
                    }
                    let prev = addresses.count - 1
                    if prev >= sequenceFirst, lines[prev] == line, fileIndexes[prev] == f {
                        dropped = (address, line, f)
                        return
                    }
                }
                dropped = nil
            }
            addresses.append(address); lines.append(line); fileIndexes.append(f)
        }

        while r.at < r.end, !r.failed {
            let opcode = UInt64(r.u8())
            if opcode >= opcodeBase {
                guard lineRange != 0 else { return nil }
                let adjusted = opcode - opcodeBase
                line = UInt32(truncatingIfNeeded: Int64(line) &+ lineBase &+ Int64(adjusted % lineRange))
                advance(adjusted / lineRange)
                row(end: false)
                continue
            }
            switch opcode {
            case 0:
                let length = r.uleb()
                guard length > 0, length <= UInt64(r.end - r.at) else { return nil }
                let next = r.at + Int(length)
                switch r.u8() {
                case 1:  // DW_LNE_end_sequence
                    row(end: true)
                    if let first = addresses.indices.contains(sequenceFirst) ? addresses[sequenceFirst] : nil {
                        sequences.append((first, address))
                    }
                    sequenceFirst = addresses.count
                    sequenceHighest = 0
                    dropped = nil
                    address = 0; opIndex = 0; file = 1; line = 1
                case 2:  // DW_LNE_set_address
                    address = r.fixed(Int(length) - 1)
                    opIndex = 0
                case 3:  // DW_LNE_define_file
                    guard let name = r.cString() else { return nil }
                    let dir = r.uleb()
                    guard dir < UInt64(dirs.count) else { return nil }
                    defined.append(join(dirs[Int(dir)], name))
                default:
                    break
                }
                r.at = next
            case 1:  // DW_LNS_copy
                row(end: false)
            case 2: advance(r.uleb())                                                          // advance_pc
            case 3: line = UInt32(truncatingIfNeeded: Int64(line) &+ r.sleb())                 // advance_line
            case 4: file = r.uleb()                                                            // set_file
            case 5, 12: _ = r.uleb()                                                           // set_column, set_isa
            case 6, 7, 10, 11: break                                                           // flags
            case 8: if lineRange != 0 { advance((255 - opcodeBase) / lineRange) }              // const_add_pc
            case 9: address &+= r.fixed(2); opIndex = 0                                        // fixed_advance_pc
            default:
                for _ in 0..<standardLengths[Int(opcode) - 1] { _ = r.uleb() }
            }
        }
        guard !r.failed else { return nil }
        // The rows libdw sorts: by address, an end of sequence first, then program order.
        var order = Array(addresses.indices)
        order.sort { a, b in
            if addresses[a] != addresses[b] { return addresses[a] < addresses[b] }
            let ea = fileIndexes[a] == endOfSequence, eb = fileIndexes[b] == endOfSequence
            if ea != eb { return ea }
            return a < b
        }
        let table = LineTable(files: defined, addresses: order.map { addresses[$0] }, lines: order.map { lines[$0] },
                              fileIndexes: order.map { fileIndexes[$0] })
        sequences.sort { $0.start < $1.start }
        let overlaps = irregular || zip(sequences, sequences.dropFirst()).contains { $1.start < $0.end }
        return (table, overlaps)
    }

    private init(files: [String?], addresses: [UInt64], lines: [UInt32], fileIndexes: [UInt32]) {
        self.files = files
        self.addresses = addresses
        self.lines = lines
        self.fileIndexes = fileIndexes
    }
}
