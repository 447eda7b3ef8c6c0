#if canImport(Glibc)
import Glibc
#endif
import Sprof
import SprofFormats
import SprofCore

/// `sprof report --memory`: the memory timeline saved beside a profile (`PREFIX.memory.tsv`,
/// see ``MemoryTimeline``): the peak resident memory of each process, then a coarse timeline of
/// the total.
enum MemoryReport {
    /// The timeline file for a profile path: `PREFIX.memory.tsv` beside `PREFIX.pb.gz`,
    /// `PREFIX.folded` or `PREFIX.svg`, beside the heap views of `--heap` (`PREFIX.heap.pb.gz`,
    /// `PREFIX.heap.tsv`, `PREFIX.alloc.svg`, `PREFIX.inuse.svg`: one timeline for both profiles),
    /// or the path itself when it is a timeline.
    static func timelinePath(for path: String) -> String {
        if path.hasSuffix(TimeViews.memorySuffix) { return path }
        for suffix in OutputPlan.heapSuffixes + [".pb.gz", ".pb", ".folded"] + SampleTypeView.table.map(\.suffix) + [".svg"] where path.hasSuffix(suffix) {
            return String(path.dropLast(suffix.count)) + TimeViews.memorySuffix
        }
        return path + TimeViews.memorySuffix
    }

    /// The report's text. `rows` is the number of timeline lines.
    static func text(for path: String, rows: Int = 20, limit: Int = 25) throws -> String {
        let tsv = timelinePath(for: path)
        let text = try readTimeline(tsv, for: path)
        let points: [Profile.MemoryPoint], names: [Int32: String]
        do {
            (points, names) = try MemoryTimeline.parse(text)
        } catch {
            throw fail("\(tsv): \(error)")
        }
        guard !points.isEmpty else { throw fail("\(tsv): the timeline has no readings") }
        var out = "# \(tsv): \(points.count) readings of \(Set(points.map(\.pid)).count) process\(Set(points.map(\.pid)).count == 1 ? "" : "es") over \(seconds(points.last!.time)) s\n"
        out += "\(pad("peak RSS", 10)) \(pad("anon", 10)) \(pad("file", 10)) \(pad("at", 8))  process\n"
        let peaks = MemoryTimeline.peaks(points)
        for p in limit == 0 ? peaks[...] : peaks.prefix(limit) {
            out += "\(pad(byteText(p.rss), 10)) \(pad(byteText(p.anonymous), 10)) \(pad(byteText(p.file), 10)) \(pad(seconds(p.time) + " s", 8))  \(names[p.pid] ?? "?") (pid \(p.pid))\n"
        }
        let totals = MemoryTimeline.totals(points, buckets: max(1, min(rows, points.count)))
        let top = max(totals.map(\.rss).max() ?? 1, 1)
        out += "#\n# total RSS over time (largest in each slice)\n"
        for t in totals {
            let width = Int((Double(t.rss) / Double(top) * 50).rounded())
            out += "\(pad(seconds(t.start) + " s", 8))  \(pad(byteText(t.rss), 10))  " + String(repeating: "#", count: width) + "\n"
        }
        return out
    }

    /// The most bytes of a timeline read (1 GiB, as for a profile): a reading a second of 100
    /// processes for a day is about 300 MiB.
    static let maxTimelineBytes = ProfileReader.maxInputBytes

    /// The text of the timeline file `tsv`. Its name is made from the profile's, not given by the
    /// user, so it may be anything: only a regular file of at most ``maxTimelineBytes`` is read
    /// (opened without blocking, so a FIFO does not hang the report; `/dev/zero` never ends).
    /// - Throws: a one-line failure (status 1): missing, not a regular file, too large, unreadable.
    static func readTimeline(_ tsv: String, for path: String) throws -> String {
        let fd = ArgumentBytes.withPath(tsv) { open($0, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
        guard fd >= 0 else {
            if errno == ENOENT { throw fail("no memory timeline for \(path): \(tsv) is missing (sprof run writes it beside PREFIX.pb.gz)") }
            throw fail("cannot read \(tsv): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot read \(tsv): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw fail("\(tsv) is not a regular file (\(nonRegularFileKind(st.st_mode) ?? "not a file")): not a memory timeline; sprof run writes one beside PREFIX.pb.gz")
        }
        do {
            let bytes = try ProfileReader.readInput(fd: fd, source: tsv, limit: maxTimelineBytes, checkHead: false)
            return String(decoding: bytes, as: UTF8.self)
        } catch let error as ProfileReadError {
            throw fail(error.kind == .tooLarge
                ? "\(tsv): larger than \(maxTimelineBytes >> 30) GiB, the most sprof reads of a memory timeline (not a timeline?)"
                : error.message)
        }
    }


    private static func seconds(_ ns: UInt64) -> String { String(format: "%.2f", Double(ns) / 1e9) }
}
