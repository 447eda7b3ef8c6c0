/// What kind of code a folded frame stands for, read from its annotation suffix.
///
/// The suffixes are the ones flamegraph.pl and inferno understand: `_[k]` kernel, `_[j]` JIT-compiled,
/// `_[i]` inlined. They only choose a colour; the suffix stays part of the frame name everywhere.
/// Other bracketed suffixes (such as `_[w]` for waker stacks) count as ``user``.
/// Named apart from `SprofSymbols.FrameKind` (the symbolizer's view of a frame) so that both can be
/// imported together, as the `Sprof` facade does, without ambiguity.
public enum FoldedFrameKind: Sendable, Equatable, CaseIterable {
    /// Ordinary user-space code (also anything without a recognised suffix).
    case user
    /// Kernel code, suffix `_[k]`.
    case kernel
    /// JIT-compiled code, suffix `_[j]`.
    case jit
    /// A frame that was inlined into its caller, suffix `_[i]`.
    case inlined

    /// Detects the kind from a folded frame name, e.g. `do_syscall_64_[k]` is ``kernel``.
    public init(frameName: some StringProtocol) {
        self = Self.detect(Array(frameName.utf8.suffix(4))[...])
    }

    /// The suffix a producer appends to a frame name to mark this kind (empty for ``user``).
    public var suffix: String {
        switch self {
        case .user: return ""
        case .kernel: return "_[k]"
        case .jit: return "_[j]"
        case .inlined: return "_[i]"
        }
    }

    /// Byte-level detection used by the renderer, which never materialises names as Strings.
    static func detect<C: Collection>(_ bytes: C) -> FoldedFrameKind where C.Element == UInt8, C.Index == Int {
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
