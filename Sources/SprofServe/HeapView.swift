import Foundation
import SprofFormats
import SprofProfile

/// The heap part of the Memory tab, for runs recorded with `sprof run --heap`: read from the run's
/// `profile.heap.pb.gz` (Go's four heap sample types) and `profile.heap.tsv` (estimated in-use
/// bytes over time).
///
/// Views: `heap` (totals, the in-use timeline and the leaks table, as ``Summary``), `heap-alloc`
/// and `heap-inuse` (flame-graph trees of `alloc_space` and `inuse_space`, in bytes).
enum HeapView {
    /// The run's heap profile file.
    static let profileFile = "profile.heap.pb.gz"
    /// The run's in-use timeline file (`time_s<TAB>inuse_bytes`).
    static let timelineFile = "profile.heap.tsv"
    /// Rows of the leaks table.
    static let leakRows = 50
    /// Entry points a heap stack ends in (the preload library keeps the interposed function as
    /// the leaf): the leaks table names their caller.
    static let allocators: Set<String> = ["malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc",
                                          "operator new(unsigned long)", "operator new[](unsigned long)", "swift_slowAlloc", "swift_allocObject"]

    /// One stack still holding memory at the end.
    struct Leak: Encodable {
        /// The innermost function that is not an allocator entry point (``allocators``): who
        /// allocated, rather than `malloc`.
        var function: String
        /// The stack, root first.
        var stack: [String]
        /// Estimated bytes (`inuse_space`).
        var bytes: Int64
        /// Estimated objects (`inuse_objects`).
        var objects: Int64
    }

    /// What the `heap` view returns. Values are the profile's estimates (each sample scaled as Go
    /// does); `rate` is the mean bytes between samples (1: every allocation).
    struct Summary: Encodable {
        var allocObjects: Int64
        var allocSpace: Int64
        var inuseObjects: Int64
        var inuseSpace: Int64
        var rate: Int64
        /// `[nanoseconds since the start, in-use bytes]` pairs.
        var timeline: [[UInt64]]
        /// The stacks with the most bytes in use at the end, most first (at most ``leakRows``).
        var leaks: [Leak]

        enum CodingKeys: String, CodingKey {
            case allocObjects = "alloc_objects", allocSpace = "alloc_space", inuseObjects = "inuse_objects", inuseSpace = "inuse_space"
            case rate, timeline, leaks
        }
    }

    struct Empty: Encodable {
        var empty: String
    }

    /// The JSON of `view` for run `dir`.
    /// - Throws: ``ServeError`` 500 when the heap profile cannot be read.
    static func render(_ view: String, runDirectory dir: String) throws -> Data {
        guard let data = FileManager.default.contents(atPath: dir + "/" + profileFile) else {
            return try JSON.encode(Empty(empty: "no heap profile in this run: create the job with Heap checked (sprof run --heap; the server must run as root)"))
        }
        let profile: Profile
        do {
            profile = try PprofFormat.decode([UInt8](data))
        } catch {
            throw ServeError(500, "cannot read \(dir)/\(profileFile): \(error)")
        }
        func index(_ type: String) throws -> Int {
            guard let i = profile.sampleTypeIndex(type) else { throw ServeError(500, "\(dir)/\(profileFile) has no \(type) values") }
            return i
        }
        switch view {
        case "heap-alloc":
            return Data(ProfileViews.flameTree(profile.aggregatedStacks(valueIndex: try index("alloc_space")), unit: "bytes").jsonBytes())
        case "heap-inuse":
            return Data(ProfileViews.flameTree(profile.aggregatedStacks(valueIndex: try index("inuse_space")), unit: "bytes").jsonBytes())
        default:
            let bytes = try index("inuse_space"), objects = try index("inuse_objects")
            var objectsByStack: [[String]: Int64] = [:]
            for s in profile.aggregatedStacks(valueIndex: objects) { objectsByStack[s.frames, default: 0] += s.value }
            let leaks = profile.aggregatedStacks(valueIndex: bytes).filter { $0.value > 0 }
                .sorted { $0.value != $1.value ? $0.value > $1.value : $0.frames.lexicographicallyPrecedes($1.frames) }
                .prefix(leakRows)
                .map { Leak(function: $0.frames.last { !allocators.contains($0) } ?? $0.frames.last ?? "", stack: $0.frames, bytes: $0.value, objects: objectsByStack[$0.frames] ?? 0) }
            let summary = Summary(allocObjects: profile.total(try index("alloc_objects")), allocSpace: profile.total(try index("alloc_space")),
                                  inuseObjects: profile.total(objects), inuseSpace: profile.total(bytes), rate: profile.period,
                                  timeline: timeline(dir), leaks: Array(leaks))
            return try JSON.encode(summary)
        }
    }

    /// `profile.heap.tsv` as `[ns, bytes]` pairs; empty when missing or unreadable.
    static func timeline(_ dir: String) -> [[UInt64]] {
        guard let text = try? String(contentsOfFile: dir + "/" + timelineFile, encoding: .utf8) else { return [] }
        var points: [[UInt64]] = []
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: "\t")
            guard fields.count == 2, let seconds = Double(fields[0]), let bytes = UInt64(fields[1]), seconds >= 0 else { continue }
            points.append([UInt64((seconds * 1e9).rounded()), bytes])
        }
        return points
    }
}
