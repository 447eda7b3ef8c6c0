#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Sprof
import SprofCore

/// Prints one line to stderr, prefixed `sprof: `. Bytes of the command line that are not UTF-8
/// (carried as ArgumentBytes escapes, e.g. in a path) show as U+FFFD, as a terminal shows them.
func printError(_ message: String) {
    var line = "sprof: " + ArgumentBytes.displayed(message) + "\n"
    line.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stderr) }
}

/// Prints one line to stderr and exits with `status`: the single-line error convention.
func fail(_ message: String, status: Int32 = 1) -> ExitCode {
    printError(message)
    return ExitCode(status)
}

/// The subcommand being run (`run`, `report`, …), for usage errors' pointer to its help.
nonisolated(unsafe) var currentSubcommand = ""

/// A usage error (status 2, nothing was run): the problem, then where the options are described,
/// as the argument parser's own errors end (README "Exit statuses").
func usage(_ message: String) -> ExitCode {
    fail(message + " (see sprof\(currentSubcommand.isEmpty ? "" : " " + currentSubcommand) --help)", status: ExitStatusCode.usage)
}

/// An output file of a subcommand: checked (and its temporary created) when constructed, before
/// the possibly long work starts, so that an unwritable path is reported at once and costs nothing;
/// written atomically by ``write(_:)``, so that a failed run never destroys an earlier profile.
/// Dropped without a write, it leaves the path untouched (see `SprofCore.OutputFile`).
///
/// Writers of new formats: create one per output next to the others, before launching or reading
/// input; write each whole content once the profile exists.
final class OutputFile {
    let path: String
    private let file: SprofCore.OutputFile

    init(path: String) throws(ExitCode) {
        self.path = path
        do {
            file = try SprofCore.OutputFile(path: path)
        } catch {
            throw fail(error.description + (error.errno == EISDIR ? " (give a file name, not a directory)" : " (choose another path with -o)"))
        }
    }

    /// Writes `bytes` as the file's whole content and renames it into place. One call per file.
    /// (Standard output, `-o -`, goes through `writeStandardOutput`, which ends quietly when the
    /// reader stopped early.)
    func write(_ bytes: [UInt8]) throws(ExitCode) {
        do {
            try file.commit(bytes)
        } catch {
            throw fail(error.description)
        }
    }

    /// Writes `bytes` as the file's whole content without making it visible yet: see
    /// ``commitAll(_:)``, for a command that writes several files.
    func stage(_ bytes: [UInt8]) throws(ExitCode) {
        do {
            try file.write(bytes)
        } catch {
            discard()
            throw fail(error.description)
        }
    }

    /// Renames every staged file into place together, only once all of them are complete: on
    /// any failure none replaces what was at its path (`SprofCore.OutputFile.commitAll`).
    static func commitAll(_ files: [OutputFile]) throws(ExitCode) {
        do {
            try SprofCore.OutputFile.commitAll(files.map(\.file))
        } catch {
            throw fail(error.description)
        }
    }

    /// Leaves the path as it was (for paths that exit without unwinding, e.g. `exit(2)`).
    func discard() { file.discard() }
}

/// The command to run, from what a subcommand captured verbatim after its options: without the
/// `--` that may separate them, and checked against `-p PID` (exactly one of the two).
///
/// The command is captured verbatim, so `sprof run --help` would otherwise run a program named
/// "--help": a help flag where the command starts asks for `subcommand`'s help instead.
func commandLine(_ captured: [String], pid: Int32?, of subcommand: ParsableCommand) throws -> [String] {
    if let first = captured.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(subcommand) }
    let arguments = captured.first == "--" ? Array(captured.dropFirst()) : captured
    let name = type(of: subcommand).configuration.commandName ?? "run"
    if pid != nil && !arguments.isEmpty {
        throw usage("give either -p PID or a command, not both")
    }
    guard pid != nil || !arguments.isEmpty else {
        throw usage("no command given; usage: sprof \(name) [options] [--] COMMAND [ARGS...] or sprof \(name) -p PID")
    }
    return arguments
}

