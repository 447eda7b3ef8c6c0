internal import CSprof
import SprofCore
import SprofRecording

/// Events scheduled together: the kernel puts all of them on the PMU at once or none of them, so
/// ratios between members (instructions per cycle) are exact even when the PMU multiplexes.
///
/// An event the user did not put in `{…}` is a group of one, as in perf: each such event is
/// multiplexed on its own.
public struct CounterGroup: Sendable, Hashable {
    /// The members; the first is the group leader.
    public var events: [EventSpec]
    /// True when the user wrote `{…}` (shown in the output), false for a group of one.
    public var isExplicit: Bool

    /// Creates a group.
    public init(events: [EventSpec], isExplicit: Bool = false) {
        precondition(!events.isEmpty, "empty counter group")
        self.events = events
        self.isExplicit = isExplicit
    }
}

/// Parses `-e` lists and knows the default `sprof stat` set.
public enum CounterEvents {
    /// The names counted when `-e` is not given, in output order (the same set as `perf stat`).
    public static let defaultNames = [
        "task-clock", "context-switches", "cpu-migrations", "page-faults",
        "cycles", "instructions", "branches", "branch-misses",
    ]

    /// The default set, each event in a group of its own.
    public static var defaultGroups: [CounterGroup] {
        defaultNames.map { CounterGroup(events: [EventCatalog.named($0)!]) }
    }

    /// Parses a comma-separated list: names, `name:u`, `rHEX`, `pmu/term=v,…/` (commas inside the
    /// slashes belong to the PMU event) and `{a,b,…}` groups, optionally followed by modifiers that
    /// apply to every member (`{cycles,instructions}:u`).
    public static func parse(_ text: String) throws(EventError) -> [CounterGroup] {
        var groups: [CounterGroup] = []
        var current = ""
        var insideSlashes = false
        var groupMembers: [String]? = nil
        var pendingGroupModifiers = false
        var pendingGroup: [String] = []
        var chars = Array(text)
        chars.append(",") // a sentinel that flushes the last item

        func flushItem() throws(EventError) {
            let item = current.trimmingSpaces
            current = ""
            if pendingGroupModifiers {
                pendingGroupModifiers = false
                // `{…}` was just closed: what follows up to the comma are group-wide modifiers.
                let mods = item.hasPrefix(":") ? String(item.dropFirst()) : item
                var events: [EventSpec] = []
                for member in pendingGroup {
                    let withMods: String
                    if mods.isEmpty {
                        withMods = member
                    } else if member.hasSuffix("/") {
                        withMods = member + mods
                    } else {
                        withMods = member.contains(":") ? member + mods : member + ":" + mods
                    }
                    events.append(try EventCatalog.parse(withMods))
                }
                guard !events.isEmpty else { throw EventError("empty group '{}' in '\(text)'") }
                groups.append(CounterGroup(events: events, isExplicit: true))
                pendingGroup = []
                return
            }
            if groupMembers != nil {
                guard !item.isEmpty else { throw EventError("empty event name in group in '\(text)'") }
                groupMembers!.append(item)
                return
            }
            guard !item.isEmpty else { throw EventError("empty event name in '\(text)'; separate events with single commas") }
            groups.append(CounterGroup(events: [try EventCatalog.parse(item)]))
        }

        for ch in chars {
            switch ch {
            case "/":
                insideSlashes.toggle()
                current.append(ch)
            case "{" where !insideSlashes:
                guard groupMembers == nil else { throw EventError("nested '{' in '\(text)'; groups cannot be nested") }
                guard current.trimmingSpaces.isEmpty else { throw EventError("unexpected '{' after '\(current)' in '\(text)'") }
                groupMembers = []
            case "}" where !insideSlashes:
                guard groupMembers != nil else { throw EventError("'}' without '{' in '\(text)'") }
                try flushItem()
                pendingGroup = groupMembers!
                groupMembers = nil
                pendingGroupModifiers = true
            case "," where !insideSlashes:
                try flushItem()
            default:
                current.append(ch)
            }
        }
        if groupMembers != nil { throw EventError("unclosed '{' in '\(text)'; write groups as {cycles,instructions}") }
        if insideSlashes { throw EventError("unclosed PMU event in '\(text)'; write it as pmu/term=value,…/") }
        return groups
    }

    /// Applies the kernel's privilege rule: with `perf_event_paranoid` ≥ 2 and no privilege, only
    /// user-space counting is allowed, so events without an explicit `:u`/`:k` get `:u` (as perf
    /// does). Returns the adjusted groups and a one-line notice when anything changed.
    public static func restrictedToUserSpace(_ groups: [CounterGroup], settings: KernelSettings) -> (groups: [CounterGroup], notice: String?) {
        guard !settings.kernelAllowed else { return (groups, nil) }
        var changed = false
        let adjusted = groups.map { group -> CounterGroup in
            var g = group
            for i in g.events.indices where g.events[i].modifiers.isEmpty {
                g.events[i].excludeKernel = true
                g.events[i].excludeHypervisor = true
                g.events[i].modifiers = "u"
                changed = true
            }
            return g
        }
        guard changed else { return (groups, nil) }
        return (adjusted, "counting user space only (events shown with :u): kernel.perf_event_paranoid is \(settings.paranoid); to include the kernel run as root or: sudo sysctl kernel.perf_event_paranoid=1")
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\n" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s.removeLast() }
        return String(s)
    }
}
