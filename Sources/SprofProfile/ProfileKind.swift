extension Profile {
    /// True for a heap profile: pprof's `space`/`bytes` period type or Go's `alloc_*`/`inuse_*`
    /// sample types (what `sprof run --heap` writes), as against a CPU (or wall, off-CPU) one.
    public var isHeapProfile: Bool {
        periodType.unit == "bytes" || sampleTypes.contains { $0.type.hasPrefix("alloc_") || $0.type.hasPrefix("inuse_") }
    }

    /// The one line for comparing profiles of two kinds (heap against CPU), which `sprof diff`
    /// and the web UI's Compare both refuse, as `go tool pprof -diff_base` refuses "incompatible"
    /// profiles; nil when both are of one kind. `baseName` and `newName` name the two in the line.
    public static func kindMismatch(base: Profile, baseName: String, new: Profile, newName: String) -> String? {
        let bHeap = base.isHeapProfile, nHeap = new.isHeapProfile
        guard bHeap != nHeap else { return nil }
        func types(_ p: Profile) -> String { p.sampleTypes.map(\.description).joined(separator: ", ") }
        return "incompatible sample types: \(baseName) is a \(bHeap ? "heap" : "CPU") profile (\(types(base))), \(newName) a \(nHeap ? "heap" : "CPU") profile (\(types(new))); compare two profiles of one kind"
    }
}
