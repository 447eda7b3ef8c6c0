import Foundation
import ArgumentParser
import Sprof
import SprofAnnotate

/// `sprof annotate REGEX [FILE]`: a function's source or disassembly with per-line or
/// per-instruction samples (SprofAnnotate does the work).
struct AnnotateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "annotate",
        abstract: "Print matching functions' source (or disassembly) with the samples of each line (or instruction).",
        discussion: """
            Each function whose name matches the regular expression gets its source lines with self \
            and total samples and their share of the profile, as `go tool pprof -list` prints them; \
            lines without samples stay for context. Inlined code counts at its own lines under the \
            inlined function, and at the call site under its caller. With --asm, the function's \
            instructions (Capstone, AT&T syntax) with the samples taken at each, source lines \
            interleaved, '>>' on the hottest, as `perf annotate --stdio` shows them.

            Sources are read from the paths in the debug info, rewritten by --source-prefix, else \
            fetched from a debuginfod server (/buildid/ID/source/PATH) when DEBUGINFOD_URLS is set \
            (cache: DEBUGINFOD_CACHE_PATH; per-file timeout: DEBUGINFOD_TIMEOUT, 10 s unless set). \
            A function whose binary on disk has another build-id than the recorded one gets one \
            line saying so and is not annotated.

            Examples:
              sprof annotate hot_loop                        # sprof.pb.gz
              sprof annotate 'OrderBook\\.' qsl.pb.gz --asm
              sprof annotate parse --source-prefix /build/src=$HOME/src
            """
    )

    @Argument(help: ArgumentHelp("A regular expression matched against function names.", valueName: "regex"))
    var pattern: String

    @Argument(help: ArgumentHelp("The profile (pprof, as sprof writes it; not folded stacks); '-' for standard input.", valueName: "file"))
    var file = "sprof.pb.gz"

    @Flag(help: "Disassemble: per-instruction samples with source lines interleaved.")
    var asm = false

    @Option(name: .customLong("source-prefix"), help: ArgumentHelp("Read sources under OLD from NEW instead (repeatable).", valueName: "OLD=NEW"))
    var sourcePrefixes: [String] = []

    @Option(name: [.customLong("view"), .customLong("sample-type")],
            help: "Which values to count: a sample type of the profile (samples, cpu, wall, off-cpu, …). Default: the profile's default (pprof's rule: default_sample_type, else the last type).")
    var view: String?

    @Option(name: .customLong("debug-dir"), help: "A root searched for separate debug files (repeatable; default /usr/lib/debug).")
    var debugDirectories: [String] = []

    func run() throws {
        try refuseEmptyPaths([("FILE", file)] + debugDirectories.map { ("--debug-dir", $0) })
        for directory in debugDirectories {
            // A mistyped root would otherwise only show as frames without lines.
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
                // `/etc/passwd/`: a file named as a directory.
                let what = access(directory, F_OK) != 0 && errno == ENOTDIR ? "not a directory" : "no such directory"
                throw usage("--debug-dir \(directory): \(what); give a root of separate debug files (such as /usr/lib/debug)")
            }
            guard isDirectory.boolValue else {
                throw usage("--debug-dir \(directory): not a directory; give a root of separate debug files (such as /usr/lib/debug)")
            }
        }
        let prefixes = try sourcePrefixes.map { argument -> SourcePrefix in
            guard let p = SourcePrefix(argument: argument) else {
                throw usage("--source-prefix \(argument): expected OLD=NEW (a path prefix recorded in the debug info, and where it is now)")
            }
            return p
        }
        let (profile, folded) = try readProfileInput(file)
        if folded {
            throw fail("\(file): folded stacks carry no source lines or addresses to annotate; give the pprof profile `sprof run` wrote (PREFIX.pb.gz)")
        }
        let index = try valueIndex(profile, named: view)
        let options = AnnotateOptions(valueIndex: index, assembly: asm, sourcePrefixes: prefixes,
                                      debugDirectories: debugDirectories.isEmpty ? ["/usr/lib/debug"] : debugDirectories)
        let annotation: Annotation
        do {
            annotation = try Annotator.annotate(profile, pattern: pattern, options: options)
        } catch let error as AnnotateError {
            if case .badPattern = error { throw usage(error.description) }
            throw fail("\(file): \(error)")
        }
        for notice in annotation.notices { printError(notice) }
        if annotation.fetchedSources > 0 {
            printError("debuginfod: \(annotation.fetchedSources) source file\(annotation.fetchedSources == 1 ? "" : "s") fetched")
        }
        if annotation.annotated == 0 && annotation.changedBinaries > 0 {
            throw fail("\(file): nothing annotated: the binaries of the matching functions changed since the profile was recorded; annotate against the build that was profiled, or record again")
        }
        // The notices above said why (no readable image, no code of its own): status 1, as
        // README's "nothing could be annotated".
        if annotation.annotated == 0 { throw ExitCode(1) }
        try writeStandardOutput(annotation.text)
    }
}
