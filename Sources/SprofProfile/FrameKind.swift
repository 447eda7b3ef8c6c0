/// What kind of code a frame stands for: the one frame-kind type, which the symbolizer sets on
/// each frame (`SymbolizedFrame.kind`), the model keeps on each location (``Profile/Location/kind``)
/// and the views read back from a folded frame's annotation suffix.
///
/// The suffixes are the ones flamegraph.pl and inferno understand: `_[k]` kernel, `_[j]` JIT-compiled,
/// `_[i]` inlined. They only choose a colour; the suffix stays part of the frame name everywhere.
/// Other bracketed suffixes (such as `_[w]` for waker stacks) count as ``user``.
public enum FrameKind: String, Sendable, Hashable, CaseIterable {
    /// Ordinary user-space code in a mapped file (including the vdso; also any folded frame
    /// without a recognised suffix).
    case user
    /// Kernel code (`[kernel.kallsyms]` or a module), suffix `_[k]`.
    case kernel
    /// Code generated at run time, named through `/tmp/perf-PID.map`, suffix `_[j]`.
    case jit
    /// A function the compiler inlined into its caller, suffix `_[i]`: a frame of an inline
    /// chain, never a whole location.
    case inlined
    /// Not code: `[truncated]` (the stack is incomplete), `[off-cpu]` and similar markers; a
    /// location only, with no suffix.
    case marker

    /// Detects the kind from a folded frame name, e.g. `do_syscall_64_[k]` is ``kernel``.
    public init(frameName: some StringProtocol) {
        self = Self.detect(Array(frameName.utf8.suffix(4))[...])
    }

    /// The suffix a producer appends to a frame name to mark this kind (empty for ``user`` and
    /// ``marker``).
    public var suffix: String {
        switch self {
        case .user, .marker: return ""
        case .kernel: return "_[k]"
        case .jit: return "_[j]"
        case .inlined: return "_[i]"
        }
    }

    /// The function a folded frame name stands for: the name without its `_[k]`, `_[j]` or
    /// `_[i]` suffix, as `sprof report`, the Top table and the transforms name functions. A flame
    /// graph's frames carry the suffix; a view asked about one of them (callers, source, a
    /// transform) answers for the function.
    public static func functionName(_ frame: String) -> String {
        let kind = FrameKind(frameName: frame)
        guard kind != .user else { return frame }
        return String(frame.dropLast(4))
    }

    /// Byte-level detection used by the renderer, which never materialises names as Strings.
    /// Never ``marker``: a folded name does not say it.
    @inlinable
    public static func detect<C: Collection>(_ bytes: C) -> FrameKind where C.Element == UInt8, C.Index == Int {
        guard bytes.count >= 4 else { return .user }
        let e = bytes.endIndex
        guard bytes[e - 4] == UInt8(ascii: "_"), bytes[e - 3] == UInt8(ascii: "["),
              bytes[e - 1] == UInt8(ascii: "]") else { return .user }
        switch bytes[e - 2] {
        case UInt8(ascii: "k"): return .kernel
        case UInt8(ascii: "j"): return .jit
        case UInt8(ascii: "i"): return .inlined
        default: return .user
        }
    }
}
