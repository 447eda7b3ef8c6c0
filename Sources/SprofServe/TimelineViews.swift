import Foundation
import SprofProfile

/// A time range of a run, nanoseconds from the start of recording (the axis of the memory and
/// sample timelines): `from` included, `to` excluded.
public struct TimeRange: Sendable, Hashable {
    /// First nanosecond in the range.
    public var from: UInt64
    /// First nanosecond after it.
    public var to: UInt64

    /// Creates a range.
    public init(from: UInt64, to: UInt64) {
        self.from = from
        self.to = to
    }

    /// The range of a request's `from` and `to` query values (decimal nanoseconds); nil when
    /// neither is given.
    /// - Throws: ``ServeError`` 400 when a value is not a whole number or `to` is not after `from`.
    public static func parse(from: String?, to: String?) throws -> TimeRange? {
        guard from != nil || to != nil else { return nil }
        func value(_ text: String?, _ name: String, _ otherwise: UInt64) throws -> UInt64 {
            guard let text else { return otherwise }
            guard let v = UInt64(text) else {
                throw ServeError(400, "\(name)=\(String(text.prefix(30))): give nanoseconds from the start of recording, a whole number")
            }
            return v
        }
        let r = TimeRange(from: try value(from, "from", 0), to: try value(to, "to", .max))
        guard r.to > r.from else { throw ServeError(400, "the time range is empty: to (\(r.to)) must be after from (\(r.from))") }
        return r
    }

    /// Whether `time` lies in the range.
    public func contains(_ time: UInt64) -> Bool { time >= from && time < to }
}

extension ProfileViews {
    /// `profile` with only the samples of `timed` (read from the run's timeline, see
    /// ``SampleTimeline``) that lie in `range`: the per-stack, per-thread aggregates rebuilt from
    /// those samples. Each sample counts 1 for the first value and, for the others (e.g.
    /// cpu/nanoseconds), the average per sample of its stack and thread in the whole profile.
    /// Samples with no timed entry (off-CPU stacks) are left out.
    public static func restrict(_ profile: Profile, timed: [Profile.TimedSample], to range: TimeRange) -> Profile {
        TimedSamples(profile, timed: timed).restrict(profile, to: range)
    }

    /// A run's timed samples in time order, each with the index of its (stack, thread) pair: a
    /// time range is then two binary searches and a count per pair, made once per run rather
    /// than hashing every sample of the timeline for every range.
    public struct TimedSamples: Sendable {
        /// The samples' times, ascending.
        var times: [UInt64] = []
        /// Per sample (in the order of ``times``), its index into ``pairs``.
        var pairOf: [Int32] = []
        /// The distinct (stack, thread) pairs, by thread then stack, with the values of one sample
        /// of each (the average of its samples in the whole profile; 1 for the first value).
        var pairs: [(stack: Int, thread: Int, values: [Int64])] = []

        /// Indexes `timed` (samples of `profile`).
        public init(_ profile: Profile, timed: [Profile.TimedSample]) {
            struct Key: Hashable { var stack: Int; var thread: Int }
            var perSample: [Key: [Int64]] = [:]
            for s in profile.samples {
                guard let t = s.thread, s.values[0] > 0 else { continue }
                let n = s.values[0]
                perSample[Key(stack: s.stack, thread: t)] = s.values.map { $0 / n }
            }
            var index: [Key: Int32] = [:]
            var keys: [Key] = []
            var sorted = timed
            if !timed.indices.dropFirst().allSatisfy({ timed[$0 - 1].time <= timed[$0].time }) {
                sorted = timed.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
            }
            times.reserveCapacity(sorted.count)
            pairOf.reserveCapacity(sorted.count)
            for s in sorted {
                let key = Key(stack: s.stack, thread: s.thread)
                let i: Int32
                if let known = index[key] { i = known } else {
                    i = Int32(keys.count)
                    index[key] = i
                    keys.append(key)
                }
                times.append(s.time)
                pairOf.append(i)
            }
            // Pairs in the order the samples of a cut profile are sorted (thread, then stack).
            let order = keys.indices.sorted { keys[$0].thread != keys[$1].thread ? keys[$0].thread < keys[$1].thread : keys[$0].stack < keys[$1].stack }
            var rank = [Int32](repeating: 0, count: keys.count)
            for (r, k) in order.enumerated() { rank[k] = Int32(r) }
            for i in pairOf.indices { pairOf[i] = rank[Int(pairOf[i])] }
            let zeros = [Int64](repeating: 0, count: profile.sampleTypes.count)
            pairs = order.map { k in
                var values = perSample[keys[k]] ?? zeros
                if !values.isEmpty { values[0] = 1 }
                return (keys[k].stack, keys[k].thread, values)
            }
        }

        /// The first sample at or after `time`.
        private func first(atOrAfter time: UInt64) -> Int {
            var lo = 0, hi = times.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if times[mid] < time { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }

        /// `profile` (the profile these samples belong to) with only the samples in `range`
        /// (see ``ProfileViews/restrict(_:timed:to:)``).
        public func restrict(_ profile: Profile, to range: TimeRange) -> Profile {
            var counts = [Int64](repeating: 0, count: pairs.count)
            for i in first(atOrAfter: range.from)..<first(atOrAfter: range.to) { counts[Int(pairOf[i])] += 1 }
            var p = profile
            p.samples = []
            for (i, n) in counts.enumerated() where n > 0 {
                p.samples.append(Profile.Sample(stack: pairs[i].stack, thread: pairs[i].thread, values: pairs[i].values.map { $0 * n }))
            }
            p.timedSamples = []
            return p
        }
    }

    /// One thread's track of the timeline.
    public struct TimelineThread: Encodable, Sendable {
        /// Index into the profile's threads (the `thread` of `view/cpu?thread=`).
        public var index: Int
        public var pid: Int32
        public var tid: Int32
        public var process: String
        public var name: String
        /// Its samples in the whole run.
        public var total: Int
        /// Its samples per bucket.
        public var counts: [Int]
    }

    /// Samples over time per thread, CPU use over time, and resident memory on the same axis.
    public struct Timeline: Encodable, Sendable {
        /// Nanoseconds from the start of recording to the last sample or memory reading.
        public var duration: UInt64
        /// Width of a bucket, nanoseconds.
        public var bucket: UInt64
        /// Samples in the timeline.
        public var samples: Int
        /// Threads, most samples first.
        public var threads: [TimelineThread]
        /// CPUs in use per bucket: each sample's CPU nanoseconds (the average of a sample) spread
        /// over the time before it that they ran, per thread at most the bucket's width, summed
        /// and divided by the width; never more than the threads that ran in the bucket. nil
        /// when the profile has no cpu/nanoseconds value.
        public var cpu: [Double]?
        /// The memory timeline (as `view/memory`).
        public var memory: [MemorySeries]
    }

    /// The timeline of `timed` in `buckets` buckets (at least 1).
    public static func timeline(_ profile: Profile, timed: [Profile.TimedSample], names: [Int32: String] = [:], buckets: Int = 400) -> Timeline {
        let memory = memory(profile, names: names)
        let last = max(timed.map(\.time).max() ?? 0, profile.memory.map(\.time).max() ?? 0)
        let n = max(1, buckets)
        let width = max(1, (last + 1 + UInt64(n) - 1) / UInt64(n))
        var perThread: [Int: [Int]] = [:]
        var all = Array(repeating: 0, count: n)
        for s in timed {
            let b = min(n - 1, Int(s.time / width))
            perThread[s.thread, default: Array(repeating: 0, count: n)][b] += 1
            all[b] += 1
        }
        let threads = perThread.map { index, counts -> TimelineThread in
            let t = profile.threads[index]
            return TimelineThread(index: index, pid: t.pid, tid: t.tid, process: t.processName, name: t.name,
                                  total: counts.reduce(0, +), counts: counts)
        }.sorted { $0.total != $1.total ? $0.total > $1.total : $0.tid < $1.tid }
        var cpu: [Double]?
        if let c = profile.sampleTypeIndex("cpu"), profile.sampleTypes[c].unit == "nanoseconds" {
            let count = profile.total(0)
            let perSample = count > 0 ? Double(profile.total(c)) / Double(count) : 0
            cpu = cpuUse(timed, perSample: perSample, width: width, buckets: n)
        }
        return Timeline(duration: last, bucket: width, samples: timed.count, threads: threads, cpu: cpu, memory: memory)
    }

    /// CPUs in use per bucket of `width` ns. A sample stands for the `perSample` ns of CPU its
    /// thread ran before it (the period that ran out at its time), so that span is split across
    /// the buckets it covers: counted whole in the bucket of its time, a 10 ms bucket got 10 or
    /// 11 samples of 1 ms, and one single-threaded command peaked at 1.09 CPUs. A thread also
    /// runs at most the bucket's width in a bucket, which caps its share there: a timer that
    /// fires late leaves a long period and then a short one, whose spans of `perSample` overlap.
    static func cpuUse(_ timed: [Profile.TimedSample], perSample: Double, width: UInt64, buckets n: Int) -> [Double] {
        var slot: [Int: Int] = [:]
        var used: [Double] = []  // per thread slot, n buckets each: CPU ns
        let w = Double(width)
        for s in timed {
            let base: Int
            if let known = slot[s.thread] {
                base = known
            } else {
                base = used.count
                slot[s.thread] = base
                used.append(contentsOf: repeatElement(0, count: n))
            }
            let end = Double(s.time), start = max(0, end - perSample)
            var b = min(n - 1, Int(s.time / width)), hi = end
            while b >= 0 && hi > start {
                let lo = max(start, Double(b) * w)
                used[base + b] += hi - lo
                hi = lo
                b -= 1
            }
        }
        var cpu = Array(repeating: 0.0, count: n)
        // In the order the threads first appear, so that the sums are the same bytes every time.
        for base in stride(from: 0, to: used.count, by: n) {
            for b in 0..<n { cpu[b] += min(used[base + b], w) / w }
        }
        return cpu
    }
}
