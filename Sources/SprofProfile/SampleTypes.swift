/// Sample types as data: the one rule every view (report, flamegraph, convert, diff, `run`'s
/// outputs, the web UI) uses to pick the values it shows, and the one way it names them.
///
/// The default follows pprof (`go tool pprof`'s `-sample_index`): the profile's
/// `default_sample_type` when set, else its last sample type. Decoders put that rule's answer in
/// ``Profile/defaultSampleType``, so a view that shows the default reads only that field.
extension Profile {
    /// The index of the sample type a view shows: `name` when given (a type of this profile, or
    /// an alias such as `offcpu`), else ``defaultSampleType``.
    ///
    /// - Throws: ``UnknownSampleType`` when the profile has no type of that name; its description
    ///   is one line listing the types the profile has.
    public func sampleTypeIndex(selecting name: String?) throws -> Int {
        guard let name else { return defaultSampleType }
        let wanted = ValueType.aliases[name] ?? name
        if let i = sampleTypeIndex(wanted) { return i }
        throw UnknownSampleType(name: name, available: sampleTypes.map(\.type), hint: ValueType.howToRecord[wanted])
    }

    /// What a view calls one unit of sample type `index`, in a flame graph's tooltips and a
    /// report's header: `samples` for sprof's and Go's sample counts (the name flame graphs have
    /// always used), else the type and its unit (`cpu ns`, `inuse_space bytes`, `alloc_objects`).
    public func valueLabel(_ index: Int) -> String { sampleTypes[index].label }
}

extension Profile.ValueType {
    /// Other names accepted for a type: `offcpu` (the name of `run`'s `PREFIX.offcpu.svg`) for `off-cpu`.
    public static let aliases = ["offcpu": "off-cpu"]

    /// How to get a type sprof records only when asked, for the message about a profile without it.
    public static let howToRecord = ["wall": "record with --off-cpu for wall and off-cpu",
                                     "off-cpu": "record with --off-cpu for wall and off-cpu"]

    /// What one unit of this type is called in a view: `samples` for `samples`/`count`, else the
    /// type with its unit shortened (`ns` for nanoseconds; nothing for a plain count).
    public var label: String {
        if type == "samples" && unit == "count" { return "samples" }
        switch unit {
        case "count", "": return type
        case "nanoseconds": return type + " ns"
        default: return type + " " + unit
        }
    }
}

/// A sample type name the profile does not have (`--sample-type NAME`).
public struct UnknownSampleType: Error, CustomStringConvertible, Sendable {
    /// The name asked for.
    public var name: String
    /// The profile's sample types, in order.
    public var available: [String]
    /// How to record the type, when sprof knows (`wall`, `off-cpu`).
    public var hint: String?
    /// One line: `this profile has no 'NAME' values (it has: a, b, c)`, and the hint.
    public var description: String {
        "this profile has no '\(name)' values (it has: \(available.joined(separator: ", ")))" + (hint.map { "; " + $0 } ?? "")
    }
}
