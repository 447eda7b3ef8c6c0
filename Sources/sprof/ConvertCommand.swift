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

    @Option(name: [.customLong("view"), .customLong("sample-type")], help: "Which values folded and speedscope carry (pprof: which becomes the default): a sample type of the profile (samples, cpu, wall, off-cpu; alloc_space, inuse_space, … in heap profiles). Default: the profile's default (pprof's rule).")
    var view: String?

    @Flag(name: .customLong("per-thread"), help: "Folded: root stacks at process;thread-TID.")
    var perThread = false

    func run() throws {
        guard let format = ProfileFormat.named(to, in: ProfileFormat.convertible) else {
            throw usage("--to \(to): unknown format (valid: \(ProfileFormat.convertible.map(\.name).joined(separator: ", ")))")
        }
        try refuseEmptyPaths([("FILE", file), ("-o", output)])
        // Only folded stacks are rooted at threads: pprof keeps the thread as each sample's label,
        // speedscope has a profile per thread already; the flag accepted and ignored misled.
        if perThread && format.name != ProfileFormat.folded.name {
            throw usage("--per-thread is for --to folded (pprof keeps each sample's thread as a label; speedscope has one profile per thread)")
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
        // pprof keeps every sample type; the one asked for becomes its default_sample_type.
        var converted = profile
        if view != nil { converted.defaultSampleType = index }
        // speedscope's profile name says which sample type its weights are (sample counts: the file name alone).
        let name = profile.valueLabel(index) == "samples" ? file : "\(file) (\(profile.sampleTypes[index].type))"
        let bytes: [UInt8]
        do {
            bytes = try format.encode(converted, ProfileFormat.Options(converted, valueIndex: index, perThread: perThread, name: name))
        } catch {
            throw fail("cannot encode \(file) as \(format.name): \(error)")
        }
        if let outputFile { try outputFile.write(bytes) } else { try writeStandardOutput(bytes) }
    }
}
