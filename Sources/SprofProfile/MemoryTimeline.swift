/// The memory timeline's file format and its text views (`sprof report --memory`).
///
/// The timeline is saved beside the profile as `PREFIX.memory.tsv` (readers of `PREFIX.pb.gz`
/// look for that name): a `#` header line naming the columns, then one line per reading,
/// tab-separated, in time order:
///
///     # sprof memory timeline v1: time_ns pid rss_bytes anon_bytes file_bytes
///     12000000	4242	1626112	86016	1540096
///
/// `time_ns` counts from the start of recording; the byte values are `VmRSS`, `RssAnon` and
/// `RssFile` of `/proc/PID/status` (kB there). Lines starting with `#` other than the first are
/// comments: `# process PID NAME` names a process.
public enum MemoryTimeline {
    /// The first line of the file.
    public static let header = "# sprof memory timeline v1: time_ns pid rss_bytes anon_bytes file_bytes"

    /// The file's text for `points`, with `names` (pid → process name) as comment lines.
    public static func text(_ points: [Profile.MemoryPoint], names: [Int32: String] = [:]) -> String {
        var out = header + "\n"
        for pid in names.keys.sorted() { out += "# process \(pid) \(names[pid]!)\n" }
        for p in points { out += "\(p.time)\t\(p.pid)\t\(p.rss)\t\(p.anonymous)\t\(p.file)\n" }
        return out
    }

    /// A line that is not a reading.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        /// One line: which line, what is wrong.
        public var description: String
    }

    /// Reads a file written by ``text(_:names:)``: the readings, and the process names.
    /// - Throws: ``ParseError`` for a missing header or a malformed line.
    public static func parse(_ text: String) throws(ParseError) -> (points: [Profile.MemoryPoint], names: [Int32: String]) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true)[...]
        guard let first = lines.popFirst(), first.hasPrefix("# sprof memory timeline") else {
            throw ParseError(description: "not a sprof memory timeline (the first line must be '\(header)')")
        }
        var points: [Profile.MemoryPoint] = []
        var names: [Int32: String] = [:]
        for (n, line) in zip(2..., lines) {
            if line.hasPrefix("# process ") {
                let parts = line.dropFirst("# process ".count).split(separator: " ", maxSplits: 1)
                if parts.count == 2, let pid = Int32(parts[0]) { names[pid] = String(parts[1]) }
                continue
            }
            if line.hasPrefix("#") { continue }
            let f = line.split(separator: "\t")
            guard f.count == 5, let t = UInt64(f[0]), let pid = Int32(f[1]), let rss = UInt64(f[2]),
                  let anon = UInt64(f[3]), let file = UInt64(f[4]) else {
                throw ParseError(description: "line \(n): expected 5 tab-separated numbers (time_ns pid rss anon file), got '\(line.prefix(80))'")
            }
            points.append(Profile.MemoryPoint(time: t, pid: pid, rss: rss, anonymous: anon, file: file))
        }
        return (points, names)
    }

    /// The largest reading of each process, largest first (ties by pid).
    public static func peaks(_ points: [Profile.MemoryPoint]) -> [Profile.MemoryPoint] {
        var best: [Int32: Profile.MemoryPoint] = [:]
        for p in points where p.rss > (best[p.pid]?.rss ?? 0) || best[p.pid] == nil { best[p.pid] = p }
        return best.values.sorted { $0.rss != $1.rss ? $0.rss > $1.rss : $0.pid < $1.pid }
    }

    /// Total resident bytes of all processes over time, in `buckets` equal slices of the recording:
    /// for each slice, the largest sum of the latest reading of every process seen in it.
    public static func totals(_ points: [Profile.MemoryPoint], buckets: Int) -> [(start: UInt64, rss: UInt64)] {
        guard let last = points.last?.time, buckets > 0 else { return [] }
        let span = max(last + 1, 1)
        var out = [(start: UInt64, rss: UInt64)]()
        var latest: [Int32: UInt64] = [:]
        var index = points.startIndex
        for b in 0..<buckets {
            let end = span * UInt64(b + 1) / UInt64(buckets)
            var peak: UInt64 = 0
            while index < points.endIndex, points[index].time < end {
                let t = points[index].time
                latest[points[index].pid] = points[index].rss
                index += 1
                // Sum only once all readings of one tick (same time) are in.
                if index == points.endIndex || points[index].time != t { peak = max(peak, latest.values.reduce(0, +)) }
            }
            if peak == 0 { peak = out.last?.rss ?? 0 }
            out.append((span * UInt64(b) / UInt64(buckets), peak))
        }
        return out
    }
}
