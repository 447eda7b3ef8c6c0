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
    /// The formats every recording writes (see ``ProfileFormat``), beside the extra views.
    static let formats: [ProfileFormat] = [.folded, .svg, .pprof]
    private var files: [(suffix: String, file: OutputFile)] = []

    /// Opens a temporary file for each path of the recording's ``OutputPlan``.
    init(prefix: String, offCPU: Bool = false, heap: Bool = false, timeline: Bool = false) throws {
        let plan = OutputPlan(prefix: prefix, offCPU: offCPU, heap: heap, timeline: timeline)
        self.prefix = plan.prefix
        for suffix in plan.suffixes {
            files.append((suffix, try OutputFile(path: self.prefix + suffix)))
        }
    }

    /// Writes every output; returns the paths written, for the summary line.
    func write(_ profile: Profile, title: String, perThread: Bool, fullNames: Bool,
               heap: Profile? = nil, heapTimeline: [(time: UInt64, bytes: UInt64)] = [], timelineOrigin: UInt64 = 0) throws -> [String] {
        // The profile's default sample type, as every view shows it: a heap profile (`-e none`)
        // alloc_space, CPU profiles sample counts; the count label names it.
        var graph = FlameGraphOptions(title: title, subtitle: profile.metadata.summaryLine + dateSuffix(profile.metadata.startTime))
        graph.details = profile.metadata.provenanceLines
        graph.countName = profile.valueLabel(profile.defaultSampleType)
        let options = ProfileFormat.Options(profile, perThread: perThread, fullNames: fullNames, graph: graph)
        var contents: [String: [UInt8]] = [:]
        for format in Self.formats {
            do {
                contents[format.suffix] = try format.encode(profile, options)
            } catch {
                throw fail("cannot encode \(prefix)\(format.suffix): \(error)")
            }
        }
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

/// The outputs of issue 10 beside the CPU flame graph: one flame graph per sample type the
/// profile has a ``SampleTypeView`` for (`PREFIX.wall.svg` and `PREFIX.offcpu.svg` with
/// `--off-cpu`), and the memory timeline `PREFIX.memory.tsv` (see ``MemoryTimeline``).
enum TimeViews {
    static let memorySuffix = OutputPlan.memorySuffix
    static let timelineSuffix = OutputPlan.timelineSuffix

    static func outputs(_ profile: Profile, graph: FlameGraphOptions, perThread: Bool, fullNames: Bool) -> [(String, [UInt8])] {
        // One flame graph per sample type with a view of its own (``SampleTypeView/table``).
        var out = SampleTypeView.flameGraphs(profile, graph: graph, perThread: perThread, fullNames: fullNames).map { ($0.suffix, $0.bytes) }
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
}
