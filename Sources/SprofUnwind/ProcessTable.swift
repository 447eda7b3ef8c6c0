#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofRecording

/// What the profiler knows of one process at the current point of the record stream.
public struct ProcessState: Sendable {
    /// The process id.
    public var pid: Int32
    /// The process (main thread) name, from COMM records or /proc.
    public var name: String
    /// Executable mappings, sorted by start, non-overlapping.
    public var mappings: [Mapping]
    /// Bumped whenever the address space changes (mmap, exec), so caches keyed on it stay valid.
    public var generation: Int
    /// Thread names by tid.
    public var threads: [Int32: String]

    /// The mapping containing `address`, by binary search.
    public func mapping(containing address: ProcessAddress) -> Mapping? {
        var lo = 0, hi = mappings.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if mappings[mid].end <= address { lo = mid + 1 } else { hi = mid }
        }
        return lo < mappings.count && mappings[lo].contains(address) ? mappings[lo] : nil
    }

    /// Inserts a mapping, replacing whatever it overlaps (as mmap over an existing range does).
    mutating func insert(_ m: Mapping) {
        var result: [Mapping] = []
        result.reserveCapacity(mappings.count + 1)
        for old in mappings {
            if old.end <= m.start || old.start >= m.end { result.append(old); continue }
            if old.start < m.start {
                var left = old
                left.end = m.start
                result.append(left)
            }
            if old.end > m.end {
                var right = old
                right.fileOffset += m.end.rawValue - old.start.rawValue
                right.start = m.end
                result.append(right)
            }
        }
        result.append(m)
        result.sort { $0.start < $1.start }
        mappings = result
        generation += 1
    }
}

/// Replays MMAP/COMM/FORK/EXIT records into a model of every process seen, so that each sample is
/// interpreted against the address space its process had when the sample was taken.
public final class ProcessTable {
    private var processes: [Int32: ProcessState] = [:]
    private var nextGeneration = 1
    private var seenThreads = Set<Int32>()
    /// Whether to fill in processes first seen through a sample from /proc/PID/maps (they existed
    /// before recording started, e.g. when attaching).
    public var readProcForUnknown = true

    /// Creates an empty table.
    public init() {}

    /// Processes seen (including exited ones).
    public var processCount: Int { processes.count }
    /// Threads seen: those that sampled, forked or named themselves, and each process's main
    /// thread (its tid is the pid), which exists for every process seen even when only an MMAP
    /// record named it (system-wide, processes already running): never fewer than processes.
    public var threadCount: Int { seenThreads.union(processes.keys).count }

    /// Applies a side-band record; samples are ignored here.
    public func apply(_ record: PerfRecord) {
        switch record {
        case .mmap(let m):
            guard m.isExecutable else { return }
            let mapping = Mapping(start: ProcessAddress(m.start), end: ProcessAddress(m.start &+ m.length),
                                  fileOffset: m.pageOffset, path: m.path, buildID: m.buildID)
            update(m.pid) { $0.insert(mapping) }
        case .comm(let c):
            seenThreads.insert(c.tid)
            if c.isExec {
                let generation = bumpGeneration()
                update(c.pid, create: false) { p in
                    p.mappings = []
                    p.generation = generation
                    p.threads = [:]
                }
                if processes[c.pid] == nil {
                    processes[c.pid] = ProcessState(pid: c.pid, name: c.name, mappings: [], generation: generation, threads: [:])
                }
            }
            update(c.pid) { p in
                if c.pid == c.tid { p.name = c.name }
                p.threads[c.tid] = c.name
            }
        case .fork(let t):
            seenThreads.insert(t.tid)
            if t.pid != t.parentPID, processes[t.pid] == nil {
                // A new process starts as a copy of its parent's address space.
                var child = processes[t.parentPID] ?? ProcessState(pid: t.pid, name: "", mappings: [], generation: 0, threads: [:])
                child.pid = t.pid
                child.threads = [t.tid: child.name]
                child.generation = bumpGeneration()
                processes[t.pid] = child
            } else {
                update(t.pid) { p in p.threads[t.tid] = p.threads[t.tid] ?? p.name }
            }
        default:
            break
        }
    }

    /// The state of `pid`, creating it (from /proc when allowed) if it was never seen.
    public func process(_ pid: Int32, tid: Int32) -> ProcessState {
        seenThreads.insert(tid)
        if let p = processes[pid] { return p }
        var p = ProcessState(pid: pid, name: "", mappings: [], generation: bumpGeneration(), threads: [:])
        if readProcForUnknown { Self.loadFromProc(&p) }
        if p.name.isEmpty { p.name = "pid-\(pid)" }
        processes[pid] = p
        return p
    }

    /// Seeds a process from /proc (attach mode).
    public func seedFromProc(_ pid: Int32) {
        var p = processes[pid] ?? ProcessState(pid: pid, name: "", mappings: [], generation: bumpGeneration(), threads: [:])
        Self.loadFromProc(&p)
        processes[pid] = p
    }

    private func bumpGeneration() -> Int {
        defer { nextGeneration += 1 }
        return nextGeneration
    }

    private func update(_ pid: Int32, create: Bool = true, _ body: (inout ProcessState) -> Void) {
        if processes[pid] == nil {
            guard create else { return }
            processes[pid] = ProcessState(pid: pid, name: "", mappings: [], generation: bumpGeneration(), threads: [:])
        }
        body(&processes[pid]!)
        processes[pid]!.generation = bumpGeneration()
    }

    /// Reads executable mappings and the name from /proc/PID.
    static func loadFromProc(_ p: inout ProcessState) {
        if let comm = readTextFile("/proc/\(p.pid)/comm") {
            p.name = String(comm.prefix { $0 != "\n" })
        }
        guard let maps = readTextFile("/proc/\(p.pid)/maps") else { return }
        for line in maps.split(separator: "\n") {
            // start-end perms offset dev inode path
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count >= 5, fields[1].contains("x") else { continue }
            let range = fields[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16),
                  let offset = UInt64(fields[2], radix: 16) else { continue }
            let path = fields.count == 6 ? String(fields[5]).trimmingCharacters(in: " ") : "//anon"
            p.insert(Mapping(start: ProcessAddress(start), end: ProcessAddress(end), fileOffset: offset, path: path))
        }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
