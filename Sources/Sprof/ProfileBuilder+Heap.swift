import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// The heap profile's builder: probe samples become allocations and frees (``HeapAccounting``).
extension ProfileBuilder {
    // MARK: Heap profiles (`--heap`, issue 19)

    /// Turns this builder into a heap-profile builder: samples of the events in `roles` are
    /// allocations, frees, or allocator entries and returns (see ``HeapRole``), every other
    /// sample is left out, and the profile's sample types are Go's four heap measures with period
    /// type `space`/`bytes` and the sampling rate as period.
    func enableHeap(rate: Int, roles: [UInt64: HeapRole]) {
        heap = HeapAccounting(rate: rate, roles: roles)
        // The default type is alloc_space, not Go's inuse_space (its last type, a live heap's
        // snapshot): a recording runs to the command's end, when only what was never freed is in
        // use; that has its own view and leak line.
        building = ProfileBuilding(sampleTypes: HeapOptions.sampleTypes, defaultSampleType: 1,
                                   periodType: Profile.ValueType(type: "space", unit: "bytes"), period: Int64(max(rate, 1)))
    }

    /// Estimated in-use bytes over time (CLOCK_MONOTONIC ns), at most one point per 10 ms; empty
    /// unless heap profiling.
    var heapTimeline: [(time: UInt64, bytes: Double)] { heap?.timeline ?? [] }

    /// A user register of a DWARF-mode sample by perf register number (DI = 5, SI = 4).
    static func register(_ number: Int, of sample: SampleRecord) -> UInt64? {
        guard let i = UserRegisters.sampled.firstIndex(of: number), i < sample.userRegisters.count else { return nil }
        return sample.userRegisters[i]
    }

    /// Whether a probed allocator call returning to `returnAddress` was made by the allocator
    /// itself (glibc's realloc(NULL, n) calls malloc): only the outermost call counts.
    func calledByAllocator(_ returnAddress: UInt64, sample: SampleRecord, heap: HeapAccounting<StackKey>) -> Bool {
        guard heap.allocatorPath != nil,
              let m = processes.process(sample.pid, tid: sample.tid).mapping(containing: ProcessAddress(returnAddress)) else { return false }
        return heap.isInsideAllocator(path: m.path, fileOffset: returnAddress - m.start.rawValue + m.fileOffset)
    }

    /// Keeps only the probe samples of `pid` and the processes its tree forks (see
    /// ``HeapAccounting/followed``).
    func followHeap(of pid: Int32) { heap?.followed = [pid] }

    /// See ``HeapAccounting/lossNotices(lost:)``; empty unless heap profiling.
    /// The heap probes' own lost records when the kernel tells them apart, else all of them.
    func heapLossNotices(_ s: RecordingSession.Statistics) -> [String] { heap?.lossNotices(lost: s.lostHeap ?? s.lost, callGraph: callGraph) ?? [] }

    /// Attached heap profiles: the allocator's file and its probed functions (file offsets).
    func setAllocator(path: String, functions: [Range<UInt64>]) {
        heap?.allocatorPath = path
        heap?.allocatorFunctions = functions
    }

    /// Drops the probe point (`sprof_heap_sampled`) and anything else of the preload library
    /// below the interposed function, so that stacks end in `malloc`, `calloc`, … as called.
    /// Returns true, with no frame left, when every frame was the library's: the record has no
    /// caller (`--call-graph none` takes the probe's IP alone), so which allocator function was
    /// called is unknown (see ``allocatorMarker``).
    static func trimHeapProbe(_ unwound: inout UnwoundStack, process: ProcessState) -> Bool {
        func inLibrary(_ frame: StackFrame) -> Bool {
            !frame.isKernel && process.mapping(containing: frame.address)?.path.hasSuffix("/" + HeapOptions.libraryName) == true
        }
        if !unwound.frames.isEmpty && unwound.frames.allSatisfy(inLibrary) {
            unwound.frames.removeAll()
            return true
        }
        var drop = 0
        while drop + 1 < unwound.frames.count, inLibrary(unwound.frames[drop]), inLibrary(unwound.frames[drop + 1]) { drop += 1 }
        if drop > 0 { unwound.frames.removeFirst(drop) }
        return false
    }

    /// The frame of a heap sample whose stack is the probe alone (`--call-graph none`): one of
    /// the interposed functions was called, which one the record does not tell.
    static let allocatorMarker = "[malloc family]"

    /// Adds the heap samples, in the same fixed order as the CPU samples.
    func addHeapSamples(_ heap: HeapAccounting<StackKey>) {
        let ordered = heap.values().map { (key: $0.key, value: $0.value) }.sorted { a, b in
            a.key.thread != b.key.thread ? a.key.thread < b.key.thread : a.key.refs.lexicographicallyPrecedes(b.key.refs)
        }
        for (key, values) in ordered { building.add(stack: stackIndex(key.refs), thread: key.thread, values: values) }
    }
}
