#if canImport(Glibc)
import Glibc
#endif
import SprofCore

extension SamplingOptions {
    /// Options adapted to what this kernel allows this user, the one policy shared by `sprof run`,
    /// `sprof run -p` and the in-process profiler: the frequency is clamped to
    /// `kernel.perf_event_max_sample_rate`, and the kernel is left out when `perf_event_paranoid`
    /// forbids it (each with a notice). A kernel-only event (`:k`) is refused rather than quietly
    /// turned into one that samples nothing.
    public static func prepared(event: EventSpec, rate: Rate, callGraph: CallGraph, ringPages: Int, offCPU: Bool = false,
                                settings: KernelSettings,
                                notice: (String) -> Void) throws(SyscallError) -> SamplingOptions {
        var options = SamplingOptions(event: event, rate: rate, callGraph: callGraph)
        options.offCPU = offCPU
        try options.checkRoles(settings: settings)
        options.ringPages = ringPages
        if case .frequency(let hz) = rate, hz > settings.maxSampleRate {
            notice("-F \(hz) is above kernel.perf_event_max_sample_rate; using \(settings.maxSampleRate) Hz")
            options.rate = .frequency(settings.maxSampleRate)
        }
        if !settings.kernelAllowed && event.excludeUser {
            throw SyscallError(call: "perf_event_open", errno: EACCES,
                               hint: "\(event) samples only the kernel, which this user may not profile: \(settings.permissionHint)")
        }
        if !settings.kernelAllowed && !event.excludeKernel {
            options.excludeKernel = true
            notice("kernel frames excluded: kernel.perf_event_paranoid is \(settings.paranoid); to include them run as root or: sudo sysctl kernel.perf_event_paranoid=1")
        }
        return options
    }
}

extension RecordingSession {
    /// Opens a session; when the event is a hardware event this machine lacks (VMs, containers),
    /// falls back to cpu-clock with the same modifiers and a notice. The session's ``options``
    /// say which event is in force.
    public static func open(_ options: SamplingOptions, target: Target,
                            notice: (String) -> Void) throws(SyscallError) -> RecordingSession {
        let unsupported: SyscallError
        do {
            return try RecordingSession(options: options, target: target)
        } catch {
            unsupported = error
        }
        guard options.event.isHardware, [ENOENT, EOPNOTSUPP, ENODEV].contains(unsupported.errno) else { throw unsupported }
        notice("\(options.event) is not supported on this machine; falling back to cpu-clock")
        var fallback = options
        fallback.event = EventSpec.cpuClock
        fallback.event.excludeKernel = options.event.excludeKernel
        fallback.event.excludeUser = options.event.excludeUser
        fallback.event.modifiers = options.event.modifiers
        return try RecordingSession(options: fallback, target: target)
    }
}
