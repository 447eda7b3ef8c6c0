import SprofCore

/// Turns sampled addresses into named frames: ELF symbols (with separate debug files and
/// MiniDebugInfo), inline frames and source lines from DWARF, the vdso, kernel symbols and JIT maps.
///
/// Every file is opened once and every (file, address) worked out once; after warm-up a lookup is
/// a couple of dictionary hits. Not thread-safe: one pipeline thread owns a symbolizer.
public final class Symbolizer {
    /// What to work out and where to look.
    public let options: SymbolizerOptions

    private let context: DwflContext
    /// Opened files by path plus build-id; nil records a file that could not be opened, so that
    /// it is not retried for every sample.
    private var files: [String: ElfFile?] = [:]
    /// Resolved mappings by start address, then compared whole: hashing a path per frame costs
    /// more than comparing a few strings that usually share storage.
    private var mappings: [UInt64: [(mapping: Mapping, resolved: ResolvedMapping)]] = [:]
    private var lastMapping: Mapping?
    private var lastResolved: ResolvedMapping?
    private var jitMaps: [Int32: JitMap] = [:]
    private var kernel: KernelSymbols?
    private var kernelLoader: KernelSymbolsLoader?
    private var kernelCache: [UInt64: SymbolizedFrame] = [:]
    private var vdsoFile: ElfFile??

    /// One line per problem that cost names or frames without failing a lookup (a file whose
    /// debug sections this libdw cannot read, a debuginfod server that cannot be reached), in the
    /// order met, then how many debug files came from debuginfod servers; for the caller to show once.
    public var notices: [String] {
        problems + (debuginfodFiles > 0 ? ["debuginfod: debug info for \(debuginfodFiles) file\(debuginfodFiles == 1 ? "" : "s") from \(DebuginfodClient.configuredURLs ?? "DEBUGINFOD_URLS")"] : [])
    }
    private var problems: [String] = []
    /// Files whose debug file a debuginfod server supplied (now or earlier, through the cache).
    public private(set) var debuginfodFiles = 0
    private var debuginfodUnreachable = false
    private var debuginfod: DebuginfodClient?
    private var noticedFiles = Set<String>()

    /// How many ELF files have been opened; lets tests check that nothing is re-opened per lookup.
    internal private(set) var openedFileCount = 0

    /// Creates a symbolizer; nothing is read until the first lookup.
    public init(options: SymbolizerOptions = .init()) {
        self.options = options
        self.context = DwflContext(debugDirectories: options.debugDirectories, debugCache: options.debugCache)
    }

    // MARK: User space

    /// Frames for one user-space address inside `mapping` of process `pid`, innermost first:
    /// inlined callees (kind `.inlined`), then the containing function. Never empty.
    ///
    /// Pass `StackFrame.lookupAddress`, so that a return address names the call, not the
    /// instruction after it.
    public func symbolize(_ address: ProcessAddress, in mapping: Mapping, pid: Int32) -> [SymbolizedFrame] {
        let resolved = resolve(mapping, pid: pid)
        switch resolved.kind {
        case .anonymous:
            if let name = jitMap(pid).lookup(address.rawValue) {
                return [jitFrame(name)]
            }
            // Never a bare [unknown]: the mapping's name and the offset in it.
            let offset = address.rawValue &- mapping.start.rawValue &+ mapping.fileOffset
            return [unknownFrame(module: Self.anonymousName(mapping), offset: offset)]
        case .unreadable:
            let offset = address.rawValue &- mapping.start.rawValue &+ mapping.fileOffset
            return [unknownFrame(module: mapping.moduleName, offset: offset)]
        case .elf(let file, let bias):
            let fileAddress = FileAddress(address.rawValue &- bias)
            if let hit = file.frameCache[fileAddress.rawValue] { return hit }
            let frames = symbolize(fileAddress, in: file)
            file.frameCache[fileAddress.rawValue] = frames
            return frames
        }
    }

    /// An address outside every known mapping: named from the process's JIT map when it is there,
    /// else `[unmapped+0xADDRESS]` (the address itself: there is no mapping to be relative to).
    public func symbolizeUnmapped(_ address: ProcessAddress, pid: Int32) -> SymbolizedFrame {
        if let name = jitMap(pid).lookup(address.rawValue) {
            return jitFrame(name)
        }
        return unknownFrame(module: "[unmapped]", offset: address.rawValue)
    }

    /// `anon` for anonymous memory (`//anon`, no path), `anon:NAME` for named anonymous memory,
    /// the memfd's name for a memfd.
    private static func anonymousName(_ mapping: Mapping) -> String {
        let path = mapping.path
        if path.isEmpty || path.hasPrefix("//anon") { return "anon" }
        if path.hasPrefix("/memfd:") { return MappedFiles.filePath(String(path.dropFirst("/memfd:".count))) }
        return mapping.moduleName
    }

    /// Forgets per-process state (the JIT map) when a process execs or exits; file state is
    /// shared between processes and kept.
    public func forgetProcess(_ pid: Int32) {
        jitMaps[pid] = nil
        mappings = mappings.compactMapValues { entries in
            let kept = entries.filter { if case .anonymous = $0.resolved.kind { return false } else { return true } }
            return kept.isEmpty ? nil : kept
        }
        lastMapping = nil
        lastResolved = nil
    }

    // MARK: Kernel

    /// Starts reading kallsyms on a thread of its own, for a caller about to name user frames
    /// first: the kernel spends ~80 ms generating the file's 5 MB of text, about as long as
    /// naming a short profile's user frames, so on a machine with a free CPU the two overlap.
    /// ``symbolizeKernel(_:)`` waits for it. No effect once the table is loaded.
    public func prefetchKernelSymbols() {
        guard kernel == nil, kernelLoader == nil else { return }
        kernelLoader = KernelSymbolsLoader(path: options.kallsymsPath)
    }

    /// A kernel address, named from `/proc/kallsyms` (read once, on first use). Names are plain:
    /// the folding stage adds the kernel annotation from `kind`. When kallsyms is unreadable or
    /// its addresses are hidden (`kptr_restrict`), every kernel frame is `[kernel.kallsyms]`.
    public func symbolizeKernel(_ address: ProcessAddress) -> SymbolizedFrame {
        if let hit = kernelCache[address.rawValue] { return hit }
        if kernel == nil {
            kernel = kernelLoader?.wait() ?? KernelSymbols(contentsOf: options.kallsymsPath) ?? KernelSymbols()
            kernelLoader = nil
        }
        let frame: SymbolizedFrame
        if let (name, module) = kernel!.lookup(address.rawValue) {
            frame = SymbolizedFrame(name: name, kind: .kernel, module: module)
        } else {
            frame = SymbolizedFrame(name: KernelSymbols.kernelModule, kind: .kernel, module: KernelSymbols.kernelModule)
        }
        kernelCache[address.rawValue] = frame
        return frame
    }

    // MARK: Internals

    private enum MappingKind {
        case elf(ElfFile, bias: UInt64)
        /// Anonymous or memfd memory: JIT code, if anything.
        case anonymous
        /// A file that could not be opened or parsed.
        case unreadable
    }

    private final class ResolvedMapping {
        let kind: MappingKind
        init(_ kind: MappingKind) { self.kind = kind }
    }

    private func resolve(_ mapping: Mapping, pid: Int32) -> ResolvedMapping {
        // Consecutive frames of a stack often share a mapping; comparing is cheaper than hashing.
        if let lastMapping, let lastResolved, lastMapping == mapping { return lastResolved }
        let resolved: ResolvedMapping
        if let known = mappings[mapping.start.rawValue]?.first(where: { $0.mapping == mapping }) {
            resolved = known.resolved
        } else {
            resolved = ResolvedMapping(classify(mapping, pid: pid))
            mappings[mapping.start.rawValue, default: []].append((mapping, resolved))
        }
        lastMapping = mapping
        lastResolved = resolved
        return resolved
    }

    private func classify(_ mapping: Mapping, pid: Int32) -> MappingKind {
        let path = mapping.path
        var file: ElfFile?
        if path == "[vdso]" {
            file = vdso()
        } else if MappedFiles.isFileMapping(path) {
            // A deleted or replaced file (or a memfd) is read through the process while it lives,
            // or through the descriptor the unwinder kept (MappedFiles).
            let name = basename(MappedFiles.filePath(path.hasPrefix("/memfd:") ? String(path.dropFirst(7)) : path))
            if let readable = MappedFiles.readablePath(mapping, pid: pid) {
                file = elfFile(path: readable, moduleName: name, buildID: mapping.buildID)
            }
            if file == nil, let other = MappedFiles.readablePath(mapping, pid: pid, replaced: true) {
                file = elfFile(path: other, moduleName: name, buildID: mapping.buildID)
            }
            if file == nil { return path.hasPrefix("/memfd:") ? .anonymous : .unreadable }
        } else if path.hasPrefix("[") && !path.hasPrefix("[anon") {
            return .unreadable  // [vsyscall], [stack], [heap]: nothing to read
        } else {
            return .anonymous
        }
        guard let file else { return .unreadable }
        return .elf(file, bias: file.loadBias(mapStart: mapping.start.rawValue, fileOffset: mapping.fileOffset))
    }

    private func elfFile(path: String, moduleName: String, buildID: [UInt8]) -> ElfFile? {
        let key = buildID.isEmpty ? path : path + "\u{0}" + hex(buildID)
        if let known = files[key] { return known }
        var file = ElfFile(path: path, moduleName: moduleName, context: context)
        if file != nil { openedFileCount += 1 }
        // A file rebuilt since it was mapped would give confidently wrong names: better none.
        if let f = file, !buildID.isEmpty, !f.buildID.isEmpty, f.buildID != buildID { file = nil }
        files[key] = file
        if let file { noteDebuginfod(file) }
        return file
    }

    /// Counts the debug files of stripped files that a debuginfod server supplied, and notices
    /// when the servers cannot be reached: then one notice, and no more queries, libdw's included
    /// (each would wait out the timeout again). libdw has already asked by the time a file is open
    /// (its symbol table comes from the debug file) but does not say where its debug file came
    /// from, so the same query is asked here: answered from libdebuginfod's cache when libdw got it.
    private func noteDebuginfod(_ file: ElfFile) {
        if !debuginfodUnreachable, let (urls, reason) = DebuginfodClient.unreachable {
            debuginfodUnreachable = true
            problems.append(Self.unreachableNotice(urls, reason))
        }
        guard !debuginfodUnreachable, DebuginfodClient.configuredURLs != nil, !file.buildID.isEmpty,
              !file.hasOwnSymbolTable else { return }
        if debuginfod == nil { debuginfod = DebuginfodClient() }
        guard let client = debuginfod else { return }
        switch client.findDebuginfo(buildID: hex(file.buildID)) {
        case .found:
            debuginfodFiles += 1
        case .notFound:
            break
        case .unreachable(let reason):
            debuginfodUnreachable = true
            problems.append(Self.unreachableNotice(client.urls, reason))
            DebuginfodClient.disable()
        }
    }

    private static func unreachableNotice(_ urls: String, _ reason: String) -> String {
        "debuginfod: cannot reach \(urls) (\(reason)): stripped files keep [module+0x…] frames"
    }

    private func vdso() -> ElfFile? {
        if let vdsoFile { return vdsoFile }
        var file: ElfFile?
        if let image = Vdso.image() {
            file = ElfFile(path: "[vdso]", moduleName: "[vdso]", image: image, context: context)
            if file != nil { openedFileCount += 1 }
        }
        vdsoFile = .some(file)
        return file
    }

    private func jitMap(_ pid: Int32) -> JitMap {
        if let map = jitMaps[pid] { return map }
        let map = JitMap(path: options.jitMapDirectory + "/perf-\(pid).map")
        jitMaps[pid] = map
        return map
    }

    /// The uncached path: symbol, then (lazily) DWARF inline chain and line.
    private func symbolize(_ address: FileAddress, in file: ElfFile) -> [SymbolizedFrame] {
        let module = file.moduleName
        guard let index = file.symbols.lookup(address.rawValue) else {
            let start = file.cfiFunctionStart(containing: address.rawValue)
            if let name = Self.wellKnownCode(address.rawValue, functionStart: start, in: file) {
                return [SymbolizedFrame(name: name, kind: .user, module: module)]
            }
            return [unknownFrame(module: module, offset: start ?? address.rawValue)]
        }
        let name = displayName(index, in: file)
        guard options.inlineFrames || options.sourceLines else {
            return [SymbolizedFrame(name: name.name, kind: .user, module: module, fullName: name.fullName, systemName: name.systemName)]
        }
        let info = file.debugInfo(at: address.rawValue, inlines: options.inlineFrames,
                                  lines: options.sourceLines, naming: naming)
        if !file.missingDebugInfo.isEmpty, noticedFiles.insert(file.path).inserted {
            problems.append("\(file.path): its debug sections (\(file.missingDebugInfo.joined(separator: ", "))) are zstd-compressed, "
                + "which this elfutils cannot read: no inline frames or source lines for it; "
                + "objcopy --decompress-debug-sections makes them readable")
        }
        var frames = info.inlined.map {
            SymbolizedFrame(name: $0.name.name, kind: .inlined, sourceFile: $0.file, line: $0.line, module: module,
                            fullName: $0.name.fullName, systemName: $0.name.systemName)
        }
        frames.append(SymbolizedFrame(name: name.name, kind: .user, sourceFile: info.file, line: info.line, module: module,
                                      fullName: name.fullName, systemName: name.systemName))
        return frames
    }

    /// Names for code that stripped files leave unnamed but that can be recognized: the program's
    /// entry point (`_start`: the function whose CFI starts at `e_entry`, or, without CFI, the
    /// few instructions after it) and the signal trampoline (`__restore_rt`).
    private static func wellKnownCode(_ address: UInt64, functionStart: UInt64?, in file: ElfFile) -> String? {
        if let entry = file.programEntry,
           functionStart == entry || (functionStart == nil && address >= entry && address - entry < 64) {
            return "_start"
        }
        if file.bytes(at: address, count: sigreturnTrampolineCode.count) == sigreturnTrampolineCode { return "__restore_rt" }
        return nil
    }

    private func displayName(_ index: Int, in file: ElfFile) -> FunctionName {
        if let name = file.displayNames[index] { return name }
        var raw = file.symbols.names[index]
        // PLT stubs are named `function@plt` (ElfFile), as perf and objdump show them.
        let stub = raw.hasSuffix("@plt")
        // `.symtab` spells versioned definitions `__libc_start_main@@GLIBC_2.34`; the version is
        // noise in a stack and splits one function into two frames across binaries.
        // Mangled Swift and C++ names never contain '@', so it always starts a version.
        if let at = raw.firstIndex(of: "@"), at != raw.startIndex { raw = String(raw[..<at]) }
        var name = naming.name(raw)
        if stub {
            name.name += "@plt"
            name.fullName = name.fullName.map { $0 + "@plt" }
            name.systemName = raw + "@plt"
        }
        file.displayNames[index] = name
        return name
    }

    /// How linkage names become display names under these options.
    private var naming: Naming { Naming(demangle: options.demangle, fullNames: options.fullNames) }

    /// A JIT map's name: JITs of compiled languages write linkage names there too (kept as the
    /// system name when demangling changed them).
    private func jitFrame(_ raw: String) -> SymbolizedFrame {
        let name = naming.name(raw)
        return SymbolizedFrame(name: name.name, kind: .jit, module: "[jit]", fullName: name.fullName,
                               systemName: name.name == raw ? nil : raw)
    }

    /// `[libfoo.so+0x1a2b]`; bracketed modules lose their own brackets (`[vdso+0x10]`).
    private func unknownFrame(module: String, offset: UInt64) -> SymbolizedFrame {
        var label = module
        if label.hasPrefix("[") && label.hasSuffix("]") && label.count >= 2 {
            label = String(label.dropFirst().dropLast())
        }
        return SymbolizedFrame(name: "[\(label)+0x\(String(offset, radix: 16))]", kind: .user, module: module)
    }
}

private func basename(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    let name = path[path.index(after: slash)...]
    return name.isEmpty ? path : String(name)
}

/// Lowercase hex, as build-ids are written in paths and by debuginfod.
func hex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

/// A function's names as ``SymbolizedFrame`` carries them.
struct FunctionName: Hashable {
    var name: String
    var fullName: String? = nil
    var systemName: String? = nil
}

/// The one way a linkage name becomes a ``FunctionName`` (ELF symbols, DWARF linkage names, JIT
/// maps alike).
struct Naming {
    var demangle: Bool
    var fullNames: Bool

    func name(_ raw: String) -> FunctionName {
        guard demangle else { return FunctionName(name: raw, fullName: nil, systemName: raw) }
        let names = Demangler.names(of: raw, fullNames: fullNames)
        return FunctionName(name: names.name, fullName: names.fullName, systemName: raw)
    }
}
