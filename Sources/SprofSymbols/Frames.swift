import SprofProfile

/// One named frame. A single sampled address can yield several of these when inlining happened.
public struct SymbolizedFrame: Hashable, Sendable {
    /// The function name to display: demangled when enabled, and for Swift the short form
    /// (`Type.method(label:)`, as `swift demangle --simplified` prints it) unless
    /// ``SymbolizerOptions/fullNames``; `[module+0xOFFSET]` when the address cannot be named,
    /// so that a frame is never dropped. Two different functions can share a short name: tell
    /// them apart by ``fullName`` (or ``systemName``).
    public var name: String
    /// The full demangled name (`static qsl_bench.MatchingEngine.sweepBestAsk(book: inout
    /// qsl_bench.OrderBook, …) -> Swift.UInt32`) when ``name`` is a shortened form of it; nil
    /// when ``name`` is already the full name.
    public var fullName: String?
    /// The name as the binary spells it (the mangled linkage name from `.symtab`, `.dynsym`, a
    /// DWARF `DW_AT_linkage_name` or the JIT map), without any `@VERSION` suffix; nil for frames
    /// named by position (`[module+0xOFFSET]`) or by a DWARF `DW_AT_name` without a linkage name.
    public var systemName: String?
    /// Where the code lives.
    public var kind: FrameKind
    /// The source file from DWARF line information, when available.
    public var sourceFile: String?
    /// The source line: for the innermost frame the sampled line, for an inlined frame's caller
    /// the line of the inlined call.
    public var line: Int?
    /// Basename of the mapped file, or `[kernel.kallsyms]`, `[module]`, `[vdso]`, `[jit]`, `[unknown]`.
    public var module: String

    /// Creates a frame.
    public init(name: String, kind: FrameKind, sourceFile: String? = nil, line: Int? = nil, module: String,
                fullName: String? = nil, systemName: String? = nil) {
        self.name = name
        self.fullName = fullName
        self.systemName = systemName
        self.kind = kind
        self.sourceFile = sourceFile
        self.line = line
        self.module = module
    }
}

/// What the symbolizer should work out, and where it looks for files.
public struct SymbolizerOptions: Sendable {
    /// Demangle Swift, C++ and Rust names; when false, raw linkage names are returned.
    public var demangle: Bool
    /// Show full demangled names (`sprof report --full-names`): Swift names with their module,
    /// parameter types and result type. Off by default: frames show short Swift names and carry
    /// the full one in ``SymbolizedFrame/fullName``.
    public var fullNames: Bool
    /// Report functions inlined at the sampled address as frames of their own (needs DWARF).
    public var inlineFrames: Bool
    /// Fill in `sourceFile` and `line` from DWARF line tables.
    public var sourceLines: Bool
    /// Absolute roots searched for separate debug files, both by build-id
    /// (`<root>/.build-id/xx/rest.debug`) and by `.gnu_debuglink` (`<root>/<binary's dir>/name`).
    /// The binary's own directory and its `.debug/` subdirectory are always searched too.
    public var debugDirectories: [String]
    /// Where inflated copies of compressed separate debug files are kept and looked up
    /// (``DebugFileCache``); nil opens the debug files as they are every time. The default is
    /// ``DebugFileCache/standard`` (`SPROF_DEBUG_CACHE`, else `~/.cache/sprof/debug`).
    public var debugCache: DebugFileCache?
    /// Where JIT compilers write `perf-PID.map` files. Configurable so tests need not touch `/tmp`.
    public var jitMapDirectory: String
    /// The kernel symbol list; configurable so tests can supply a synthetic one.
    public var kallsymsPath: String

    /// Creates options; the defaults suit a normal system.
    public init(demangle: Bool = true, inlineFrames: Bool = true, sourceLines: Bool = true,
                debugDirectories: [String] = ["/usr/lib/debug"], jitMapDirectory: String = "/tmp",
                kallsymsPath: String = "/proc/kallsyms", fullNames: Bool = false,
                debugCache: DebugFileCache? = .standard) {
        self.debugCache = debugCache
        self.demangle = demangle
        self.fullNames = fullNames
        self.inlineFrames = inlineFrames
        self.sourceLines = sourceLines
        self.debugDirectories = debugDirectories
        self.jitMapDirectory = jitMapDirectory
        self.kallsymsPath = kallsymsPath
    }
}
