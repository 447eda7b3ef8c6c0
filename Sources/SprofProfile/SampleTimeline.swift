/// Every sample's time, thread, CPU and stack, saved beside a profile as `PREFIX.timeline.tsv`
/// (`sprof run --timeline`): pprof has no per-sample time (its samples are aggregated), so a
/// timeline (samples over time per thread, a time range that filters the views) needs a file of
/// its own, as the memory timeline has.
///
/// A `#` header line naming the columns; then `# stack N IDS` lines, each a distinct stack as the
/// pprof location ids of `PREFIX.pb.gz` (the profile's location index plus one), leaf first,
/// comma-separated; then one line per sample, tab-separated, in time order:
///
///     # sprof sample timeline v1: time_ns pid tid cpu stack
///     # stack 0 3,2,1
///     1250000	4242	4242	1	0
///
/// `time_ns` counts from the start of recording, the origin of `PREFIX.memory.tsv`, so both
/// timelines share one time axis. Samples taken before that origin (between the events being
/// enabled and the command's exec) read 0.
public enum SampleTimeline {
    /// The first line of the file.
    public static let header = "# sprof sample timeline v1: time_ns pid tid cpu stack"

    /// The file's text for `profile.timedSamples`, whose times are CLOCK_MONOTONIC nanoseconds;
    /// `origin` is the start of recording on that clock.
    public static func text(_ profile: Profile, origin: UInt64) -> String {
        var out = header + "\n"
        var numbers: [Int: Int] = [:]
        var body = ""
        body.reserveCapacity(profile.timedSamples.count * 24)
        for s in profile.timedSamples {
            let n: Int
            if let known = numbers[s.stack] { n = known } else {
                n = numbers.count
                numbers[s.stack] = n
                out += "# stack \(n) " + profile.stacks[s.stack].map { String($0 + 1) }.joined(separator: ",") + "\n"
            }
            let t = profile.threads[s.thread]
            body += "\(s.time >= origin ? s.time - origin : 0)\t\(t.pid)\t\(t.tid)\t\(s.cpu)\t\(n)\n"
        }
        return out + body
    }

    /// A line that cannot be read, or a sample whose stack or thread the profile lacks.
    public struct ParseError: Error, Equatable, CustomStringConvertible {
        /// One line: which line, what is wrong.
        public var description: String
    }

    /// Reads a file written by ``text(_:origin:)`` against `profile` (the same recording read
    /// back from its pprof file): the samples with their ``Profile/TimedSample/stack`` and
    /// ``Profile/TimedSample/thread`` indices into `profile`, and times counted from the start of
    /// recording (not CLOCK_MONOTONIC).
    /// - Throws: ``ParseError`` for a missing header, a malformed line, or a stack or thread that
    ///   `profile` does not have (the file belongs to another profile).
    public static func parse(_ text: String, matching profile: Profile) throws(ParseError) -> [Profile.TimedSample] {
        var copy = text
        var result: Result<[Profile.TimedSample], ParseError> = .success([])
        copy.withUTF8 { bytes in
            result = Result { () throws(ParseError) -> [Profile.TimedSample] in try parse(bytes, matching: profile) }
        }
        return try result.get()
    }

    /// ``parse(_:matching:)`` over the file's bytes: read as bytes, not as `String` lines, since
    /// a long recording has hundreds of thousands of lines.
    public static func parse(_ bytes: UnsafeBufferPointer<UInt8>, matching profile: Profile) throws(ParseError) -> [Profile.TimedSample] {
        var stackIndex: [[Int]: Int] = [:]
        for (i, s) in profile.stacks.enumerated() where stackIndex[s] == nil { stackIndex[s] = i }
        var threadIndex: [Int64: Int] = [:]
        for (i, t) in profile.threads.enumerated() {
            let key = Int64(t.pid) << 32 | Int64(UInt32(bitPattern: t.tid))
            if threadIndex[key] == nil { threadIndex[key] = i }
        }
        var stacks: [Int: Int] = [:]
        var out: [Profile.TimedSample] = []
        var pos = 0, lineNumber = 0
        let tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n"), hash = UInt8(ascii: "#")
        func text(_ a: Int, _ b: Int) -> String { String(decoding: UnsafeBufferPointer(rebasing: bytes[a..<min(b, a + 80)]), as: UTF8.self) }
        // A decimal number at `i` up to `end`, ending at one of `stops`; advances `i` past the stop.
        func number(_ i: inout Int, _ end: Int, _ stop: UInt8) -> UInt64? {
            var v: UInt64 = 0, digits = 0
            while i < end, bytes[i] != stop {
                let d = bytes[i] &- 48
                guard d < 10, digits < 19 else { return nil }
                v = v * 10 + UInt64(d)
                digits += 1
                i += 1
            }
            if i < end { i += 1 }
            return digits > 0 ? v : nil
        }
        while pos < bytes.count {
            var end = pos
            while end < bytes.count, bytes[end] != newline { end += 1 }
            defer { pos = end + 1 }
            lineNumber += 1
            if end == pos { continue }
            if lineNumber == 1 {
                guard text(pos, end).hasPrefix("# sprof sample timeline") else {
                    throw ParseError(description: "not a sprof sample timeline (the first line must be '\(header)')")
                }
                continue
            }
            if bytes[pos] == hash {
                let line = String(decoding: UnsafeBufferPointer(rebasing: bytes[pos..<end]), as: UTF8.self)
                guard line.hasPrefix("# stack ") else { continue }
                let parts = line.dropFirst("# stack ".count).split(separator: " ", maxSplits: 1)
                guard parts.count == 2, let number = Int(parts[0]) else {
                    throw ParseError(description: "line \(lineNumber): expected '# stack N ID,ID,…', got '\(line.prefix(80))'")
                }
                var locations: [Int] = []
                for id in parts[1].split(separator: ",") {
                    guard let v = Int(id), v >= 1 else { throw ParseError(description: "line \(lineNumber): '\(id.prefix(20))' is not a location id") }
                    locations.append(v - 1)
                }
                guard let index = stackIndex[locations] else {
                    throw ParseError(description: "line \(lineNumber): stack \(number) is not in the profile (the timeline belongs to another recording)")
                }
                stacks[number] = index
                continue
            }
            var i = pos
            guard let time = number(&i, end, tab), let pid = number(&i, end, tab), let tid = number(&i, end, tab),
                  let cpu = number(&i, end, tab), let n = number(&i, end, tab), i == end,
                  pid <= UInt64(Int32.max), tid <= UInt64(Int32.max), cpu <= UInt64(UInt32.max) else {
                throw ParseError(description: "line \(lineNumber): expected 5 tab-separated numbers (time_ns pid tid cpu stack), got '\(text(pos, end))'")
            }
            guard let stack = stacks[Int(n)] else { throw ParseError(description: "line \(lineNumber): stack \(n) is not defined above") }
            guard let thread = threadIndex[Int64(pid) << 32 | Int64(tid)] else {
                throw ParseError(description: "line \(lineNumber): thread \(pid)/\(tid) is not in the profile")
            }
            out.append(Profile.TimedSample(thread: thread, time: time, cpu: UInt32(cpu), stack: stack))
        }
        return out
    }
}
