#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

/// `sprof serve`: the web UI lives in its own executable, `sprof-serve`, so that building `sprof`
/// never builds Hummingbird and SwiftNIO. This command execs the one beside `sprof`.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "A local web UI to run profiling jobs and browse their views (runs sprof-serve).",
        discussion: """
            sprof serve [--data DIR] [--port 8080] [--host 127.0.0.1] [--allow-remote]
            Open the URL it prints (it carries the access token). 'sprof serve --help' lists the options.
            """
    )

    @Argument(parsing: .captureForPassthrough, help: "Options for sprof-serve.")
    var arguments: [String] = []

    func run() throws {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let server = (dir.isEmpty ? "." : dir) + "/sprof-serve"
        guard access(server, X_OK) == 0 else {
            throw fail("\(server) is not built: run 'swift build --product sprof-serve' with the same configuration as sprof (-c release for a release sprof); it builds Hummingbird, a few minutes the first time")
        }
        let argv = [server] + arguments
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(server, &cArgs)
        throw fail("cannot run \(server): \(String(cString: strerror(errno)))")
    }
}
