/// A PT_LOAD program header: enough to turn a mapping into a load bias.
public struct LoadSegment: Equatable, Sendable {
    /// `p_offset`.
    public var offset: UInt64
    /// `p_vaddr`.
    public var vaddr: UInt64
    /// `p_filesz`.
    public var fileSize: UInt64
    /// `p_flags & PF_X`.
    public var executable: Bool

    /// Creates a segment.
    public init(offset: UInt64, vaddr: UInt64, fileSize: UInt64, executable: Bool) {
        self.offset = offset
        self.vaddr = vaddr
        self.fileSize = fileSize
        self.executable = executable
    }
}

/// The load bias of a mapping (process address minus file address), the one rule that both
/// unwinding and symbolization use: `map_start + (p_offset - pgoff) - p_vaddr` for the PT_LOAD
/// that holds the mapping's file offset. `map_start - pgoff` alone is wrong for some linkers.
///
/// Linkers such as lld pack several segments into one file page (`R` at offset 0, `R E` at
/// 0x6d0, both in page 0); the page alone cannot tell them apart, but sampled mappings are the
/// executable ones, so executable segments are tried first. Falls back to `start - pgoff` (right
/// whenever `p_vaddr == p_offset`) when no segment matches. For ET_EXEC files the result is 0.
public func loadBias(mappingStart start: UInt64, fileOffset pgoff: UInt64, segments: [LoadSegment]) -> UInt64 {
    let page: UInt64 = 0x1000
    func holds(_ seg: LoadSegment) -> Bool {
        seg.offset & ~(page - 1) <= pgoff && pgoff < seg.offset &+ max(seg.fileSize, 1)
    }
    guard let seg = segments.first(where: { $0.executable && holds($0) }) ?? segments.first(where: holds) else {
        return start &- pgoff
    }
    return start &+ (seg.offset &- pgoff) &- seg.vaddr
}
