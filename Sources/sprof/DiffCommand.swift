import ArgumentParser
import Foundation
import Sprof

/// `sprof diff BASE NEW`: a differential flame graph and the largest self-share changes.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare two profiles: a differential flame graph and a table of self-share changes.",
        discussion: """
            Widths come from NEW. A frame is red when its self count grew against BASE, blue when it \
            shrank, more saturated the larger the change (the meaning FlameGraph's difffolded.pl and \
            inferno give it). BASE's counts are scaled to NEW's total first (--no-normalize compares \
            raw counts). The table lists functions by the change of their self share, in percentage \
            points, largest first, as `go tool pprof -top -diff_base` reads. Inputs may be pprof or \
            folded, in any mix.

            With --fail-above P, sprof exits 2 when a function's self share grew by more than P \
            points, listing them: a CI gate, like `sprof stat --baseline`.

            Examples:
              sprof diff yesterday.pb.gz today.pb.gz -o diff.svg
              sprof diff base.folded new.pb.gz --fail-above 5
            """
    )

    @Argument(help: ArgumentHelp("The base profile (pprof or folded).", valueName: "base"))
    var base: String

    @Argument(help: ArgumentHelp("The new profile (pprof or folded).", valueName: "new"))
    var new: String

    @Option(name: [.short, .long], help: "The differential flame graph (SVG).")
    var output = "diff.svg"

    @Flag(name: .customLong("no-normalize"), help: "Compare raw counts instead of scaling BASE to NEW's total.")
    var noNormalize = false

    @Option(name: .customLong("fail-above"), help: "Exit 2 when any function's self share grew by more than this many points.")
    var failAbove: Double?

    @Option(help: "Rows of the table (0: all).")
    var limit = 20

    @Option(name: [.customLong("view"), .customLong("sample-type")], help: "Which values to compare: samples (default), cpu, wall, off-cpu.")
    var view: String?

    func run() throws {
        if let failAbove, !(failAbove >= 0) { throw usage("--fail-above \(failAbove): must be a number of percentage points, 0 or more") }
        guard limit >= 0 else { throw usage("--limit \(limit): must be 0 or more") }
        try refuseOutputOverInput([output], inputs: [base, new])
        let outputFile = try OutputFile(path: output)
        let baseProfile = try readProfile(base)
        let newProfile = try readProfile(new)
        let baseIndex = try valueIndex(baseProfile, named: view)
        let newIndex = try valueIndex(newProfile, named: view)
        let baseTotal = baseProfile.total(baseIndex), newTotal = newProfile.total(newIndex)
        if baseTotal == 0 { throw fail("\(base): no samples to compare") }
        if newTotal == 0 { throw fail("\(new): no samples to compare") }

        let newFolded = newProfile.folded(valueIndex: newIndex)
        var graph = FlameGraphOptions(title: "Differential flame graph",
                                      subtitle: "\(base) → \(new): red grew, blue shrank (self counts\(noNormalize ? "" : ", base scaled to new total"))")
        graph.differentialBase = baseProfile.folded(valueIndex: baseIndex)
        graph.differentialScale = noNormalize ? 1 : Double(newTotal) / Double(baseTotal)
        graph.details = ["base: " + base] + baseProfile.metadata.provenanceLines.map { "  " + $0 }
            + ["new: " + new] + newProfile.metadata.provenanceLines.map { "  " + $0 }
        try outputFile.write(FlameGraph.renderBytes(newFolded, options: graph))

        let rows = ProfileDiff.rows(base: baseProfile, new: newProfile, baseValue: baseIndex, newValue: newIndex)
        var out = "\(pad("base%", 8)) \(pad("new%", 8)) \(pad("delta", 8))  function\n"
        for r in limit == 0 ? rows[...] : rows.prefix(limit) {
            out += "\(pad(String(format: "%.2f", r.basePercent), 8)) \(pad(String(format: "%.2f", r.newPercent), 8)) \(pad(String(format: "%+.2f", r.delta), 8))  \(r.name)\n"
        }
        try writeStandardOutput(out)

        if let failAbove {
            let grew = rows.filter { $0.delta > failAbove }
            if !grew.isEmpty {
                let list = grew.map { "\($0.name) \(String(format: "%+.2f", $0.delta))" }.joined(separator: ", ")
                throw fail("self share grew by more than \(failAbove) points: \(list)", status: ExitStatusCode.gateFailed)
            }
        }
    }
}
