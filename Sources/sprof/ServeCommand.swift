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
            Jobs run one at a time, each as 'sprof run', and are kept in the data directory across \
            restarts. Open the URL it prints: it carries the access token that every API request \
            (reading jobs too) requires.
            """
    )

    @Option(help: "Where jobs are kept (default: $XDG_DATA_HOME/sprof/serve or ~/.local/share/sprof/serve).")
    var data: String?

    @Option(help: "TCP port (default 8080).")
    var port: Int?

    @Option(help: "Address to listen on (default 127.0.0.1).")
    var host: String?

    @Flag(help: "Allow a non-loopback --host: anyone who reaches it and has the token can run commands.")
    var allowRemote = false

    @Option(name: .customLong("allow-host"), help: "A host name the browser may use besides loopback addresses and localhost (repeatable); other Host names are refused.")
    var allowHost: [String] = []

    @Option(help: "The sprof binary that records (default: this one).")
    var sprof: String?

    func run() throws {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let server = (dir.isEmpty ? "." : dir) + "/sprof-serve"
        guard access(server, X_OK) == 0 else {
            throw fail("\(server) is not built: run 'swift build --product sprof-serve' with the same configuration as sprof (-c release for a release sprof); it builds Hummingbird, a few minutes the first time")
        }
        var argv = [server]
        if let data { argv += ["--data", data] }
        if let port { argv += ["--port", String(port)] }
        if let host { argv += ["--host", host] }
        if allowRemote { argv.append("--allow-remote") }
        for name in allowHost { argv += ["--allow-host", name] }
        argv += ["--sprof", sprof ?? exe]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(server, &cArgs)
        throw fail("cannot run \(server): \(String(cString: strerror(errno)))")
    }
}
