import SprofCore

/// One position in source code: a function and the file and line of the code there.
public struct SourcePosition: Hashable, Sendable {
    /// The function's display name (demangled, short form).
    public var function: String
    /// The source file as DWARF names it (absolute when the compile directory was), or nil.
    public var file: String?
    /// The line, or nil when DWARF has none for the address.
    public var line: Int?

    /// Creates a position.
    public init(function: String, file: String?, line: Int?) {
        self.function = function
        self.file = file
        self.line = line
    }
}

/// An ELF file on disk opened for reading its code, as `sprof annotate` needs it: the build-id
/// that says whether it is still the file that was recorded, the function containing an address,
/// the instruction bytes, and the inline chain and line of each instruction (DWARF, from the
/// file itself, a separate debug file, or a debuginfod server when `DEBUGINFOD_URLS` is set:
/// libdw asks it through the standard find callbacks).
///
/// Addresses are the ELF's own virtual addresses (`p_vaddr` space); ``fileAddress(of:mappingStart:fileOffset:)``
/// turns a recorded process address into one. Not thread-safe.
public final class BinaryCode {
    private let file: ElfFile
    /// The path the file was opened from.
    public let path: String

    /// Opens `path`; nil when it cannot be read as ELF.
    /// - Parameter debugDirectories: roots searched for separate debug files (see ``SymbolizerOptions/debugDirectories``).
    public init?(path: String, debugDirectories: [String] = ["/usr/lib/debug"]) {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let file = ElfFile(path: path, moduleName: name, context: DwflContext(debugDirectories: debugDirectories)) else { return nil }
        self.file = file
        self.path = path
    }

    /// The GNU build-id as lowercase hex; empty when the file has none.
    public var buildID: String {
        file.buildID.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }

    /// The file address of `address`, a process address recorded inside the mapping that started
    /// at `mappingStart` with file offset `fileOffset` (the mapping's load bias removed).
    public func fileAddress(of address: UInt64, mappingStart: UInt64, fileOffset: UInt64) -> UInt64 {
        address &- file.loadBias(mapStart: mappingStart, fileOffset: fileOffset)
    }

    /// The symbol containing `fileAddress`: its display name and its half-open address range.
    /// In code no symbol names (a stripped binary), the function its `.eh_frame` entry gives,
    /// named as the symbolizer names it (`[app+0x1200]`, by its start): `sprof annotate --asm`
    /// disassembles it by address. nil when neither knows the address.
    public func function(containing fileAddress: UInt64) -> (name: String, start: UInt64, end: UInt64)? {
        guard let i = file.symbols.lookup(fileAddress) else {
            return file.cfiFunctionRange(containing: fileAddress).map { ("[\(file.moduleName)+0x\(String($0.start, radix: 16))]", $0.start, $0.end) }
        }
        var raw = file.symbols.names[i]
        if let at = raw.firstIndex(of: "@"), at != raw.startIndex, !raw.hasSuffix("@plt") { raw = String(raw[..<at]) }
        return (Naming(demangle: true, fullNames: false).name(raw).name, file.symbols.starts[i], file.symbols.ends[i])
    }

    /// `count` bytes of loaded contents at `fileAddress`, or nil outside the file's segments.
    public func bytes(at fileAddress: UInt64, count: Int) -> [UInt8]? {
        file.bytes(at: fileAddress, count: count)
    }

    /// The inline chain at `fileAddress`, innermost first (inlined callees, then the containing
    /// function), with each entry's file and line; one entry named by the symbol when there is no DWARF.
    public func sourcePositions(at fileAddress: UInt64) -> [SourcePosition] {
        let naming = Naming(demangle: true, fullNames: false)
        let info = file.debugInfo(at: fileAddress, inlines: true, lines: true, naming: naming)
        var out = info.inlined.map { SourcePosition(function: $0.name.name, file: $0.file, line: $0.line) }
        let name = function(containing: fileAddress)?.name ?? "[\(file.moduleName)+0x\(String(fileAddress, radix: 16))]"
        out.append(SourcePosition(function: name, file: info.file, line: info.line))
        return out
    }
}
