#if canImport(Glibc)
import Glibc
#endif

/// Which files a recording writes (`sprof run -o PREFIX`): one path per view, all beside each
/// other under one prefix. Planned before recording starts, so an unwritable prefix fails before
/// the command runs; the CLI writes them, and the server and library users can name them the
/// same way.
public struct OutputPlan: Sendable, Equatable {
    /// The CPU profile's files: folded stacks, the SVG flame graph and the pprof profile.
    public static let profileSuffixes = [".folded", ".svg", ".pb.gz"]
    /// With `--off-cpu`: the wall-clock and off-CPU flame graphs (the views of
    /// ``SampleTypeView/table`` recorded with that flag).
    public static let offCPUSuffixes = SampleTypeView.table.filter { $0.flag == "--off-cpu" }.map(\.suffix)
    /// The memory timeline (written when one was recorded).
    public static let memorySuffix = ".memory.tsv"
    /// With `--heap`: bytes allocated and in use per stack, the pprof heap profile, and in-use
    /// bytes over time.
    public static let heapSuffixes = [".alloc.svg", ".inuse.svg", ".heap.pb.gz", ".heap.tsv"]
    /// With `--timeline`: every sample's time, thread, CPU and stack (see `SampleTimeline`).
    public static let timelineSuffix = ".timeline.tsv"

    /// The prefix the files share (``resolve(_:)`` applied).
    public let prefix: String
    /// The suffixes written, in this order.
    public let suffixes: [String]

    /// The plan for `-o prefix` with the views a recording with `offCPU`, `heap` and `timeline` makes.
    public init(prefix: String, offCPU: Bool = false, heap: Bool = false, timeline: Bool = false) {
        self.prefix = Self.resolve(prefix)
        suffixes = Self.profileSuffixes + (offCPU ? Self.offCPUSuffixes : []) + [Self.memorySuffix]
            + (timeline ? [Self.timelineSuffix] : []) + (heap ? Self.heapSuffixes : [])
    }

    /// Every path of the plan, in ``suffixes`` order.
    public var paths: [String] { suffixes.map { prefix + $0 } }

    /// `-o DIR` or `-o DIR/` naming an existing directory means the default names inside it
    /// (`DIR/sprof.folded`, …): taken as a prefix it would write `DIR.folded` beside the directory,
    /// or hidden `DIR/.folded` files. A trailing `/` says a directory even when there is none
    /// yet, so the refusal names `DIR/sprof.folded`.
    public static func resolve(_ prefix: String) -> String {
        if prefix.hasSuffix("/") { return prefix + "sprof" }
        var st = stat()
        guard ArgumentBytes.withPath(prefix, { stat($0, &st) }) == 0, st.st_mode & S_IFMT == S_IFDIR else { return prefix }
        return prefix + "/sprof"
    }
}
