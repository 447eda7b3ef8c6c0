import ArgumentParser
import SprofOutput
import SprofFormats
import SprofProfile
import SprofCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `sprof flamegraph`: folded stacks (from sprof or any other tool) in, interactive SVG out.
///
/// Failures print one line on stderr and exit 1, never a usage dump or a stack trace: the command is
/// typically at the end of a pipeline, where a short message naming the file and line is what helps.
struct FlamegraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flamegraph",
        abstract: "Render folded stacks as an interactive SVG flame graph",
        discussion: """
        Reads folded stacks ("frame;frame;frame COUNT" lines, as written by `sprof record`, \
        stackcollapse-*.pl or inferno-collapse-*) or a pprof profile (sprof's PREFIX.pb.gz, \
        Go's CPU profiles) and writes a self-contained SVG: hover for counts, \
        click to zoom, Search or Ctrl-F to highlight frames by regular expression.

        Examples:
          sprof flamegraph profile.folded -o profile.svg
          sprof flamegraph --inverted --colors io < offcpu.folded > offcpu.svg
        """
    )

    @Argument(help: ArgumentHelp("Folded stacks to read ('-' or omitted: standard input).", valueName: "file"))
    var file: String?

    @Option(name: [.short, .long], help: ArgumentHelp("Write the SVG here instead of standard output.", valueName: "file"))
    var output: String?

    @Option(help: "Title (default: \"Flame Graph\", or \"Icicle Graph\" with --inverted).")
    var title: String?

    @Option(help: "Second line under the title, e.g. command, event, sample and lost counts, date.")
    var subtitle: String?

    @Flag(help: "Draw an icicle graph: root at the top.")
    var inverted = false

    @Option(help: "Image width in pixels.")
    var width = 1200

    @Option(name: .customLong("minwidth"), help: "Omit frames narrower than this many pixels (they are counted in a note).")
    var minWidth = 0.1

    @Option(help: ArgumentHelp("Colour palette for user frames: \(FlameGraphPalette.names).", valueName: "palette"))
    var colors = FlameGraphPalette.hot.rawValue

    @Option(name: .customLong("countname"), help: "What a count is called in tooltips (default: the sample type: samples, cpu ns, inuse_space bytes, …).")
    var countName: String?

    @Option(name: [.customLong("sample-type"), .customLong("view")],
            help: "Which values to draw (pprof input): a sample type of the profile (samples, cpu, wall, off-cpu; alloc_space, inuse_space, … in heap profiles). Default: the profile's default (pprof's rule: default_sample_type, else the last type).")
    var sampleType: String?

    @Flag(name: .customLong("per-thread"), help: "Root stacks at process;thread-TID (pprof input, which carries threads).")
    var perThread = false

    @Option(name: .customLong("min-samples"), help: "Fail (exit 2, output not written) below this many samples.")
    var minSamples: UInt64?

    @Flag(name: .customLong("allow-empty"), help: "Write a \"No samples\" graph for input without samples instead of failing.")
    var allowEmpty = false

    func run() throws {
        guard let palette = FlameGraphPalette(rawValue: colors) else {
            throw usage("unknown palette '\(colors)' (valid: \(FlameGraphPalette.names))")
        }
        guard (16 ... 1_000_000).contains(width) else {
            throw usage("--width must be between 16 and 1000000 pixels, got \(width)")
        }
        guard minWidth.isFinite, minWidth >= 0 else {
            throw usage("--minwidth must be a non-negative number of pixels, got \(minWidth)")
        }

        try refuseEmptyPaths([("FILE", file), ("-o", output)])
        try refuseOutputOverInput([output], inputs: [file])
        // Checked before reading (stdin may take long); replaced only once the SVG exists.
        var outputFile: SprofCore.OutputFile?
        if let output, output != "-" {
            var failure: String?
            do { outputFile = try SprofCore.OutputFile(path: output) } catch { failure = "\(error) (give a file name with -o)" }
            if let failure { fail(failure) }
        }
        defer { outputFile?.discard() }

        // The one reader (ProfileReader), so a bad input gets the message every subcommand gives.
        // Folded input is drawn as parsed (its counts may add up past a profile's int64).
        let (input, source) = try readInputBytes(file ?? "-")
        var stacks = FoldedStacks()
        var provenance: [String] = []
        // Folded stacks hold one sample type, `samples`.
        var shown = Profile()
        var decoded: Profile?
        do {
            switch try ProfileReader.decode(input, source: source) {
            case .pprof(let profile, let clamped):
                if let notice = ProfileReadError.negativeValuesNotice(clamped, source: source) { printError(notice) }
                decoded = profile
                shown = profile
            case .folded(let folded):
                stacks = folded
            }
        } catch let error as ProfileReadError {
            // Empty input is a graph of no samples: drawn with --allow-empty, gated by --min-samples.
            if !(error.kind == .noSamples && (allowEmpty || minSamples != nil)) {
                outputFile?.discard()
                fail(error.kind == .noSamples ? error.message + "; --allow-empty writes an empty graph anyway" : error.message)
            }
        }
        let shownIndex: Int
        do {
            shownIndex = try shown.sampleTypeIndex(selecting: sampleType)
        } catch {
            outputFile?.discard()
            fail("\(error) (see sprof flamegraph --help)", status: ExitStatusCode.usage)
        }
        if let profile = decoded {
            stacks = profile.folded(valueIndex: shownIndex, perThread: perThread)
            provenance = profile.metadata.provenanceLines
        } else if perThread {
            outputFile?.discard()
            fail("--per-thread needs a pprof input (folded stacks carry no threads) (see sprof flamegraph --help)", status: ExitStatusCode.usage)
        }
        if let minSamples, stacks.total < minSamples {
            outputFile?.discard()
            fail("\(source): \(stacks.total) samples, fewer than --min-samples \(minSamples); the output was not written", status: ExitStatusCode.gateFailed)
        }
        if stacks.total == 0 && !allowEmpty {
            outputFile?.discard()
            fail(ProfileReadError.noSamples(source: source).message + "; --allow-empty writes an empty graph anyway")
        }

        // The graph names what it shows: the count label always, the subtitle unless given.
        let type = shown.sampleTypes[shownIndex]
        let defaultSubtitle = type.label == "samples" ? nil : "sample type \(type)"
        var options = FlameGraphOptions(title: title, subtitle: subtitle ?? defaultSubtitle, width: width, minWidth: minWidth,
                                        countName: countName ?? type.label, palette: palette, inverted: inverted)
        options.details = provenance
        let svg = FlameGraph.renderBytes(stacks, options: options)
        if let outputFile {
            var failure: String?
            do { try outputFile.commit(svg) } catch { failure = "\(error)" }
            if let failure { fail(failure) }
            return
        }
        try writeStandardOutput(svg)
    }

    /// Prints one line on stderr and exits with `status`.
    private func fail(_ message: String, status: Int32 = 1) -> Never {
        printError(message)
        Self.exit(withError: ExitCode(status))
    }
}
