import ArgumentParser
import Sprof
import SprofFormats

/// `sprof convert FILE --to FORMAT -o OUT`: one profile, another format.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a profile between pprof, folded stacks and speedscope.",
        discussion: """
            Examples:
              sprof convert sprof.pb.gz --to speedscope -o sprof.speedscope.json
              sprof convert perf.folded --to pprof -o perf.pb.gz
              sprof convert sprof.pb.gz --to folded --per-thread -o threads.folded
            """
    )

    @Argument(help: ArgumentHelp("The profile to read (pprof or folded; '-' for standard input).", valueName: "file"))
    var file: String

    @Option(help: "Output format: folded, pprof or speedscope.")
    var to: String

    @Option(name: [.short, .long], help: "Output file ('-' for standard output).")
    var output: String

    @Option(name: [.customLong("view"), .customLong("sample-type")], help: "Values for folded and speedscope: samples (default), cpu, wall, off-cpu.")
    var view: String?

    @Flag(name: .customLong("per-thread"), help: "Folded: root stacks at process;thread-TID.")
    var perThread = false

    func run() throws {
        guard ["folded", "pprof", "speedscope"].contains(to) else {
            throw usage("--to \(to): unknown format (valid: folded, pprof, speedscope)")
        }
        try refuseOutputOverInput([output], inputs: [file])
        // Checked before reading the input; `-o -` writes descriptor 1 itself.
        let outputFile = output == "-" ? nil : try OutputFile(path: output)
        let (profile, folded) = try readProfileInput(file)
        // Folded stacks carry no threads: a thread frame would be invented (as flamegraph refuses).
        if perThread && folded {
            throw usage("--per-thread needs a pprof input (folded stacks carry no threads)")
        }
        let index = try valueIndex(profile, named: view)
        let bytes: [UInt8]
        switch to {
        case "pprof":
            do { bytes = try PprofFormat.encode(profile) } catch { throw fail("cannot encode \(file) as pprof: \(error)") }
        case "speedscope":
            bytes = SpeedscopeFormat.encode(profile, valueIndex: index, name: file)
        default:
            bytes = profile.folded(valueIndex: index, perThread: perThread).serializedBytes()
        }
        if let outputFile { try outputFile.write(bytes) } else { try writeStandardOutput(bytes) }
    }
}
