#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofRecording
import SprofProfile

/// The sprof version written into every profile's provenance.
public let sprofVersionString = ProfileMetadata.currentSprofVersion

extension SystemInfo {
    /// This machine, read from uname(2), /proc and /sys (the same sources `perf report --header` uses).
    public static func current(settings: KernelSettings = .current()) -> SystemInfo {
        var info = SystemInfo()
        var names = utsname()
        if uname(&names) == 0 {
            info.kernelRelease = withUnsafeBytes(of: names.release) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        if let cpuinfo = readTextFile("/proc/cpuinfo"),
           let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            info.cpuModel = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }.description
        }
        info.cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let meminfo = readTextFile("/proc/meminfo"),
           let line = meminfo.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = UInt64(line.split(separator: " ").dropFirst().first ?? "") {
            info.memoryBytes = kb * 1024
        }
        info.perfEventParanoid = settings.paranoid
        info.hasHardwarePMU = access("/sys/bus/event_source/devices/cpu", F_OK) == 0
        return info
    }
}

extension ProfileMetadata {
    /// The provenance of a recording with these (prepared) sampling options.
    static func recording(_ sampling: SamplingOptions, requested: EventSpec, settings: KernelSettings,
                          startTime: UInt64, duration: UInt64, notices: [String]) -> ProfileMetadata {
        var m = ProfileMetadata()
        m.sprofVersion = sprofVersionString
        m.event = sampling.event.description
        m.eventIsHardware = sampling.event.isHardware
        if sampling.event.name != requested.name { m.requestedEvent = requested.description }
        switch sampling.rate {
        case .frequency(let hz): m.rate = .frequency(hz)
        case .period(let n): m.rate = .period(n)
        }
        switch sampling.callGraph {
        case .dwarf(let size):
            m.callGraph = "dwarf"
            m.stackSize = Int(size)
        case .framePointer: m.callGraph = "fp"
        case .none: m.callGraph = "none"
        }
        m.startTime = startTime
        m.duration = duration
        m.system = SystemInfo.current(settings: settings)
        m.kernelExcluded = sampling.excludeKernel || sampling.event.excludeKernel
        m.notices = notices
        return m
    }
}

extension ProfileStatistics {
    /// The counts only the ring-buffer reader knows: the off-CPU event's losses and the reads of
    /// the live stack past the kernel's copy (for the provenance, not the summary line).
    mutating func take(_ session: RecordingSession.Statistics) {
        lostOffCPU = session.lostOffCPU
        lostHeap = session.lostHeap
        liveStackReads = session.liveStackReads
        liveStackChanged = session.liveStackChanged
        liveStackShared = session.liveStackShared
        unwinderLifts = session.consumerLifts
    }
}

/// Wall-clock nanoseconds since the Unix epoch (pprof's `time_nanos`).
func realtimeNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CLOCK_MONOTONIC nanoseconds, the clock the samples carry.
func monotonicNow() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
