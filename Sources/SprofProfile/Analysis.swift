/// What ``Profile/top(by:valueIndex:names:granularity:)`` groups by: perf report's `--sort` keys.
public enum SortKey: String, Sendable, CaseIterable {
    /// The process name (perf's `comm`).
    case comm
    /// The mapped file's base name (perf's `dso`).
    case dso
    /// The function (perf's `sym`).
    case sym
    /// The thread, as `name-tid`.
    case thread
}

/// How finely ``Profile/top(by:valueIndex:names:granularity:)`` tells `sym` rows apart:
/// pprof's `-functions`, `-lines` and `-addresses`.
public enum Granularity: String, Sendable, CaseIterable {
    /// One row per function.
    case functions
    /// One row per function and source line: `name file:line`.
    case lines
    /// One row per sampled address (a location), with its function and line: `0xADDRESS name file:line`.
    case addresses
}

/// One row of a top table: a function (or another grouping) with its self and total cost.
public struct CostRow: Sendable, Hashable {
    /// The grouping's values, one per sort key (e.g. `["qsl-bench", "libc.so.6", "memmove"]`).
    public var key: [String]
    /// Value in the leaf frame: the group's own cost (pprof's "flat").
    public var selfValue: Int64
    /// Value anywhere on the stack, counted once per sample even when recursive (pprof's "cum").
    public var totalValue: Int64
    /// ``selfValue`` as a percentage of the profile's total.
    public var selfPercent: Double
    /// ``totalValue`` as a percentage of the profile's total.
    public var totalPercent: Double
    /// The key joined for display (`comm dso sym` order as given).
    public var name: String { key.joined(separator: " ") }
}

/// A thread's share of the profile.
public struct ThreadCost: Sendable, Hashable {
    /// Process id.
    public var pid: Int32
    /// Thread id.
    public var tid: Int32
    /// Process name.
    public var processName: String
    /// Thread name.
    public var name: String
    /// Summed value.
    public var value: Int64
    /// Percentage of the profile's total.
    public var percent: Double
}

extension Profile {
    /// Self and total cost grouped by `keys`, sorted by self (then total, then name), as `perf
    /// report --stdio --sort …` and `go tool pprof -top` list them. Function names are those
    /// `go tool pprof` shows: no `_[k]`/`_[i]` suffixes, inlined functions as their own entries.
    /// Markers are rows too, as in `go tool pprof -top`: a `[truncated]` row's total is the
    /// samples whose stacks were cut short before their root (it has no self value).
    /// `granularity` splits `sym` rows by source line or by address, as pprof's `-lines` and `-addresses` do.
    /// `names` are the view's function names (``FunctionNames``); nil for this profile's short names.
    public func top(by keys: [SortKey] = [.sym], valueIndex: Int = 0, names: FunctionNames? = nil,
                    granularity: Granularity = .functions) -> [CostRow] {
        let shown = names ?? functionNames()
        let grandTotal = total(valueIndex)
        var selfValues: [[String]: Int64] = [:]
        var totalValues: [[String]: Int64] = [:]
        var stackKeys: [Int: (leaf: [String]?, all: Set<[String]>)] = [:]
        for sample in samples {
            let value = sample.values[valueIndex]
            guard value != 0 else { continue }
            let keysOfStack: (leaf: [String]?, all: Set<[String]>)
            if keys.contains(.comm) || keys.contains(.thread) {
                keysOfStack = groupKeys(stack: sample.stack, thread: sample.thread, keys: keys, names: shown, granularity: granularity)
            } else if let known = stackKeys[sample.stack] {
                keysOfStack = known
            } else {
                keysOfStack = groupKeys(stack: sample.stack, thread: nil, keys: keys, names: shown, granularity: granularity)
                stackKeys[sample.stack] = keysOfStack
            }
            if let leaf = keysOfStack.leaf { selfValues[leaf, default: 0] += value }
            for key in keysOfStack.all { totalValues[key, default: 0] += value }
        }
        let denominator = grandTotal == 0 ? 1.0 : Double(grandTotal)
        return totalValues.map { key, totalValue in
            let own = selfValues[key] ?? 0
            return CostRow(key: key, selfValue: own, totalValue: totalValue,
                           selfPercent: 100 * Double(own) / denominator, totalPercent: 100 * Double(totalValue) / denominator)
        }.sorted { a, b in
            if a.selfValue != b.selfValue { return a.selfValue > b.selfValue }
            if a.totalValue != b.totalValue { return a.totalValue > b.totalValue }
            return a.key.lexicographicallyPrecedes(b.key)
        }
    }

    private func groupKeys(stack: Int, thread: Int?, keys: [SortKey], names functionNames: FunctionNames,
                           granularity: Granularity) -> (leaf: [String]?, all: Set<[String]>) {
        var all = Set<[String]>()
        var leaf: [String]?
        let t = thread.map { threads[$0] }
        // Grouped by process or thread only, every sample counts, also one without frames (a
        // folded line `main 5`); sym and dso rows need a frame, as in `go tool pprof -top`.
        if !keys.contains(.sym) && !keys.contains(.dso) {
            let key: [String] = keys.map { $0 == .comm ? t.map { $0.processName } ?? "" : t.map { "\($0.name)-\($0.tid)" } ?? "" }
            return (key, [key])
        }
        for (depth, locationIndex) in stacks[stack].enumerated() {
            let location = locations[locationIndex]
            let dso = location.mapping.map { mappings[$0].baseName } ?? (location.kind == .kernel ? "[kernel.kallsyms]" : "[unknown]")
            var names: [String]
            if location.lines.isEmpty {
                names = frameNames(ofLocation: locationIndex, names: functionNames)
            } else {
                names = location.lines.map { line in
                    let f = functions[line.function]
                    let name = functionNames[line.function]
                    // Without line information (kernel, stripped code) the row is the function, as in pprof.
                    guard granularity != .functions, !f.file.isEmpty || line.line > 0 else { return name }
                    return name + " " + (f.file.isEmpty ? "?" : f.file) + ":" + (line.line > 0 ? String(line.line) : "?")
                }
            }
            if granularity == .addresses && location.kind != .marker {
                let address = "0x" + String(location.address, radix: 16) + " "
                names = names.map { $0.hasPrefix("[") && location.lines.isEmpty ? $0 : address + $0 }
            }
            for (i, name) in names.enumerated() {
                let key: [String] = keys.map { k in
                    switch k {
                    case .comm: return t.map { $0.processName } ?? ""
                    case .dso: return dso
                    case .sym: return name
                    case .thread: return t.map { "\($0.name)-\($0.tid)" } ?? ""
                    }
                }
                if depth == 0 && i == 0 { leaf = key }
                all.insert(key)
            }
        }
        return (leaf, all)
    }

    /// Per-thread totals of value `valueIndex`, largest first.
    public func threadTotals(valueIndex: Int = 0) -> [ThreadCost] {
        var sums: [Int: Int64] = [:]
        for s in samples { if let t = s.thread { sums[t, default: 0] += s.values[valueIndex] } }
        let denominator = max(1, Double(total(valueIndex)))
        return sums.map { t, v in
            let th = threads[t]
            return ThreadCost(pid: th.pid, tid: th.tid, processName: th.processName, name: th.name, value: v,
                              percent: 100 * Double(v) / denominator)
        }.sorted { a, b in a.value != b.value ? a.value > b.value : (a.pid, a.tid, a.name) < (b.pid, b.tid, b.name) }
    }
}

/// One function's change between two profiles, as `sprof diff` lists it.
public struct DiffRow: Sendable, Hashable {
    /// The function.
    public var name: String
    /// Its self share of the base profile, in percent.
    public var basePercent: Double
    /// Its self share of the new profile, in percent.
    public var newPercent: Double
    /// Its total share (anywhere on the stack) of the base profile, in percent.
    public var baseTotalPercent: Double
    /// Its total share of the new profile, in percent.
    public var newTotalPercent: Double
    /// `newPercent - basePercent`: the change of the self share, in percentage points.
    public var delta: Double { newPercent - basePercent }
    /// `newTotalPercent - baseTotalPercent`: the change of the total share, in percentage points.
    public var totalDelta: Double { newTotalPercent - baseTotalPercent }

    /// Creates a row.
    public init(name: String, basePercent: Double, newPercent: Double, baseTotalPercent: Double = 0, newTotalPercent: Double = 0) {
        self.name = name
        self.basePercent = basePercent
        self.newPercent = newPercent
        self.baseTotalPercent = baseTotalPercent
        self.newTotalPercent = newTotalPercent
    }
}

/// Compares two profiles by each function's self and total share (shares, not counts, so that
/// profiles of different lengths compare; `go tool pprof -top -diff_base` with `-normalize`
/// reads the same way, and prints flat and cum as these rows do).
public enum ProfileDiff {
    /// Which change ranks the rows.
    public enum Order: String, Sendable, CaseIterable {
        /// The larger of the self and the total change (the default: a shift between callers of
        /// one leaf changes the callers' totals only).
        case either
        /// The self-share change.
        case `self`
        /// The total-share change.
        case total
    }

    /// Rows for every function in either profile, largest absolute change (by `order`) first,
    /// ties by name. Functions are named over both profiles at once (``Profile/FunctionNames/shared(_:style:)``),
    /// so that a function has one name on both sides even when a short name collides in one only.
    public static func rows(base: Profile, new: Profile, baseValue: Int = 0, newValue: Int = 0, order: Order = .either) -> [DiffRow] {
        let shown = Profile.FunctionNames.shared([base, new])
        let b = Dictionary(uniqueKeysWithValues: base.top(valueIndex: baseValue, names: shown[0]).map { ($0.name, $0) })
        let n = Dictionary(uniqueKeysWithValues: new.top(valueIndex: newValue, names: shown[1]).map { ($0.name, $0) })
        let names = Set(b.keys).union(n.keys)
        return sorted(names.map {
            DiffRow(name: $0, basePercent: b[$0]?.selfPercent ?? 0, newPercent: n[$0]?.selfPercent ?? 0,
                    baseTotalPercent: b[$0]?.totalPercent ?? 0, newTotalPercent: n[$0]?.totalPercent ?? 0)
        }.filter { $0.baseTotalPercent != 0 || $0.newTotalPercent != 0 }, order: order)
    }

    /// The size of a row's change that `order` ranks by, in percentage points.
    public static func change(_ row: DiffRow, _ order: Order) -> Double {
        switch order {
        case .either: return max(abs(row.delta), abs(row.totalDelta))
        case .self: return abs(row.delta)
        case .total: return abs(row.totalDelta)
        }
    }

    /// `rows` by ``change(_:_:)``, largest first, then by the other change, then by name.
    public static func sorted(_ rows: [DiffRow], order: Order) -> [DiffRow] {
        rows.sorted { x, y in
            let (ax, ay) = (change(x, order), change(y, order))
            if ax != ay { return ax > ay }
            let (bx, by) = (change(x, .either), change(y, .either))
            if bx != by { return bx > by }
            return x.name < y.name
        }
    }
}
