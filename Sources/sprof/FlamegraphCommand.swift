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

    @Option(name: .customLong("countname"), help: "What a count is called in tooltips.")
    var countName = "samples"

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

        try refuseOutputOverInput([output], inputs: [file])
        // Checked before reading (stdin may take long); replaced only once the SVG exists.
        var outputFile: SprofCore.OutputFile?
        if let output, output != "-" {
            var failure: String?
            do { outputFile = try SprofCore.OutputFile(path: output) } catch { failure = "\(error) (give a file name with -o)" }
            if let failure { fail(failure) }
        }
        defer { outputFile?.discard() }

        let fromStdin = file == nil || file == "-"
        let source = fromStdin ? "<stdin>" : file!
        let input: [UInt8]
        do {
            input = try fromStdin ? Self.readAll(fd: STDIN_FILENO) : Self.readFile(source)
        } catch let error as POSIXFailure {
            outputFile?.discard()
            fail("cannot read \(source): \(error.reason)")
        }

        var stacks = FoldedStacks()
        var provenance: [String] = []
        let kind = inputKind(input)
        var decoded: Profile?
        if kind == .pprof {
            do {
                decoded = withoutNegativeValues(try PprofFormat.decode(input), source: source)
            } catch {
                outputFile?.discard()
                fail(pprofFailure(input, source: source, error: error))
            }
        } else if kind == .either {
            decoded = (try? PprofFormat.decode(input)).map { withoutNegativeValues($0, source: source) }
        }
        if let profile = decoded {
            stacks = profile.folded(perThread: perThread)
            provenance = profile.metadata.provenanceLines
        } else if perThread {
            outputFile?.discard()
            fail("--per-thread needs a pprof input (folded stacks carry no threads)", status: ExitStatusCode.usage)
        } else {
            do {
                stacks = try FoldedStacks.parse(bytes: input, source: source)
            } catch let error as FoldedParseError {
                outputFile?.discard()
                fail(error.description)
            }
        }
        if let minSamples, stacks.total < minSamples {
            outputFile?.discard()
            fail("\(source): \(stacks.total) samples, fewer than --min-samples \(minSamples); the output was not written", status: ExitStatusCode.gateFailed)
        }
        if stacks.total == 0 && !allowEmpty {
            outputFile?.discard()
            fail("\(source): no samples (an empty profile?); --allow-empty writes an empty graph anyway")
        }

        var options = FlameGraphOptions(title: title, subtitle: subtitle, width: width, minWidth: minWidth,
                                        countName: countName, palette: palette, inverted: inverted)
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

    // Plain POSIX I/O: it reports errno, which gives users the familiar strerror text
    // ("No such file or directory", "Is a directory", "Permission denied").

    private struct POSIXFailure: Error {
        var reason: String
        init(errno code: Int32) { reason = String(cString: strerror(code)) }
    }

    private static func readFile(_ path: String) throws -> [UInt8] {
        let fd = ArgumentBytes.withPath(path) { open($0, O_RDONLY | O_CLOEXEC) }
        if fd < 0 { throw POSIXFailure(errno: errno) }
        defer { close(fd) }
        return try readAll(fd: fd)
    }

    private static func readAll(fd: Int32) throws -> [UInt8] {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return data }
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXFailure(errno: errno)
            }
            data.append(contentsOf: chunk[0 ..< n])
        }
    }
}
