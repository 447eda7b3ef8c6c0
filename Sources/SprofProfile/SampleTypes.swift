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
    /// Other names accepted for a type: a ``SampleTypeView``'s name where it differs from its
    /// type (`offcpu`, the name of `run`'s `PREFIX.offcpu.svg`, for `off-cpu`).
    public static let aliases = Dictionary(SampleTypeView.table.filter { $0.name != $0.sampleType }.map { ($0.name, $0.sampleType) },
                                           uniquingKeysWith: { first, _ in first })

    /// How to get a type sprof records only when asked, for the message about a profile without
    /// it: `record with --off-cpu for wall and off-cpu`, from ``SampleTypeView/table``.
    public static let howToRecord: [String: String] = {
        let table = SampleTypeView.table
        return Dictionary(table.map { view in
            let together = table.filter { $0.flag == view.flag }.map(\.sampleType)
            return (view.sampleType, "record with \(view.flag) for \(together.joined(separator: " and "))")
        }, uniquingKeysWith: { first, _ in first })
    }()

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

/// A view of one sample type beside a profile's default one: the wall-clock and off-CPU flame
/// graphs. The table is the one place that says which sample types get such a view and what the
/// view is called; `sprof run`'s outputs (`PREFIX.NAME.svg`), the server's views
/// (`view/NAME`) and the web UI's tabs are made from it, and each appears only for a profile
/// that has the type. A new sample type gets its view by a row here.
public struct SampleTypeView: Sendable, Hashable {
    /// The sample type shown (`wall`, `off-cpu`).
    public var sampleType: String
    /// The view's name: in `run`'s file `PREFIX.NAME.svg`, an older run's `profile.NAME.folded`,
    /// the server's `view/NAME` and the web UI's tab (`offcpu`).
    public var name: String
    /// The web UI's tab label (`Off-CPU`).
    public var tab: String
    /// What the values measure, in the flame graph's title and the "not recorded" message
    /// (`off-CPU time`).
    public var what: String
    /// The `sprof run` flag that records the type (`--off-cpu`).
    public var flag: String
    /// The same, as the web UI's job form names it (`off-CPU recording`).
    public var jobOption: String

    /// Creates a row of the table.
    public init(sampleType: String, name: String, tab: String, what: String, flag: String, jobOption: String) {
        self.sampleType = sampleType
        self.name = name
        self.tab = tab
        self.what = what
        self.flag = flag
        self.jobOption = jobOption
    }

    /// The file suffix of its flame graph: `.NAME.svg`.
    public var suffix: String { "." + name + ".svg" }

    /// The message of a view whose profile lacks the type.
    public var notRecorded: String { "\(what) was not recorded for this job: create it with \(jobOption) on" }

    /// Every sample type that has a view of its own, in the order views are listed and written.
    public static let table: [SampleTypeView] = [
        SampleTypeView(sampleType: "wall", name: "wall", tab: "Wall", what: "wall-clock time", flag: "--off-cpu", jobOption: "off-CPU recording"),
        SampleTypeView(sampleType: "off-cpu", name: "offcpu", tab: "Off-CPU", what: "off-CPU time", flag: "--off-cpu", jobOption: "off-CPU recording"),
    ]

    /// The row named `name` (a view name such as `offcpu`) in `table`.
    public static func named(_ name: String, in table: [SampleTypeView] = table) -> SampleTypeView? {
        table.first { $0.name == name }
    }

    /// The rows of `table` whose type `profile` has, with the type's index: the views it offers.
    public static func views(of profile: Profile, in table: [SampleTypeView] = table) -> [(view: SampleTypeView, index: Int)] {
        table.compactMap { view in profile.sampleTypeIndex(view.sampleType).map { (view, $0) } }
    }
}
