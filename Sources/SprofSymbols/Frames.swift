/// What kind of code a symbolized frame is in. The folding stage turns this into the `_[k]`,
/// `_[j]` and `_[i]` annotations, so names themselves never carry a suffix.
public enum FrameKind: Sendable, Hashable {
    /// Ordinary user-space code in a mapped file (including the vdso).
    case user
    /// Kernel code (core kernel or a module).
    case kernel
    /// Code generated at run time, named through `/tmp/perf-PID.map`.
    case jit
    /// A function that the compiler inlined into its caller; the caller follows it in the list.
    case inlined
}

/// One named frame. A single sampled address can yield several of these when inlining happened.
public struct SymbolizedFrame: Hashable, Sendable {
    /// The function name, demangled when enabled; `[module+0xOFFSET]` or `[unknown]` when the
    /// address cannot be named, so that a frame is never dropped.
    public var name: String
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
    public init(name: String, kind: FrameKind, sourceFile: String? = nil, line: Int? = nil, module: String) {
        self.name = name
        self.kind = kind
        self.sourceFile = sourceFile
        self.line = line
        self.module = module
    }
}

/// What the symbolizer should work out, and where it looks for files.
public struct SymbolizerOptions: Sendable {
    /// Demangle Swift and C++ names; when false, raw linkage names are returned.
    public var demangle: Bool
    /// Report functions inlined at the sampled address as frames of their own (needs DWARF).
    public var inlineFrames: Bool
    /// Fill in `sourceFile` and `line` from DWARF line tables.
    public var sourceLines: Bool
    /// Absolute roots searched for separate debug files, both by build-id
    /// (`<root>/.build-id/xx/rest.debug`) and by `.gnu_debuglink` (`<root>/<binary's dir>/name`).
    /// The binary's own directory and its `.debug/` subdirectory are always searched too.
    public var debugDirectories: [String]
    /// Where JIT compilers write `perf-PID.map` files. Configurable so tests need not touch `/tmp`.
    public var jitMapDirectory: String
    /// The kernel symbol list; configurable so tests can supply a synthetic one.
    public var kallsymsPath: String

    /// Creates options; the defaults suit a normal system.
    public init(demangle: Bool = true, inlineFrames: Bool = true, sourceLines: Bool = true,
                debugDirectories: [String] = ["/usr/lib/debug"], jitMapDirectory: String = "/tmp",
                kallsymsPath: String = "/proc/kallsyms") {
        self.demangle = demangle
        self.inlineFrames = inlineFrames
        self.sourceLines = sourceLines
        self.debugDirectories = debugDirectories
        self.jitMapDirectory = jitMapDirectory
        self.kallsymsPath = kallsymsPath
    }
}
