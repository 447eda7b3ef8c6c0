#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofSymbols

/// A moved source tree: paths starting with ``old`` are read from ``new`` instead
/// (`--source-prefix OLD=NEW`).
public struct SourcePrefix: Sendable, Hashable {
    /// The prefix the debug info records.
    public var old: String
    /// Where those files are now.
    public var new: String
    /// Creates a rewrite.
    public init(old: String, new: String) {
        self.old = old
        self.new = new
    }
    /// Parses `OLD=NEW`; nil without an `=` or with an empty OLD.
    public init?(argument: String) {
        guard let eq = argument.firstIndex(of: "="), eq != argument.startIndex else { return nil }
        self.init(old: String(argument[..<eq]), new: String(argument[argument.index(after: eq)...]))
    }
}

/// Source files read for annotation, each once: from the path DWARF gives (after the first
/// matching ``SourcePrefix``), else from a debuginfod server's `/buildid/ID/source/PATH` when
/// `DEBUGINFOD_URLS` is set (through libdebuginfod, which keeps its cache in
/// `DEBUGINFOD_CACHE_PATH` or `~/.cache/debuginfod_client` and honours `DEBUGINFOD_TIMEOUT`).
final class SourceFiles {
    private let prefixes: [SourcePrefix]
    private var cache: [String: [Substring]?] = [:]
    private lazy var debuginfod: DebuginfodClient? = DebuginfodClient()
    /// Files a debuginfod server supplied.
    private(set) var fetched = 0
    /// One line per problem, for the caller to print once.
    private(set) var notices: [String] = []
    private var debuginfodFailed = false

    init(prefixes: [SourcePrefix]) {
        self.prefixes = prefixes
    }

    /// The lines of `path` (index 0 is line 1), or nil when it cannot be found anywhere.
    func lines(of path: String, buildID: String) -> [Substring]? {
        if let known = cache[path] { return known }
        var local = path
        if let p = prefixes.first(where: { path.hasPrefix($0.old) }) { local = p.new + path.dropFirst(p.old.count) }
        var text = Self.read(local)
        if text == nil { noteUnreachableServers() }
        if text == nil, !buildID.isEmpty, let client = debuginfod, !debuginfodFailed {
            switch client.findSource(buildID: buildID, path: path) {
            case .found(let file):
                text = Self.read(file)
                if text != nil { fetched += 1 }
            case .notFound:
                break
            case .unreachable(let reason):
                // One notice, and no more attempts: every further file would wait out the same timeout.
                debuginfodFailed = true
                notices.append(Self.unreachableNotice(client.urls, reason))
            }
        }
        if text == nil {
            notices.append("cannot read source \(local)\(local != path ? " (recorded as \(path))" : ""): line numbers only; "
                + "--source-prefix OLD=NEW reads a moved tree")
        }
        let lines = text.map { $0.split(separator: "\n", omittingEmptySubsequences: false) }
        cache[path] = .some(lines)
        return lines
    }

    /// The notice that no debuginfod server answered, when libdw found that out while it looked
    /// for a debug file (``DebuginfodClient/checkServersOnce(buildID:installed:)``): without
    /// it, a listing that lacks its source lines would not say why. Once.
    func noteUnreachableServers() {
        guard !debuginfodFailed, let (urls, reason) = DebuginfodClient.unreachable else { return }
        debuginfodFailed = true
        notices.append(Self.unreachableNotice(urls, reason))
    }

    private static func unreachableNotice(_ urls: String, _ reason: String) -> String {
        "debuginfod: cannot reach \(urls) (\(reason)): sources only from disk"
    }

    /// The text of a regular file of at most ``maxSize`` bytes; nil otherwise. The path comes from
    /// the debug info (or a profile from elsewhere), so it may name anything: a FIFO would block
    /// `open` and `read` forever, `/dev/zero` would never end.
    private static func read(_ path: String) -> String? {
        let fd = ArgumentBytes.withPath(path) { open($0, O_RDONLY | O_NONBLOCK | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= maxSize else { return nil }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while bytes.count <= maxSize {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return nil }
            if n == 0 { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return nil
    }

    /// The largest source file read (64 MiB): anything larger is not a source file.
    static let maxSize = 64 << 20
}

