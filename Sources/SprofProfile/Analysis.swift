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
        // Keys are interned once and summed in arrays indexed by key: hashing a `[String]` per
        // frame of every sample was most of a large profile's table (30,000 stacks of 20 frames).
        var keyIDs: [[String]: Int] = [:]
        var keyList: [[String]] = []
        func intern(_ key: [String]) -> Int {
            if let id = keyIDs[key] { return id }
            keyIDs[key] = keyList.count
            keyList.append(key)
            return keyList.count - 1
        }
        let perThread = keys.contains(.comm) || keys.contains(.thread)
        let byFrame = keys.contains(.sym) || keys.contains(.dso)
        // A location's keys (innermost inline entry first), per location, or per location and
        // thread when a key names the thread or process.
        var locationKeys = [[Int]?](repeating: nil, count: perThread ? 0 : locations.count)
        var threadLocationKeys: [Int: [Int]] = [:]
        func keysOf(location l: Int, thread: Int?) -> [Int] {
            if !perThread, let known = locationKeys[l] { return known }
            let pair = l * (threads.count + 1) + (thread.map { $0 + 1 } ?? 0)
            if perThread, let known = threadLocationKeys[pair] { return known }
            let ids = locationGroupKeys(location: l, thread: thread, keys: keys, names: shown, granularity: granularity).map(intern)
            if perThread { threadLocationKeys[pair] = ids } else { locationKeys[l] = ids }
            return ids
        }
        // A stack's keys, each once (a recursive function counts once per sample), and its leaf's.
        var stamp: [Int] = []
        var stackKeys: [Int: (leaf: Int?, all: [Int])] = [:]
        var selfValues: [Int64] = [], totalValues: [Int64] = []
        for (n, sample) in samples.enumerated() {
            let value = sample.values[valueIndex]
            guard value != 0 else { continue }
            let cacheKey = perThread ? sample.stack * (threads.count + 1) + (sample.thread.map { $0 + 1 } ?? 0) : sample.stack
            var keysOfStack: (leaf: Int?, all: [Int])
            if let known = stackKeys[cacheKey] {
                keysOfStack = known
            } else if !byFrame {
                // Grouped by process or thread only, every sample counts, also one without frames
                // (a folded line `main 5`); sym and dso rows need a frame, as in `go tool pprof -top`.
                let t = sample.thread.map { threads[$0] }
                let id = intern(keys.map { $0 == .comm ? t.map { $0.processName } ?? "" : t.map { "\($0.name)-\($0.tid)" } ?? "" })
                keysOfStack = (id, [id])
                stackKeys[cacheKey] = keysOfStack
            } else {
                keysOfStack = (nil, [])
                for (depth, l) in stacks[sample.stack].enumerated() {
                    let ids = keysOf(location: l, thread: sample.thread)
                    if depth == 0 { keysOfStack.leaf = ids.first }
                    if stamp.count < keyList.count { stamp += repeatElement(-1, count: keyList.count - stamp.count) }
                    for id in ids where stamp[id] != n {
                        stamp[id] = n
                        keysOfStack.all.append(id)
                    }
                }
                stackKeys[cacheKey] = keysOfStack
            }
            if totalValues.count < keyList.count {
                selfValues += repeatElement(0, count: keyList.count - selfValues.count)
                totalValues += repeatElement(0, count: keyList.count - totalValues.count)
            }
            if let leaf = keysOfStack.leaf { selfValues[leaf] += value }
            for id in keysOfStack.all { totalValues[id] += value }
        }
        let denominator = grandTotal == 0 ? 1.0 : Double(grandTotal)
        // Every interned key came from a sample with a value, as the rows of a dictionary of totals did.
        return keyList.indices.map { id in
            let own = selfValues[id], totalValue = totalValues[id]
            return CostRow(key: keyList[id], selfValue: own, totalValue: totalValue,
                           selfPercent: 100 * Double(own) / denominator, totalPercent: 100 * Double(totalValue) / denominator)
        }.sorted { a, b in
            if a.selfValue != b.selfValue { return a.selfValue > b.selfValue }
            if a.totalValue != b.totalValue { return a.totalValue > b.totalValue }
            return a.key.lexicographicallyPrecedes(b.key)
        }
    }

    /// The keys of one location of a stack (one per inline entry, innermost first) for `thread`.
    private func locationGroupKeys(location locationIndex: Int, thread: Int?, keys: [SortKey], names functionNames: FunctionNames,
                                   granularity: Granularity) -> [[String]] {
        let t = thread.map { threads[$0] }
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
                return name + " " + (f.file.isEmpty ? "?" : NameCleaning.cleaned(f.file, foldedSeparator: false)) + ":" + (line.line > 0 ? String(line.line) : "?")
            }
        }
        if granularity == .addresses && location.kind != .marker {
            let address = "0x" + String(location.address, radix: 16) + " "
            names = names.map { $0.hasPrefix("[") && location.lines.isEmpty ? $0 : address + $0 }
        }
        return names.map { name in
            keys.map { k in
                switch k {
                // Function names come cleaned (FunctionNames); the other keys are cleaned here.
                case .comm: return t.map { $0.processName.isEmpty ? "" : NameCleaning.cleaned($0.processName, foldedSeparator: false) } ?? ""
                case .dso: return NameCleaning.cleaned(dso, foldedSeparator: false)
                case .sym: return name
                case .thread: return t.map { NameCleaning.cleaned("\($0.name)-\($0.tid)", foldedSeparator: false) } ?? ""
                }
            }
        }
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
