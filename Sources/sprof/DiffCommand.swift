import ArgumentParser
import Foundation
import Sprof

/// `sprof diff BASE NEW`: a differential flame graph and the largest self- and total-share changes.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two profiles: a differential flame graph and a table of self- and total-share changes.",
        discussion: """
            Widths come from NEW. A frame is red when its self count grew against BASE, blue when it \
            shrank, more saturated the larger the change (the meaning FlameGraph's difffolded.pl and \
            inferno give it). BASE's counts are scaled to NEW's total first (--no-normalize compares \
            raw counts). The table lists each function's self share (its own code) and total share \
            (it and everything it called) in BASE and NEW, in percent, and both changes in \
            percentage points, largest change of either first (--sort self|total), as `go tool \
            pprof -top -diff_base` prints flat and cum. Inputs may be pprof or folded, in any mix, \
            of one kind: a CPU profile is not compared with a heap profile, nor profiles of two events.

            When both profiles hold repeated runs (sprof run -r N), each function's share is \
            measured in every run: the table shows mean ± 95% confidence interval per side, the \
            q-value of each change (Welch's t-test; with 8 runs a side or more, Mann–Whitney where \
            shares are far from normal; Benjamini–Hochberg over the functions at 0.5% or more on \
            either side), and marks changes with q <= 0.05 with '*'.

            With --fail-above P, sprof exits 2 when a function's total share (--gate self: self \
            share) grew by more than P points, and, with repeated runs on both sides, significantly \
            (q <= 0.05), naming it and its q: a CI gate, like `sprof stat --baseline`.

            --artifacts DIR writes the CI layout: DIR/flamegraphs/NAME_cpu.svg, DIR/NAME_cpu_top.txt \
            (NEW, as `pprof -top`) and DIR/NAME_cpu_diff_top.txt (NEW against BASE, as `pprof -top \
            -diff_base`); heap profiles give NAME_mem_top.txt and NAME_mem_diff_top.txt.

            Examples:
              sprof diff yesterday.pb.gz today.pb.gz -o diff.svg
              sprof diff base.folded new.pb.gz --fail-above 5
              sprof diff base.pb.gz new.pb.gz --artifacts ci-out --name checkout
            """
    )

    @Argument(help: ArgumentHelp("The base profile (pprof or folded).", valueName: "base"))
    var base: String

    @Argument(help: ArgumentHelp("The new profile (pprof or folded).", valueName: "new"))
    var new: String

    @Option(name: [.short, .long], help: "The differential flame graph (SVG; default diff.svg unless --artifacts is given).")
    var output: String?

    @Flag(name: .customLong("no-normalize"), help: "Compare raw counts instead of scaling BASE to NEW's total.")
    var noNormalize = false

    @Option(name: .customLong("fail-above"), help: "Exit 2 when any function's share (see --gate) grew by more than this many points (and significantly, with repeated runs).")
    var failAbove: Double?

    @Option(help: "The share --fail-above watches: total (default; grew anywhere in the tree) or self.")
    var gate = "total"

    @Option(help: "Order of the table: the largest change of either share (default), self, or total.")
    var sort: String?

    @Option(help: "Rows of the table (0: all).")
    var limit = 20

    @Option(name: [.customLong("view"), .customLong("sample-type")], help: "Which values to compare: the sample type's name (samples, cpu, wall, off-cpu; alloc_space, inuse_space, … in heap profiles). Default: the profiles' default, when both have it.")
    var view: String?

    @Option(help: "Write the CI artifact layout into this directory (created if missing).")
    var artifacts: String?

    @Option(help: "NAME of the --artifacts files (default: NEW's file name without its extensions).")
    var name: String?

    func run() throws {
        if let failAbove, !(failAbove >= 0) { throw usage("--fail-above \(failAbove): must be a number of percentage points, 0 or more") }
        guard limit >= 0 else { throw usage("--limit \(limit): must be 0 or more") }
        guard let gateShare = ProfileComparison.Gate(rawValue: gate) else { throw usage("--gate \(gate): must be self or total") }
        let order: ProfileDiff.Order
        switch sort {
        case nil: order = .either
        case "self": order = .self
        case "total": order = .total
        case let other?: throw usage("--sort \(other): must be self or total (default: the larger change of either)")
        }
        let artifactName = try name.map(Self.checkedName) ?? Self.name(fromPath: new)
        if name != nil && artifacts == nil { throw usage("--name goes with --artifacts DIR") }
        try refuseEmptyPaths([("BASE", base), ("NEW", new), ("-o", output), ("--artifacts", artifacts)])
        // Standard input can be read once: the second reader would see it empty.
        if base == "-" && new == "-" { throw usage("both inputs cannot be standard input: give BASE or NEW as a file") }
        let outputPath = output ?? (artifacts == nil ? "diff.svg" : nil)
        try refuseOutputOverInput([outputPath], inputs: [base, new])
        let outputFile = try outputPath.map { try OutputFile(path: $0) }
        // The names a saved profile showed are made again from its linkage names, so that both
        // sides are named together from the same facts (a collision in one side only).
        let baseProfile = try readProfile(base).withNamesFromSystemNames()
        let newProfile = try readProfile(new).withNamesFromSystemNames()
        // The layout's file names depend on NEW's kind (cpu or mem): checked as soon as it is known,
        // before anything is written, as -o was above.
        let layout = artifacts.map { DiffArtifacts(directory: $0, name: artifactName, kind: DiffArtifacts.isHeap(newProfile) ? "mem" : "cpu") }
        if let paths = layout?.paths {
            try refuseOutputOverInput([paths.svg, paths.top, paths.diff], inputs: [base, new], option: "--artifacts")
        }
        let (baseIndex, newIndex) = try comparedValues(baseProfile, newProfile)
        let baseTotal = baseProfile.total(baseIndex), newTotal = newProfile.total(newIndex)
        if baseTotal == 0 { throw fail("\(base): no samples to compare") }
        if newTotal == 0 { throw fail("\(new): no samples to compare") }

        // The graph names the sample type it compares (sample counts keep flame graphs' "counts").
        let label = newProfile.valueLabel(newIndex)
        var graph = FlameGraphOptions(title: "Differential flame graph",
                                      subtitle: "\(base) → \(new): red grew, blue shrank (self \(label == "samples" ? "counts" : label)\(noNormalize ? "" : ", base scaled to new total"))")
        graph.countName = label
        // Both sides named together, so that a function has one frame name in both.
        let names = Profile.FunctionNames.shared([baseProfile, newProfile])
        graph.differentialBase = baseProfile.folded(valueIndex: baseIndex, names: names[0])
        graph.differentialScale = noNormalize ? 1 : Double(newTotal) / Double(baseTotal)
        graph.details = ["base: " + base] + baseProfile.metadata.provenanceLines.map { "  " + $0 }
            + ["new: " + new] + newProfile.metadata.provenanceLines.map { "  " + $0 }
        let svg = FlameGraph.renderBytes(newProfile.folded(valueIndex: newIndex, names: names[1]), options: graph)

        // A gate below the floor lowers it: a function under the gate on both sides cannot fail
        // it, one under the floor but over the gate could.
        let floor = min(ProfileComparison.defaultFloor, failAbove ?? .infinity)
        let comparison = ProfileComparison(base: baseProfile, new: newProfile, baseValue: baseIndex, newValue: newIndex, order: order, floor: floor)
        if var layout {
            try layout.write(svg: svg, base: baseProfile, baseValue: baseIndex, new: newProfile, newValue: newIndex,
                             normalize: !noNormalize)
        }
        try outputFile?.write(svg)
        try writeStandardOutput(table(comparison))
        printError(significanceNote(comparison))

        if let failAbove {
            let grew = comparison.grew(by: failAbove, gate: gateShare)
            if !grew.isEmpty {
                let list = grew.map { row -> String in
                    let delta = gateShare == .self ? row.diff.delta : row.diff.totalDelta
                    let test = gateShare == .self ? row.selfTest : row.totalTest
                    return "\(row.diff.name) \(String(format: "%+.2f", delta))" + (test.map { String(format: " (q=%.3g)", $0.q) } ?? "")
                }.joined(separator: ", ")
                let how = comparison.isTested ? " and significantly (q <= \(comparison.alpha))" : ""
                throw fail("\(gateShare.rawValue) share grew by more than \(failAbove) points\(how): \(list)", status: ExitStatusCode.gateFailed)
            }
        }
    }

    /// The table on stdout: one row per function, self then total, base, new and change; with
    /// tested runs, each share as mean±CI and each change with its q-value, '*' when significant.
    private func table(_ c: ProfileComparison) -> String {
        let tested = c.isTested
        let shareWidth = tested ? 13 : 10
        var out = [pad("base_self", shareWidth), pad("new_self", shareWidth), pad("d_self", 8)].joined(separator: " ")
        if tested { out += " " + pad("q_self", 8) }
        out += " " + [pad("base_total", shareWidth), pad("new_total", shareWidth), pad("d_total", 8)].joined(separator: " ")
        if tested { out += " " + pad("q_total", 8) }
        out += "  function\n"
        func share(_ value: Double, _ spread: ProfileComparison.Spread?) -> String {
            pad(String(format: "%.2f", value) + (spread.map { String(format: "±%.2f", $0.halfWidth) } ?? ""), shareWidth)
        }
        func change(_ delta: Double, _ test: ProfileComparison.Test?) -> String {
            var text = String(format: "%+.2f", delta)
            if text == "-0.00" { text = "+0.00" }  // a change too small to show has no sign
            if let test { text += test.q <= c.alpha ? "*" : " " }
            return pad(text, 8) + (test.map { " " + pad(String(format: "%.3g", $0.q), 8) } ?? "")
        }
        for row in limit == 0 ? c.rows[...] : c.rows.prefix(limit) {
            let d = row.diff
            out += [share(d.basePercent, row.selfTest?.base), share(d.newPercent, row.selfTest?.new), change(d.delta, row.selfTest),
                    share(d.baseTotalPercent, row.totalTest?.base), share(d.newTotalPercent, row.totalTest?.new),
                    change(d.totalDelta, row.totalTest)].joined(separator: " ")
            out += "  \(d.name)\n"
        }
        return out
    }

    /// Which test the table's p-values come from.
    private func testNote(_ c: ProfileComparison) -> String {
        min(c.baseRuns, c.newRuns) >= ProfileComparison.mannWhitneyMinimumRuns
            ? "Welch's t-test, Mann–Whitney where shares are far from normal"
            : "Welch's t-test: Mann–Whitney needs \(ProfileComparison.mannWhitneyMinimumRuns) runs a side"
    }

    /// One line on stderr: how the changes were tested, or why they could not be.
    private func significanceNote(_ c: ProfileComparison) -> String {
        if c.isTested {
            return "significance: \(c.baseRuns) runs in \(base), \(c.newRuns) in \(new); '*' marks q <= \(c.alpha) "
                + "(\(testNote(c)); Benjamini–Hochberg over the functions at \(c.floor)% or more on either side: \(c.selfFamily) self share\(c.selfFamily == 1 ? "" : "s"), \(c.totalFamily) total share\(c.totalFamily == 1 ? "" : "s"))"
        }
        let single = c.baseRuns < 2 ? base : new
        let runs = c.baseRuns < 2 ? c.baseRuns : c.newRuns
        return "no significance can be computed: \(single) holds \(runs < 2 ? "one run" : "\(runs) runs") (record repeated runs with sprof run -r N); gating on the change alone"
    }

    /// The sample type compared on each side: the one asked for, or the profiles' default when
    /// both have it. Profiles of different kinds (CPU against heap) or units are refused, as
    /// `go tool pprof -diff_base` refuses "incompatible" profiles.
    private func comparedValues(_ b: Profile, _ n: Profile) throws -> (Int, Int) {
        func types(_ p: Profile) -> String { p.sampleTypes.map(\.description).joined(separator: ", ") }
        if let mismatch = Profile.kindMismatch(base: b, baseName: base, new: n, newName: new) { throw fail(mismatch) }
        if view != nil {
            let bi = try valueIndex(b, named: view), ni = try valueIndex(n, named: view)
            guard b.sampleTypes[bi] == n.sampleTypes[ni] else {
                throw fail("incompatible sample types: \(base) has \(b.sampleTypes[bi]), \(new) has \(n.sampleTypes[ni]); compare values of one unit")
            }
            return (bi, ni)
        }
        let bDefault = b.sampleTypes[b.defaultSampleType], nDefault = n.sampleTypes[n.defaultSampleType]
        if let ni = n.sampleTypes.firstIndex(of: bDefault) { return (b.defaultSampleType, ni) }
        if let bi = b.sampleTypes.firstIndex(of: nDefault) { return (bi, n.defaultSampleType) }
        throw fail("incompatible sample types: \(base) has \(types(b)), \(new) has \(types(n)); no sample type in common to compare (choose one with --sample-type)")
    }

    /// `checkout` for `ci/checkout.pb.gz`: the last path component without its profile extensions
    /// (also the `.heap` of `sprof run --heap`'s `PREFIX.heap.pb.gz`, the `.runs` of `sprof serve`'s
    /// `profile.runs.pb.gz`).
    static func name(fromPath path: String) -> String {
        guard path != "-" else { return "profile" }
        var name = path.split(separator: "/").last.map(String.init) ?? "profile"
        for suffix in [".gz", ".pb", ".pprof", ".prof", ".heap", ".runs", ".folded", ".txt", ".collapsed"] where name.hasSuffix(suffix) && name.count > suffix.count {
            name = String(name.dropLast(suffix.count))
        }
        return name.hasPrefix(".") || name.isEmpty ? "profile" : name
    }

    /// A `--name` that is one file name component.
    static func checkedName(_ name: String) throws -> String {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0") else {
            throw usage("--name \(name): must be a file name without '/'")
        }
        return name
    }
}
