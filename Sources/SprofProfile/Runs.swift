/// Repeated runs of one command in one profile (`sprof run -r N`, perf stat's spelling): every
/// sample carries its run number (``Profile/Sample/run``, the pprof label `run`), so that `sprof
/// diff` can measure how much a function's share varies from run to run.
extension Profile {
    /// The run numbers that have samples, ascending; empty for a profile of a single recording.
    public var runs: [Int] {
        Array(Set(samples.compactMap(\.run))).sorted()
    }

    /// The same profile with only the samples of run `run` (tables shared, samples filtered).
    public func onlyRun(_ run: Int) -> Profile {
        var p = self
        p.samples = samples.filter { $0.run == run }
        p.timedSamples = []
        return p
    }

    /// One profile from the recordings of `runs` repetitions of one command, in order: the
    /// samples of `runs[i]` carry run number `i + 1`. The tables (mappings, functions,
    /// locations, stacks, threads) are interned again, so that a function seen in every run is
    /// one function. The metadata is the first run's, with statistics and durations summed,
    /// notices gathered without repeats and the exit status of the first run that did not exit
    /// 0 (or of the last run). Memory points keep their order, each run's shifted by its start.
    /// Sample types come from the first run; a run whose sample types differ has its values
    /// matched by type name (0 where it lacks one).
    ///
    /// With `lastIsPartial`, the last recording is a run cut short (Ctrl-C during `sprof run
    /// -r N`): its samples are kept, but without a run number, so that they count in the
    /// profile's totals and views and not as a run of their own (a run of a few samples would
    /// skew the per-run shares `sprof diff` tests).
    public init(runs: [Profile], lastIsPartial: Bool = false) {
        guard let first = runs.first else {
            self.init()
            return
        }
        var b = ProfileBuilding(sampleTypes: first.sampleTypes, defaultSampleType: first.defaultSampleType,
                                periodType: first.periodType, period: first.period)
        var metadata = first.metadata
        metadata.statistics = ProfileStatistics()
        metadata.duration = 0
        metadata.notices = []
        var exitStatus: String?
        var memory: [MemoryPoint] = []
        var timed: [TimedSample] = []
        for (i, run) in runs.enumerated() {
            let number: Int? = lastIsPartial && i == runs.count - 1 ? nil : i + 1
            let mappings = run.mappings.map { b.mapping($0) }
            let functions = run.functions.map { b.function($0) }
            let locations = run.locations.map { l in
                var l = l
                l.mapping = l.mapping.map { mappings[$0] }
                for j in l.lines.indices { l.lines[j].function = functions[l.lines[j].function] }
                return b.location(l)
            }
            let stacks = run.stacks.map { b.stack($0.map { locations[$0] }) }
            let threads = run.threads.map { b.thread($0) }
            // Values by type name: runs of one command share their types unless one run saw
            // off-CPU intervals and another did not.
            let columns = first.sampleTypes.map { type in run.sampleTypes.firstIndex { $0 == type } }
            for s in run.samples {
                let values = columns.map { c in c.map { s.values[$0] } ?? 0 }
                b.add(stack: stacks[s.stack], thread: s.thread.map { threads[$0] }, run: number, values: values)
            }
            for t in run.timedSamples {
                timed.append(TimedSample(thread: threads[t.thread], time: t.time, cpu: t.cpu, stack: stacks[t.stack]))
            }
            let shift = run.metadata.startTime >= first.metadata.startTime ? run.metadata.startTime - first.metadata.startTime : 0
            memory += run.memory.map { var m = $0; m.time += shift; return m }
            let s = run.metadata.statistics
            metadata.statistics.samples += s.samples
            metadata.statistics.lostRecords += s.lostRecords
            metadata.statistics.lostSamples += s.lostSamples
            metadata.statistics.throttles += s.throttles
            metadata.statistics.truncated += s.truncated
            metadata.statistics.processes += s.processes
            metadata.statistics.threads += s.threads
            metadata.duration += run.metadata.duration
            for notice in run.metadata.notices where !metadata.notices.contains(notice) { metadata.notices.append(notice) }
            if exitStatus == nil, let status = run.metadata.exitStatus, status != "exit 0" { exitStatus = status }
        }
        metadata.exitStatus = exitStatus ?? runs.last?.metadata.exitStatus
        var merged = b.build(metadata: metadata)
        merged.memory = memory
        merged.timedSamples = timed.sorted { $0.time < $1.time }
        self = merged
    }
}
