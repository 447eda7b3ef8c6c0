extension Profile {
    /// True for a heap profile: pprof's `space`/`bytes` period type or Go's `alloc_*`/`inuse_*`
    /// sample types (what `sprof run --heap` writes), as against a CPU (or wall, off-CPU) one.
    public var isHeapProfile: Bool {
        periodType.unit == "bytes" || sampleTypes.contains { $0.type.hasPrefix("alloc_") || $0.type.hasPrefix("inuse_") }
    }

    /// The one line for comparing profiles of two kinds (heap against CPU), or of two sampled
    /// events (cpu-clock against page-faults, cycles against instructions), which `sprof diff`
    /// and the web UI's Compare both refuse, as `go tool pprof -diff_base` refuses "incompatible"
    /// profiles; nil when both are of one kind. `baseName` and `newName` name the two in the line.
    ///
    /// The event is the period type (``sampledMeasure``): both profiles share `samples`/`count`,
    /// but one sample of page-faults is not one of CPU time, so shares of one are no baseline for
    /// the other. A profile without a measure of its own (folded stacks: `samples`/`count` only)
    /// compares with any CPU profile, as its samples are all it has.
    public static func kindMismatch(base: Profile, baseName: String, new: Profile, newName: String) -> String? {
        let bHeap = base.isHeapProfile, nHeap = new.isHeapProfile
        func types(_ p: Profile) -> String { p.sampleTypes.map(\.description).joined(separator: ", ") }
        guard bHeap == nHeap else {
            return "incompatible sample types: \(baseName) is a \(bHeap ? "heap" : "CPU") profile (\(types(base))), \(newName) a \(nHeap ? "heap" : "CPU") profile (\(types(new))); compare two profiles of one kind"
        }
        guard !bHeap, let b = base.sampledMeasure, let n = new.sampledMeasure, b != n else { return nil }
        func event(_ p: Profile, _ measure: ValueType) -> String {
            p.metadata.event.isEmpty ? measure.type : p.metadata.event
        }
        return "incompatible sample types: \(baseName) samples \(event(base, b)) (\(b)), \(newName) samples \(event(new, n)) (\(n)); compare two profiles of one event (record both with the same -e)"
    }

    /// What one sample of a CPU profile stands for: its period type (`cpu`/`nanoseconds` for the
    /// clock events, `EVENT`/`count` for the others, as `sprof run` writes it and pprof
    /// reads it), nil when that is the generic `samples`/`count` of a profile that names no event
    /// (folded stacks).
    public var sampledMeasure: ValueType? {
        periodType == ValueType(type: "samples", unit: "count") ? nil : periodType
    }
}
