import SprofRecording
import SprofProfile

/// The interpretation half of the role table (``EventRole``, ``SamplingOptions/roleEvents``): the
/// sample types each role adds to a CPU profile, and how its samples become one value per sample
/// type. ``ProfileBuilder`` aggregates these vectors per (stack, thread); nothing else in it
/// names a sample type. Heap probes make a profile of their own (`HeapProfile.swift`: Go's four
/// heap measures from ``HeapAccounting``), so they add nothing here.
extension EventRole {
    /// The sample types this role's samples contribute to a CPU profile, in column order.
    ///
    /// On-CPU: `samples`/`count` plus the event's own unit, nanoseconds of CPU for the clock
    /// events (their period is in ns, as `go tool pprof` expects of CPU profiles), else the
    /// event's count. Off-CPU: `wall`/`nanoseconds` (on-CPU plus off-CPU time) and
    /// `off-cpu`/`nanoseconds`.
    func sampleTypes(event: EventSpec) -> [Profile.ValueType] {
        switch self {
        case .onCPU:
            return [Profile.ValueType(type: "samples", unit: "count"), Self.measure(of: event)]
        case .offCPU:
            return [Profile.ValueType(type: "wall", unit: "nanoseconds"), Profile.ValueType(type: "off-cpu", unit: "nanoseconds")]
        case .heapProbe:
            return []
        }
    }

    /// What the sampled event's period counts: CPU nanoseconds for cpu-clock and task-clock.
    static func measure(of event: EventSpec) -> Profile.ValueType {
        let isClock = event.type == 1 && (event.config == 0 || event.config == 1)  // PERF_TYPE_SOFTWARE, CPU/TASK_CLOCK
        return isClock ? Profile.ValueType(type: "cpu", unit: "nanoseconds") : Profile.ValueType(type: event.description, unit: "count")
    }
}

/// Where each role's values go in a CPU profile's value vector: the columns of its sample types.
struct ValueColumns {
    /// `samples`/`count`: one per on-CPU sample.
    let samples: Int
    /// The sampled event's measure: the sample's period.
    let measure: Int
    /// `wall`/`nanoseconds` when off-CPU is recorded: on-CPU periods and off-CPU intervals.
    private(set) var wall: Int?
    /// `off-cpu`/`nanoseconds` when off-CPU is recorded: off-CPU intervals.
    private(set) var offCPU: Int?
    /// The number of sample types.
    private(set) var count: Int

    /// The columns of a profile that starts with the on-CPU role's sample types.
    init() {
        samples = 0
        measure = 1
        count = 2
    }

    /// Adds `role`'s sample types to `building` (once) and notes their columns.
    mutating func add(_ role: EventRole, event: EventSpec, to building: inout ProfileBuilding) {
        let indices = role.sampleTypes(event: event).map { building.addSampleType($0) }
        if case .offCPU = role {
            wall = indices[0]
            offCPU = indices[1]
        }
        count = building.sampleTypeCount
    }

    /// A vector of zeros, one per sample type.
    var zeros: [Int64] { [Int64](repeating: 0, count: count) }

    /// An on-CPU sample of `period`: one sample and its period, which is wall time too when the
    /// profile has wall time (off-CPU needs a clock event, so the period is nanoseconds).
    func addOnCPU(period: Int64, to values: inout [Int64]) {
        values[samples] += 1
        values[measure] += period
        if let wall { values[wall] += period }
    }

    /// The values of an off-CPU interval of `ns` nanoseconds: wall and off-CPU time.
    func offCPUValues(ns: Int64) -> [Int64] {
        var values = zeros
        if let wall { values[wall] = ns }
        if let offCPU { values[offCPU] = ns }
        return values
    }
}
