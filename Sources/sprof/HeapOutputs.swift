import Sprof
import SprofFormats

/// The heap views of `sprof run --heap` beside the CPU ones: `PREFIX.alloc.svg` (bytes allocated
/// per stack), `PREFIX.inuse.svg` (bytes still allocated at the end), `PREFIX.heap.pb.gz` (a
/// pprof heap profile with Go's four sample types, for `go tool pprof -sample_index=alloc_space`),
/// and `PREFIX.heap.tsv` (estimated in-use bytes over time, beside `PREFIX.memory.tsv`).
enum HeapViews {
    static func outputs(_ heap: Profile, timeline: [(time: UInt64, bytes: UInt64)], graph: FlameGraphOptions,
                        perThread: Bool, fullNames: Bool) throws -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        for (suffix, type, what) in [(".alloc.svg", "alloc_space", "bytes allocated"), (".inuse.svg", "inuse_space", "bytes in use at the end")] {
            guard let index = heap.sampleTypeIndex(type) else { continue }
            var options = graph
            options.title = (graph.title ?? "sprof") + " (\(what))"
            options.subtitle = heap.metadata.summaryLine
            options.countName = "bytes"
            let folded = heap.folded(valueIndex: index, perThread: perThread, names: heap.functionNames(fullNames ? .full : .short))
            out.append((suffix, FlameGraph.renderBytes(folded, options: options)))
        }
        do {
            out.append((".heap.pb.gz", try PprofFormat.encode(heap)))
        } catch {
            throw fail("cannot encode the heap profile: \(error)")
        }
        var tsv = "time_s\tinuse_bytes\n"
        for point in timeline { tsv += oneDecimal3(Double(point.time) / 1e9) + "\t\(point.bytes)\n" }
        out.append((".heap.tsv", Array(tsv.utf8)))
        return out
    }

    private static func oneDecimal3(_ v: Double) -> String {
        let ms = Int64((v * 1000).rounded())
        let frac = String(ms % 1000)
        return "\(ms / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
    }
}
