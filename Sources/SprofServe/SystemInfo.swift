import Foundation
import SprofFormats
import SprofOutput
import SprofProfile

/// The machine a job ran on, as its profile's provenance describes it (`GET /api/jobs/ID/system`).
public struct SystemInfoRecord: Codable, Sendable, Equatable {
    /// `uname -r` (from /proc/sys/kernel/osrelease).
    public var kernelRelease: String
    /// `model name` of /proc/cpuinfo.
    public var cpuModel: String
    /// Online CPUs.
    public var cores: Int
    /// `MemTotal` of /proc/meminfo, in bytes.
    public var memoryBytes: UInt64
    /// `kernel.perf_event_paranoid`; nil when unreadable.
    public var perfEventParanoid: Int?
    /// Whether the kernel exposes a hardware PMU (`/sys/bus/event_source/devices/cpu`).
    public var hardwarePMU: Bool
    /// The version of sprof that recorded the job.
    public var sprofVersion: String

    enum CodingKeys: String, CodingKey {
        case kernelRelease = "kernel_release", cpuModel = "cpu_model", cores
        case memoryBytes = "memory_bytes", perfEventParanoid = "perf_event_paranoid"
        case hardwarePMU = "hardware_pmu", sprofVersion = "sprof_version"
    }
}

extension SystemInfoRecord {
    /// The machine `metadata` was recorded on (its provenance's ``SystemInfo``, which the
    /// recorder read once from /proc and /sys), and the sprof version that recorded it.
    public init(_ metadata: ProfileMetadata) {
        let s = metadata.system
        self.init(kernelRelease: s.kernelRelease, cpuModel: s.cpuModel, cores: s.cores, memoryBytes: s.memoryBytes,
                  perfEventParanoid: s.perfEventParanoid, hardwarePMU: s.hasHardwarePMU, sprofVersion: metadata.sprofVersion)
    }
}

/// The sprof the server runs.
public enum SystemInfoReader {
    /// The version the server reports for sprof (``ProfileMetadata/currentSprofVersion``).
    public static let sprofVersion = ProfileMetadata.currentSprofVersion
}
