import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Errors from fixture helpers, with enough detail to act on.
public struct FixtureError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Locating, building and running the end-to-end test fixtures (see Tests/Fixtures/README.md).
public enum TestFixtures {
    /// The package root (the directory holding Package.swift), found from this source file's path.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)  // …/Sources/SprofTestSupport/Fixtures.swift
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// `Tests/Fixtures/c` in the package.
    public static var cFixturesDirectory: URL {
        packageRoot.appendingPathComponent("Tests/Fixtures/c")
    }

    /// Flags for the frame-pointer C fixtures: whole fp chains, including leaf frames (clang only;
    /// gcc 12 drops leaf frames even with `-mno-omit-leaf-frame-pointer`).
    public static let framePointerFlags = [
        "-O2", "-g", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer", "-fno-optimize-sibling-calls",
    ]

    /// Flags for the "no frame pointers" C fixtures (DWARF/.eh_frame unwinding).
    public static let noFramePointerFlags = ["-O2", "-g", "-fomit-frame-pointer"]

    /// The directory holding the built products of this build (`sprof`, `sprof-fixtures`, `qsl-bench`
    /// and the test bundle). Order: `$SPROF_PRODUCTS_DIR`; the directory of the running test
    /// executable (`CommandLine.arguments[0]`, then `Bundle.main`, walking up out of a `.xctest`
    /// bundle directory); `<packageRoot>/.build/debug`.
    public static func productsDirectory() throws -> URL {
        var candidates: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["SPROF_PRODUCTS_DIR"], !dir.isEmpty {
            candidates.append(URL(fileURLWithPath: dir))
        }
        for path in [CommandLine.arguments.first, Bundle.main.executablePath].compactMap({ $0 }) {
            var url = URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent()
            // macOS-style bundles (Foo.xctest/Contents/MacOS/Foo): climb to the bundle's parent.
            while url.path.contains(".xctest") && url.path != "/" { url.deleteLastPathComponent() }
            candidates.append(url)
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug"))
        let fm = FileManager.default
        for dir in candidates where fm.fileExists(atPath: dir.appendingPathComponent("sprof-fixtures").path)
            || fm.fileExists(atPath: dir.appendingPathComponent("sprof").path)
        {
            return dir
        }
        throw FixtureError(
            "cannot find the build products directory (looked in: \(candidates.map(\.path).joined(separator: ", "))); "
                + "run `swift build` first or set SPROF_PRODUCTS_DIR")
    }

    /// The path of an executable product built next to the tests.
    public static func productPath(_ name: String) throws -> String {
        let dir = try productsDirectory()
        let path = dir.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw FixtureError(
                "\(name) is not built in \(dir.path); run `swift build --product \(name)` (tests do not build it)")
        }
        return path
    }

    /// The built `sprof-fixtures` binary (Swift workloads with known shapes).
    public static func swiftFixturePath() throws -> String { try productPath("sprof-fixtures") }

    /// The built `qsl-bench` binary (the demo order-book benchmark).
    public static func qslBenchPath() throws -> String { try productPath("qsl-bench") }

    /// The built `sprof` CLI.
    public static func sprofPath() throws -> String { try productPath("sprof") }

    // MARK: - C fixtures

    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var builtC: [String: String] = [:]

    /// A per-process scratch directory for compiled fixtures, removed by the OS's tmp cleaning only.
    public static let scratchDirectory: URL = {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("sprof-test-fixtures-\(getpid())", isDirectory: true)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Compiles `Tests/Fixtures/c/NAME.c` with `compiler` (`clang` by default, looked up on PATH; `cc`
    /// is gcc 12 here) and `flags` (plus `-pthread`), and returns the binary's path. Results are cached
    /// by name, flags and compiler for the life of the test process; each combination gets its own
    /// binary. Throws with the compiler's output when compilation fails.
    ///
    /// Typical: `try TestFixtures.buildC("fp_chain", flags: TestFixtures.framePointerFlags)`.
    public static func buildC(_ name: String, flags: [String], compiler: String = "clang") throws -> String {
        let key = ([compiler, name] + flags).joined(separator: "\u{1}")
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let path = builtC[key], FileManager.default.fileExists(atPath: path) { return path }

        let source = cFixturesDirectory.appendingPathComponent("\(name).c")
        guard FileManager.default.fileExists(atPath: source.path) else {
            throw FixtureError("no C fixture \(source.path)")
        }
        guard let compilerPath = findExecutable(compiler) else {
            throw FixtureError("compiler '\(compiler)' not found on PATH")
        }
        let output = scratchDirectory.appendingPathComponent("\(name)-\(builtC.count)-\(sanitize(compiler))").path
        let args = flags + ["-pthread", source.path, "-o", output]
        let result = try run(compilerPath, args, timeout: 120)
        guard result.status == 0 else {
            throw FixtureError(
                "\(compiler) \(args.joined(separator: " ")) failed (status \(result.status)):\n\(result.stderr)\(result.stdout)")
        }
        builtC[key] = output
        return output
    }

    private static func sanitize(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }

    /// Resolves a command name on PATH (or returns the argument if it contains a slash and is executable).
    public static func findExecutable(_ name: String) -> String? {
        let fm = FileManager.default
        if name.contains("/") { return fm.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if fm.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    // MARK: - Running programs

    /// Runs `path` with `args` and waits for it.
    ///
    /// - Parameters:
    ///   - environment: the child's whole environment; nil inherits this process's environment.
    ///     Use ``environment(adding:)`` to add variables (e.g. `SWIFT_DETERMINISTIC_HASHING=1`).
    ///   - timeout: seconds before the child and what it started are killed (SIGKILL); the result
    ///     then has status 137.
    ///   - input: what the child reads on stdin (nil: /dev/null).
    /// - Returns: `status` is the exit status, or 128 + signal number when a signal ended the child
    ///   (as shells report it); stdout and stderr are captured separately (through files, so large
    ///   outputs cannot deadlock).
    @discardableResult
    public static func run(
        _ path: String, _ args: [String], environment: [String: String]? = nil,
        currentDirectory: String? = nil, timeout: TimeInterval = 120, input: String? = nil
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = try BackgroundProcess(path, args, environment: environment, currentDirectory: currentDirectory, input: input)
        let status = process.wait(timeout: timeout)
        return (status, process.stdout, process.stderr)
    }

    /// This process's environment plus `extra` (which wins).
    public static func environment(adding extra: [String: String]) -> [String: String] {
        ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
    }
}

/// Why perf-event tests cannot run here, or nil when they can (as far as a cheap check can tell).
///
/// Only what the machine truly lacks counts: a kernel without perf events (no
/// `/proc/sys/kernel/perf_event_paranoid`), or, for a user other than root, a paranoid level of 3 or
/// more (Debian/Android's extra level, which forbids perf_event_open to users entirely). Root is
/// never restricted, so as root (CI) this is always nil and every perf-event test runs. Anything
/// else that goes wrong when opening an event is a failure, not a skip: see ``PerfSkipPolicy``.
public func perfEventAvailable() -> String? {
    let file = "/proc/sys/kernel/perf_event_paranoid"
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
        return "\(file) does not exist: this kernel has no perf events (CONFIG_PERF_EVENTS)"
    }
    if geteuid() == 0 { return nil }
    guard let level = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        return "cannot parse \(file): '\(text)'"
    }
    if level >= 3 {
        return "perf_event_paranoid is \(level): perf_event_open is disabled for unprivileged users "
            + "(run `sysctl kernel.perf_event_paranoid=2` or run as root)"
    }
    return nil
}

/// The one rule for turning a failed perf_event_open into a test skip. A skip is allowed only for
/// what the machine lacks, never for what sprof gets wrong:
/// - EACCES / EPERM, and only when not root: the kernel's policy refuses this user;
/// - ENOENT / EOPNOTSUPP, and only for a hardware event: no PMU (VMs, containers).
/// Everything else (EINVAL or E2BIG from bad attributes, any error for a software event such as
/// cpu-clock, task-clock, page-faults or context-switches, any error as root) is a failure.
public enum PerfSkipPolicy {
    /// The skip reason for `errno` from opening an event, or nil when the test must fail instead.
    public static func skipReason(errno code: Int32, hardwareEvent: Bool, detail: String) -> String? {
        if (code == EACCES || code == EPERM) && geteuid() != 0 {
            return "perf_event_open refused to this user (\(String(cString: strerror(code)))): \(detail)"
        }
        if (code == ENOENT || code == EOPNOTSUPP) && hardwareEvent {
            return "no hardware PMU event here (\(String(cString: strerror(code)))): \(detail)"
        }
        return nil
    }

    /// The same rule for a message printed by the `sprof` CLI (`perf_event_open: <strerror>. hint`):
    /// the skip reason, or nil when the test must fail.
    public static func skipReason(cliError stderr: String, hardwareEvent: Bool) -> String? {
        let line = stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        for code in [EACCES, EPERM, ENOENT, EOPNOTSUPP] where line.contains(String(cString: strerror(code))) {
            return skipReason(errno: code, hardwareEvent: hardwareEvent, detail: line)
        }
        return nil
    }
}
