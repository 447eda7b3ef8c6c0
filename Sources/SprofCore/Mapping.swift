/// A file (or anonymous/special region) mapped executable into a process, as reported by an
/// MMAP2 record or read from `/proc/PID/maps`.
public struct Mapping: Hashable, Sendable {
    /// First mapped address.
    public var start: ProcessAddress
    /// One past the last mapped address.
    public var end: ProcessAddress
    /// File offset of `start` (the mmap `pgoff`, in bytes).
    public var fileOffset: UInt64
    /// The path as the kernel reported it: an absolute path, or `[vdso]`, `[vsyscall]`,
    /// `//anon`, `[anon:…]`, `/memfd:…`, and so on.
    public var path: String
    /// The GNU build-id when the kernel supplied it (MMAP2 with `build_id=1`); empty otherwise.
    public var buildID: [UInt8]

    /// Creates a mapping.
    public init(start: ProcessAddress, end: ProcessAddress, fileOffset: UInt64, path: String, buildID: [UInt8] = []) {
        self.start = start
        self.end = end
        self.fileOffset = fileOffset
        self.path = path
        self.buildID = buildID
    }

    /// Whether `address` lies in `[start, end)`.
    public func contains(_ address: ProcessAddress) -> Bool { address >= start && address < end }

    /// The last path component, used in `[module+0xOFFSET]` frames.
    public var moduleName: String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        let name = path[path.index(after: slash)...]
        return name.isEmpty ? path : String(name)
    }
}
