#if canImport(Glibc)
import Glibc
#endif
internal import CSprof
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
    private let buildIDs = FileBuildIDs()
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
        if readProcForUnknown { loadFromProc(&p) }
        if p.name.isEmpty { p.name = "pid-\(pid)" }
        processes[pid] = p
        return p
    }

    /// Seeds a process from /proc (attach mode).
    public func seedFromProc(_ pid: Int32) {
        var p = processes[pid] ?? ProcessState(pid: pid, name: "", mappings: [], generation: bumpGeneration(), threads: [:])
        loadFromProc(&p)
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
    func loadFromProc(_ p: inout ProcessState) {
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
            var mapping = Mapping(start: ProcessAddress(start), end: ProcessAddress(end), fileOffset: offset, path: path)
            mapping.buildID = buildIDs.buildID(of: mapping, pid: p.pid)
            p.insert(mapping)
        }
    }
}

/// GNU build-ids read from the files behind mappings, for processes whose MMAP2 records (which
/// carry the id, `build_id=1`) came before the recording: `-p`, and the processes already running
/// under `-a`. Without them such mappings had no build-id in the pprof, and a library mapped at
/// the same range by a process seen through MMAP2 appeared twice (once with, once without).
///
/// The file is read where the process sees it: its path, else `/proc/PID/map_files/START-END`
/// when the path is gone or replaced (``MappedFiles``). Ids are cached by device and inode, so
/// that `-a` reads libc once, not once per process.
final class FileBuildIDs {
    /// One cache per ``ProcessTable``, which is used from one thread.
    private struct FileKey: Hashable {
        var device: UInt64
        var inode: UInt64
        var modified: Int
    }
    private var cache: [FileKey: [UInt8]] = [:]

    /// The build-id of the file behind `mapping` in process `pid`, or empty (no file, no note).
    func buildID(of mapping: Mapping, pid: Int32) -> [UInt8] {
        guard MappedFiles.isFileMapping(MappedFiles.filePath(mapping.path)),
              let path = MappedFiles.readablePath(mapping, pid: pid) else { return [] }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return [] }
        let key = FileKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), modified: st.st_mtim.tv_sec)
        if let known = cache[key] { return known }
        let id = Self.read(fd)
        cache[key] = id
        return id
    }

    /// The NT_GNU_BUILD_ID note of the ELF file open at `fd`, or empty.
    static func read(_ fd: Int32) -> [UInt8] {
        _ = elf_version(UInt32(EV_CURRENT))
        guard let elf = elf_begin(fd, ELF_C_READ_MMAP, nil) else { return [] }
        defer { elf_end(elf) }
        var bits: UnsafeRawPointer?
        let n = dwelf_elf_gnu_build_id(elf, &bits)
        guard n > 0, let bits else { return [] }
        return Array(UnsafeRawBufferPointer(start: bits, count: n))
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
