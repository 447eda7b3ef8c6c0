#if canImport(Glibc)
import Glibc
#endif

/// What a recording says when it ends, as text any front end can show (`sprof run` prints it on
/// stderr): the summary line, each run's figures for a repeated recording, and advice when the
/// kernel lost samples. Made from the profile and the options alone, so the server and library
/// users word it as the CLI does.
public enum RecordingReport {
    /// `2,431 samples (0 lost) of cpu-clock at 999 Hz, 1 process, 3 threads, peak RSS 14.2 MiB;
    /// wrote a.folded, a.svg`: the counts of ``ProfileStatistics``, the event and rate, off-CPU
    /// seconds and the peak resident set when recorded, how the command ended when a signal
    /// killed it, and the files `written`.
    /// `heap` is the heap profile recorded beside CPU samples (`--heap`): the line then gives its
    /// sample count and rate too. A heap-only profile (`-e none`) is `p` itself, whose lost
    /// figure counts probe records (allocations and frees), not samples.
    public static func summaryLine(_ p: Profile, exitStatus: ExitStatus?, written: [String], heap heapProfile: Profile? = nil) -> String {
        let s = p.statistics
        let heapOnly = p.metadata.event == "heap"
        var line = "\(grouped(s.samples)) sample\(s.samples == 1 ? "" : "s") (\(grouped(s.lost)) lost\(heapOnly ? " probe records" : "")"
        // With --off-cpu or --heap one buffer takes several events: say whose losses they were
        // (a heap probe's lost record is not a lost sample).
        let heap = s.lostHeap ?? 0
        if s.lost > 0 && (s.lostOffCPU != nil || heap > 0) {
            let off = s.lostOffCPU ?? 0
            var parts = ["\(grouped(s.lostBesidesHeap - min(off, s.lostBesidesHeap))) of \(p.metadata.event)"]
            if s.lostOffCPU != nil { parts.append("\(grouped(off)) of context-switches") }
            if heap > 0 { parts.append("\(grouped(heap)) heap probe records") }
            line += ": " + parts.joined(separator: ", ")
        }
        if s.throttles > 0 { line += ", throttled \(s.throttles)x" }
        if s.truncated > 0 { line += ", \(grouped(s.truncated)) truncated" }
        if s.stacksReadPastCopy > 0 { line += ", \(grouped(s.stacksReadPastCopy)) read past the stack copy" }
        if s.debuginfodFiles > 0 { line += ", debug info of \(s.debuginfodFiles) file\(s.debuginfodFiles == 1 ? "" : "s") from debuginfod" }
        line += ") of \(p.metadata.event)"
        if let rate = p.metadata.rateText { line += (rate.hasPrefix("every") ? " " : " at ") + rate }
        // Lost records may include fork and comm records: the counts are then only lower bounds.
        line += ", \(s.lost > 0 ? "at least " : "")\(s.processes) process\(s.processes == 1 ? "" : "es"), \(s.threads) thread\(s.threads == 1 ? "" : "s")"
        line += offCPUSummary(p)
        if let heapProfile = heapProfile, !heapOnly {
            let n = heapProfile.statistics.samples
            line += ", \(grouped(n)) heap sample\(n == 1 ? "" : "s") every \(grouped(Int(heapProfile.period))) byte\(heapProfile.period == 1 ? "" : "s")"
        }
        // The /proc readings, or the command's high-water mark when higher (a process shorter
        // than the readings' interval peaks between two of them).
        var peak = peakRSS(p.memory)
        var atLeast = false
        if let kernel = p.metadata.commandPeakRSS, let pid = p.metadata.commandPID, kernel > peak?.rss ?? 0 {
            peak = (kernel, pid)
        } else if let reading = peak, p.metadata.commandPeakRSS == nil, p.metadata.commandPID == reading.pid,
                  p.memory.filter({ $0.pid == reading.pid }).count < 2 {
            // One reading of a command too short for a second, and no usable high-water mark
            // (wait4's includes sprof's own fork before the exec): the peak was at least this.
            atLeast = true
        }
        if let peak { line += ", peak RSS \(atLeast ? "≥ " : "")\(byteText(peak.rss)) (pid \(peak.pid)\(atLeast ? ", one reading" : ""))" }
        if let status = exitStatus, case .signaled = status { line += ", command \(status)" }
        line += "; wrote " + written.joined(separator: ", ")
        return line
    }

    /// `, off-CPU 1.2 s` for the summary line when the profile has off-CPU time, else empty.
    static func offCPUSummary(_ profile: Profile) -> String {
        guard let off = profile.sampleTypeIndex("off-cpu") else { return "" }
        return ", off-CPU " + oneDecimal(Double(profile.total(off)) / 1e9) + " s"
    }

    /// One line with each run's figures for a repeated recording (`-r N`): samples, seconds, how
    /// it ended, and the samples' spread across runs. `requested` is N: fewer runs means Ctrl-C
    /// cut the series short.
    public static func runsLine(_ runs: [RecordedRun], requested: Int) -> String {
        let samples = runs.map { Double($0.samples) }
        var line = "\(runs.count) run\(runs.count == 1 ? "" : "s")\(runs.count < requested ? " of \(requested) (interrupted)" : "")"
        if let spread = StatMath.relativeStandardDeviationPercent(samples) {
            line += ", samples per run \(grouped(Int(StatMath.mean(samples).rounded()))) ± \(Int((spread * 10).rounded()) / 10).\(Int((spread * 10).rounded()) % 10)%"
        }
        line += ": " + runs.map { r in
            var text = "#\(r.number) \(grouped(r.samples)) samples"
            if r.lost > 0 { text += " (\(grouped(r.lost)) lost)" }
            text += " \(r.duration / 1_000_000_000).\(String(1000 + r.duration / 1_000_000 % 1000).dropFirst()) s"
            if r.exitStatus != .exited(0) { text += " \(r.exitStatus)" }
            return text
        }.joined(separator: ", ")
        return line
    }

    /// ``lossAdvice(_:callGraph:ringPages:)-swift.type.method`` for the profile a recording wrote:
    /// nil for a heap-only profile (`-e none`), whose losses are probe records with their own line
    /// (``heapLossAdvice(rate:callGraph:attached:)``); -F and the CPU samples' stack copy mean
    /// nothing there.
    public static func lossAdvice(for p: Profile, callGraph: SamplingOptions.CallGraph, ringPages: Int?) -> String? {
        p.metadata.event == "heap" ? nil : lossAdvice(p.statistics, callGraph: callGraph, ringPages: ringPages)
    }

    /// The heap probe records a recording lost: the probes' own count when the kernel tells them
    /// apart (``ProfileStatistics/lostHeap``), else every lost record of `profile` (the profile
    /// `sprof run` wrote: a heap-only one holds only probe records; beside CPU samples on a kernel
    /// before 6.0 some may be CPU samples, so the count is an upper bound).
    public static func lostHeapRecords(_ profile: Profile) -> UInt64 {
        profile.statistics.lostHeap ?? profile.statistics.lost
    }

    /// What lowers heap probe losses, as one clause for the heap loss line and the leak report.
    /// A launched command's probes trap only on sampled calls (`rate`), and each record copies
    /// the stack of the call graph mode; attached, every allocator call traps with a frame-pointer
    /// walk whatever the rate, so only larger buffers help.
    public static func heapLossAdvice(rate: Int, callGraph: SamplingOptions.CallGraph, attached: Bool) -> String {
        let buffers = "raise -m (ring-buffer pages per CPU, \(RunOptions.heapRingPages) with --heap unless given)"
        if attached { return buffers }
        var ways = ["raise --heap-rate (now \(grouped(rate)): fewer sampled calls)"]
        if case .dwarf(let size) = callGraph {
            let smaller = size / 4 / 8 * 8
            ways.append(smaller >= 256 ? "copy less stack per record (-g, or --call-graph dwarf,\(smaller) below the current \(size))"
                                       : "copy no stack per record (-g)")
        }
        ways.append(buffers)
        return ways.dropLast().joined(separator: ", ") + ", or " + buffers
    }

    /// `still allocated at exit (leaks): 6.0 MiB in 3 stacks`, then the top stacks with their
    /// bytes, leaf last; with nothing in use at exit, `none`, so that "no leaks" reads apart from
    /// "not reported". Says what the figures are: summed over `runs` runs (the heap profile of
    /// `-r N` adds them up), estimated from samples when the rate is above 1 (small blocks may be
    /// missed), and incomplete when `lostRecords` heap probe records were lost (a lost allocation
    /// drops a leaked block, a lost free adds a block that was freed), with what to change
    /// (`advice`, see ``heapLossAdvice(rate:callGraph:attached:)``). Blocks allocated under
    /// ld.so's `_dl_init` (shared libraries' initializers) are not counted as leaks but named on
    /// a line of their own.
    public static func leakReport(_ heap: Profile, lostRecords: UInt64, runs: Int = 1, advice: String, top: Int = 5) -> String {
        var stacks: [(frames: [String], value: Int64)] = []
        if let index = heap.sampleTypeIndex("inuse_space") {
            stacks = heap.aggregatedStacks(valueIndex: index).filter { $0.value > 0 }
                .sorted { $0.value != $1.value ? $0.value > $1.value : $0.frames.lexicographicallyPrecedes($1.frames) }
        }
        // Blocks a shared library's initializer allocated (ld.so's _dl_init, before main or in
        // dlopen) and held to the end are the library's process-long state, not the program's
        // leaks: libstdc++'s 71 KiB emergency exception pool topped every C++ and Swift list.
        // They stay in inuse_space; the line names them apart.
        let initializers = stacks.filter { $0.frames.contains(libraryInitializer) }
        stacks.removeAll { $0.frames.contains(libraryInitializer) }
        let total = stacks.reduce(Int64(0)) { $0 + $1.value }
        var header = "still allocated at exit (leaks): "
        header += stacks.isEmpty ? "none" : "\(byteText(UInt64(total))) in \(stacks.count) stack\(stacks.count == 1 ? "" : "s")"
        if runs > 1 { header += stacks.isEmpty ? " in \(runs) runs" : ", summed over \(runs) runs" }
        if heap.period > 1 {
            header += " (estimated from samples at 1 per \(grouped(Int(heap.period))) bytes: smaller leaked blocks may be missed; --heap-rate 1 sees every block)"
        }
        var lines = [header]
        if !initializers.isEmpty {
            let bytes = UInt64(initializers.reduce(Int64(0)) { $0 + $1.value })
            lines.append("  not counted: \(byteText(bytes)) in \(initializers.count) stack\(initializers.count == 1 ? "" : "s") allocated by shared libraries' "
                + "initializers (\(libraryInitializer)), held for the whole run (libstdc++'s emergency exception pool is one); they stay in inuse_space")
        }
        if lostRecords > 0 {
            lines.append("  incomplete: \(grouped(lostRecords)) heap probe record\(lostRecords == 1 ? " was" : "s were") lost; a lost allocation drops a leaked block "
                + "from this report and a lost free adds a block that was freed: \(advice)")
        }
        for s in stacks.prefix(top) {
            lines.append("  \(byteText(UInt64(s.value)))  " + s.frames.suffix(4).joined(separator: ";"))
        }
        return lines.joined(separator: "\n")
    }

    /// The dynamic loader's function that runs shared libraries' initializers (glibc's
    /// `elf/dl-init.c`), at start-up before main and in dlopen.
    static let libraryInitializer = "_dl_init"

    /// What to change when the ring buffers overflowed: nil unless 5% or more of the samples
    /// were lost (or all). A sample with a DWARF stack copy larger than the whole ring buffer
    /// never fits; otherwise the buffers filled faster than they were read. `ringPages` is the
    /// `-m` asked for, nil for the default.
    public static func lossAdvice(_ s: ProfileStatistics, callGraph: SamplingOptions.CallGraph, ringPages: Int?) -> String? {
        // The heap probes' own losses have their own line (`heap: L of N records lost`).
        let lost = s.lostBesidesHeap
        let total = UInt64(s.samples) + lost
        guard lost > 0, lost * 20 >= total else { return nil }
        let share = s.samples == 0 ? "every sample was lost" : "\(lost * 100 / total)% of the samples were lost"
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        if case .dwarf(let size) = callGraph, let pages = ringPages, Int(size) + 1024 > pages * page {
            var fits = 1
            while fits * page < 4 * Int(size) { fits *= 2 }
            return "\(share): a sample carries \(size) bytes of stack, more than the \(pages)-page ring buffer holds; raise -m (e.g. -m \(fits)) or copy less stack (--call-graph dwarf,SIZE or -g)"
        }
        let buffer = ringPages.map { "the \($0)-page ring buffers" } ?? "the ring buffers"
        let stack: String = if case .dwarf = callGraph { ", or copy less stack (--call-graph dwarf,8192 or -g)" } else { "" }
        let larger = max(256, (ringPages ?? 128) * 2)
        return "\(share): \(buffer) filled faster than sprof read them; raise -m (e.g. -m \(larger)) or lower -F\(stack)"
    }
}

/// The largest resident set any process reached in a memory timeline, and its pid.
public func peakRSS(_ memory: [Profile.MemoryPoint]) -> (rss: UInt64, pid: Int32)? {
    memory.max { $0.rss < $1.rss }.map { ($0.rss, $0.pid) }
}

/// `812 KiB`, `14.2 MiB`, `1.3 GiB` (binary units, as /proc counts).
public func byteText(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : (value < 10 ? oneDecimal(value) : String(Int(value.rounded()))) + " " + units[unit]
}

/// `12.3` (one decimal, rounded), without Foundation's formatter.
public func oneDecimal(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}
