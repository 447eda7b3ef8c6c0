#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Sprof
import SprofFormats

/// The files one recording writes beside each other (`PREFIX.folded`, `PREFIX.svg`,
/// `PREFIX.pb.gz`), all made from the one ``Profile`` value.
///
/// Created before recording starts, so an unwritable prefix fails at once; each file is written
/// to a temporary name, and all are renamed into place together only once every one is complete
/// (``OutputFile/commitAll(_:)``), so a failed or too-short run never destroys an earlier profile,
/// nor leaves files of two runs side by side.
final class ProfileOutputs {
    let prefix: String
    private var files: [(suffix: String, file: OutputFile)] = []

    init(prefix: String, offCPU: Bool = false, heap: Bool = false, timeline: Bool = false) throws {
        self.prefix = Self.resolve(prefix)
        for suffix in [".folded", ".svg", ".pb.gz"] + (offCPU ? TimeViews.suffixes : []) + [TimeViews.memorySuffix]
            + (timeline ? [TimeViews.timelineSuffix] : []) + (heap ? HeapViews.suffixes : []) {
            files.append((suffix, try OutputFile(path: self.prefix + suffix)))
        }
    }

    /// `-o DIR` or `-o DIR/` naming an existing directory means the default names inside it
    /// (`DIR/sprof.folded`, …): taken as a prefix it would write `DIR.folded` beside the directory,
    /// or hidden `DIR/.folded` files.
    static func resolve(_ prefix: String) -> String {
        var st = stat()
        guard ArgumentBytes.withPath(prefix, { stat($0, &st) }) == 0, st.st_mode & S_IFMT == S_IFDIR else { return prefix }
        return (prefix.hasSuffix("/") ? prefix : prefix + "/") + "sprof"
    }

    /// Writes every output; returns the paths written, for the summary line.
    func write(_ profile: Profile, title: String, perThread: Bool, fullNames: Bool,
               heap: Profile? = nil, heapTimeline: [(time: UInt64, bytes: UInt64)] = [], timelineOrigin: UInt64 = 0) throws -> [String] {
        // A heap profile (`-e none`) shows its default measure, alloc_space; CPU profiles sample counts.
        let folded = profile.folded(valueIndex: profile.defaultSampleType, perThread: perThread, fullNames: fullNames)
        var graph = FlameGraphOptions(title: title, subtitle: profile.metadata.summaryLine + dateSuffix(profile.metadata.startTime))
        graph.details = profile.metadata.provenanceLines
        if profile.sampleTypes[profile.defaultSampleType].unit == "bytes" { graph.countName = "bytes" }
        var contents: [String: [UInt8]] = [
            ".folded": folded.serializedBytes(),
            ".svg": FlameGraph.renderBytes(folded, options: graph),
        ]
        for (suffix, bytes) in try extraOutputs(profile) { contents[suffix] = bytes }
        for (suffix, bytes) in TimeViews.outputs(profile, graph: graph, perThread: perThread, fullNames: fullNames) { contents[suffix] = bytes }
        if files.contains(where: { $0.suffix == TimeViews.timelineSuffix }) {
            contents[TimeViews.timelineSuffix] = Array(SampleTimeline.text(profile, origin: timelineOrigin).utf8)
        }
        if let heap {
            for (suffix, bytes) in try HeapViews.outputs(heap, timeline: heapTimeline, graph: graph, perThread: perThread, fullNames: fullNames) {
                contents[suffix] = bytes
            }
        }
        // Every file complete before any is renamed: a failure (a full disk at the SVG) leaves
        // all of PREFIX.* from the previous run, never a mix of two runs.
        var staged: [OutputFile] = []
        do {
            for (suffix, file) in files {
                guard let bytes = contents[suffix] else { file.discard(); continue }
                try file.stage(bytes)
                staged.append(file)
            }
            try OutputFile.commitAll(staged)
        } catch {
            discard()
            throw error
        }
        return staged.map(\.path)
    }

    /// Leaves every path as it was.
    func discard() { for (_, file) in files { file.discard() } }

    /// Outputs beyond folded and SVG (pprof).
    private func extraOutputs(_ profile: Profile) throws -> [(String, [UInt8])] {
        do {
            return [(".pb.gz", try PprofFormat.encode(profile))]
        } catch {
            throw fail("cannot encode \(prefix).pb.gz: \(error)")
        }
    }
}

/// `, 2026-11-29 15:04:05` for a subtitle. strftime, not DateFormatter: loading ICU for one date
/// costs tens of milliseconds.
func dateSuffix(_ unixNanos: UInt64) -> String {
    guard unixNanos > 0 else { return "" }
    var tm = tm()
    var seconds = time_t(unixNanos / 1_000_000_000)
    localtime_r(&seconds, &tm)
    var buffer = [CChar](repeating: 0, count: 32)
    let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &tm)
    return ", " + String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The outputs of issue 10 beside the CPU flame graph: `PREFIX.wall.svg` and `PREFIX.offcpu.svg`
/// (`--off-cpu`), and the memory timeline `PREFIX.memory.tsv` (see ``MemoryTimeline``).
enum TimeViews {
    static let suffixes = [".wall.svg", ".offcpu.svg"]
    static let memorySuffix = ".memory.tsv"
    /// Every sample's time, thread, CPU and stack (`--timeline`; see ``SampleTimeline``).
    static let timelineSuffix = ".timeline.tsv"

    static func outputs(_ profile: Profile, graph: FlameGraphOptions, perThread: Bool, fullNames: Bool) -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        for (suffix, type, what) in [(".wall.svg", "wall", "wall-clock time"), (".offcpu.svg", "off-cpu", "off-CPU time")] {
            guard let index = profile.sampleTypeIndex(type) else { continue }
            var options = graph
            options.title = (graph.title ?? "sprof") + " (\(what))"
            options.countName = "ns"
            let folded = profile.folded(valueIndex: index, perThread: perThread, fullNames: fullNames)
            out.append((suffix, FlameGraph.renderBytes(folded, options: options)))
        }
        if !profile.memory.isEmpty {
            out.append((memorySuffix, Array(MemoryTimeline.text(profile.memory, names: processNames(profile)).utf8)))
        }
        return out
    }

    /// Process names by pid, from the profile's threads (a process's main thread names it).
    static func processNames(_ profile: Profile) -> [Int32: String] {
        var names: [Int32: String] = [:]
        for t in profile.threads where names[t.pid] == nil || t.tid == t.pid { names[t.pid] = t.processName }
        return names
    }

    /// `, off-CPU 1.2 s` for the summary line when the profile has off-CPU time.
    static func summary(_ profile: Profile) -> String {
        guard let off = profile.sampleTypeIndex("off-cpu") else { return "" }
        return ", off-CPU " + oneDecimal(Double(profile.total(off)) / 1e9) + " s"
    }
}
