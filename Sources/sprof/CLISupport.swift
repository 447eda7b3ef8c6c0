#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// Prints one line to stderr, prefixed `sprof: `.
func printError(_ message: String) {
    var line = "sprof: " + message + "\n"
    line.withUTF8 { _ = fwrite($0.baseAddress, 1, $0.count, stderr) }
}

/// Prints one line to stderr and exits with `status`: the single-line error convention.
func fail(_ message: String, status: Int32 = 1) -> ExitCode {
    printError(message)
    return ExitCode(status)
}

/// An output file opened before the (possibly long) work starts, so that an unwritable path is
/// reported at once rather than after the profile was gathered.
final class OutputFile {
    let path: String
    private let fd: Int32

    init(path: String) throws(ExitCode) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 {
            let reason = String(cString: strerror(errno))
            throw fail("cannot write \(path): \(reason) (choose another path with -o)")
        }
    }

    deinit { close(fd) }

    func write(_ bytes: [UInt8]) throws(ExitCode) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
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
        throw fail("give either -p PID or a command, not both", status: 2)
    }
    guard pid != nil || !arguments.isEmpty else {
        throw fail("no command given; usage: sprof \(name) [options] [--] COMMAND [ARGS...] or sprof \(name) -p PID", status: 2)
    }
    return arguments
}

/// `1,234,567`.
func grouped(_ n: some BinaryInteger) -> String {
    let digits = String(n)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 && ch != "-" { out.append(",") }
        out.append(ch)
    }
    return out
}
