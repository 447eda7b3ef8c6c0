import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// The `sprof-serve` command line: options, checks with one-line errors, then the server until
/// Ctrl-C or SIGTERM.
public enum ServeMain {
    static let usage = """
        usage: sprof serve [--data DIR] [--port 8080] [--host 127.0.0.1] [--allow-remote] [--allow-host NAME]… [--sprof PATH]

        A local web UI to run profiling jobs and browse their CPU, wall-clock, off-CPU and memory views.
        Jobs are kept in DIR (default: $XDG_DATA_HOME/sprof/serve or ~/.local/share/sprof/serve) and
        survive restarts. The URL printed at start carries the access token that every API request
        (reading jobs as well as creating, re-running and deleting them) requires.

          --data DIR       where jobs are kept
          --port N         TCP port (default 8080)
          --host ADDR      address to listen on (default 127.0.0.1)
          --allow-remote   allow a non-loopback --host (anyone who can reach it and has the token can run commands)
          --allow-host NAME  a host name (or address) the browser may use besides loopback addresses and
                           localhost, e.g. the machine's name with --allow-remote; repeat it or separate
                           names with commas. Requests naming any other host are refused (DNS rebinding)
          --sprof PATH     the sprof binary that records (default: the one beside sprof-serve)
        """

    /// Parsed options.
    public struct Options: Sendable {
        public var dataDirectory: String
        public var configuration = ServeConfiguration()
        public var sprofPath: String?
    }

    /// Parses `arguments` (without the program name).
    /// - Throws: ``ServeError`` 400 with a one-line message for an unknown option or a bad value.
    public static func parse(_ arguments: [String]) throws -> Options? {
        let env = ProcessInfo.processInfo.environment
        let dataHome = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? ((env["HOME"] ?? ".") + "/.local/share")
        var o = Options(dataDirectory: dataHome + "/sprof/serve")
        var i = 0
        func value(_ name: String) throws -> String {
            i += 1
            guard i < arguments.count else { throw ServeError(400, "\(name) needs a value; see --help") }
            return arguments[i]
        }
        while i < arguments.count {
            let a = arguments[i]
            switch a {
            case "-h", "--help": return nil
            case "--data": o.dataDirectory = try value(a)
            case "--port":
                let v = try value(a)
                guard let p = Int(v), (1...65535).contains(p) else { throw ServeError(400, "--port \(v): a TCP port is 1 to 65535") }
                o.configuration.port = p
            case "--host": o.configuration.host = try value(a)
            case "--allow-remote": o.configuration.allowRemote = true
            case "--allow-host":
                let v = try value(a)
                let names = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
                guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty && !$0.contains(":") || ServeConfiguration.address($0) != nil }) else {
                    throw ServeError(400, "--allow-host \(v): give host names or addresses without a port, e.g. --allow-host myhost.lan")
                }
                o.configuration.allowedHosts += names
            case "--sprof": o.sprofPath = try value(a)
            default: throw ServeError(400, "unknown option \(a); see sprof serve --help")
            }
            i += 1
        }
        try o.configuration.validate()
        return o
    }

    /// The `sprof` beside this executable.
    static func defaultSprofPath() -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent + "/sprof"
    }

    static func fail(_ message: String) -> Int32 {
        FileHandle.standardError.write(Data("sprof serve: \(message)\n".utf8))
        return 1
    }

    /// Runs the server; returns the exit status (0 after Ctrl-C, 1 for errors at start, 2 for usage).
    public static func run(_ arguments: [String]) async -> Int32 {
        let options: Options
        do {
            guard let parsed = try parse(arguments) else { print(usage); return 0 }
            options = parsed
        } catch {
            FileHandle.standardError.write(Data("sprof serve: \(error)\n".utf8))
            return 2
        }
        let sprof = options.sprofPath ?? defaultSprofPath()
        guard access(sprof, X_OK) == 0 else {
            return fail("cannot run \(sprof): build it with 'swift build --product sprof' (same configuration as sprof-serve), or give --sprof PATH")
        }
        if let reason = portInUse(host: options.configuration.host, port: options.configuration.port) {
            return fail(reason)
        }
        let capabilities = SprofProcessEngine.capabilities(of: sprof)
        let store: JobStore
        do {
            store = try JobStore(dataDirectory: options.dataDirectory, engine: SprofProcessEngine(sprofPath: sprof, capabilities: capabilities))
        } catch {
            return fail("\(error)")
        }
        await store.start()
        let config = options.configuration
        let validator = JobValidator(capabilities: capabilities)
        var logger = Logger(label: "sprof-serve")
        logger.logLevel = .error
        let (url, names) = startURL(config, machineName: machineName())
        let data = options.dataDirectory
        let app = Application(
            router: ServeApp.router(store: store, validator: validator, configuration: config),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "sprof-serve"),
            onServerRunning: { _ in
                print("sprof serve: \(url)")
                if let names { print("sprof serve: \(names)") }
                print("sprof serve: jobs in \(data); Ctrl-C stops the server")
                fflush(stdout)
            },
            logger: logger)
        // Shutdown runs in reverse order: the store first (ending event streams that would hold the
        // server's graceful shutdown up forever), then the server.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: StoreService(store: store))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await store.shutdown()
            let text = "\(error)"
            if text.contains("in use") { return fail("port \(config.port) is already in use on \(config.host): stop the other server or choose another with --port N") }
            return fail("the server stopped: \(text)")
        }
        await store.shutdown()
        return 0
    }

    /// The URL printed at start, one the server answers (its host passes
    /// ``ServeConfiguration/hostAllowed(_:)``), and with `--allow-remote` a line saying which host
    /// names are answered. Listening on every address (`0.0.0.0`, `::`), the wildcard is no name a
    /// browser may use (`http://0.0.0.0:PORT/` was refused as a host): the machine's name when it
    /// was given with `--allow-host`, else the first name given, else a loopback address.
    static func startURL(_ config: ServeConfiguration, machineName: String?) -> (url: String, names: String?) {
        let own = ServeConfiguration.address(config.host)
        let wildcard = own.map { $0.allSatisfy { $0 == 0 } } ?? false
        var host = config.host
        if wildcard || !config.hostAllowed(host) {
            if let m = machineName?.lowercased(), config.allowedHosts.contains(m) {
                host = m
            } else if let first = config.allowedHosts.first {
                host = first
            } else if wildcard {
                host = own?.count == 16 ? "::1" : "127.0.0.1"
            }
        }
        let shown = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let url = "http://\(shown):\(config.port)/?token=\(config.token)"
        guard config.allowRemote else { return (url, nil) }
        var answered = ["localhost", "loopback addresses"]
        if !wildcard && own != nil { answered.append(config.host) }
        answered += config.allowedHosts
        let fix = config.allowedHosts.isEmpty
            ? "; to open it from another machine, add this machine's name with --allow-host NAME (e.g. --allow-host \(machineName ?? "myhost.lan"))"
            : ""
        return (url, "answers the host names \(answered.joined(separator: ", ")) (others are refused: DNS rebinding)\(fix)")
    }

    /// This machine's host name (`gethostname`), nil when it has none.
    static func machineName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return nil }
        let name = String(cString: buffer)
        return name.isEmpty ? nil : name
    }

    /// One line when `host:port` cannot be bound, checked before anything starts.
    static func portInUse(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let ai = result else {
            return "--host \(host): not an address this machine can listen on"
        }
        defer { freeaddrinfo(result) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 {
            if errno == EADDRINUSE { return "port \(port) is already in use on \(host): stop the other server or choose another with --port N" }
            return "cannot listen on \(host):\(port): \(String(cString: strerror(errno)))"
        }
        return nil
    }
}

/// Ends event streams and marks the running job on graceful shutdown, so that open pages do not
/// hold the server up and no job is left `running`.
struct StoreService: Service {
    let store: JobStore
    func run() async throws {
        try? await gracefulShutdown()
        await store.shutdown()
    }
}
