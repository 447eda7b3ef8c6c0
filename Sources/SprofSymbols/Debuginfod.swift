#if canImport(Glibc)
import Glibc
#endif

/// libdebuginfod's client, loaded with dlopen when `DEBUGINFOD_URLS` is set, as libdw itself
/// loads it for its standard find callbacks: no link-time dependency, and nothing happens without
/// a server configured. The library keeps its cache in `DEBUGINFOD_CACHE_PATH` (default
/// `$XDG_CACHE_HOME/debuginfod_client`) and waits at most `DEBUGINFOD_TIMEOUT` seconds per file.
public final class DebuginfodClient {
    /// What a query came to.
    public enum Result: Sendable, Equatable {
        /// The file, in the client's cache.
        case found(String)
        /// The servers answered, and none has it.
        case notFound
        /// No server could be asked (refused, unreachable, timed out), with the reason.
        case unreachable(String)
    }

    private typealias Begin = @convention(c) () -> OpaquePointer?
    private typealias End = @convention(c) (OpaquePointer?) -> Void
    private typealias FindSource = @convention(c) (OpaquePointer?, UnsafePointer<UInt8>?, Int32, UnsafePointer<CChar>?,
                                                   UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32
    private typealias FindDebuginfo = @convention(c) (OpaquePointer?, UnsafePointer<UInt8>?, Int32,
                                                      UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32
    private let client: OpaquePointer
    private let end: End
    private let source: FindSource
    private let debuginfo: FindDebuginfo
    /// The servers asked (`DEBUGINFOD_URLS`).
    public let urls: String

    /// Nil when `DEBUGINFOD_URLS` is unset or empty, or libdebuginfod is not installed.
    public init?() {
        guard let urls = Self.configuredURLs else { return nil }
        Self.boundTimeout()
        guard let handle = dlopen("libdebuginfod.so.1", RTLD_NOW),
              let begin = dlsym(handle, "debuginfod_begin"), let end = dlsym(handle, "debuginfod_end"),
              let source = dlsym(handle, "debuginfod_find_source"), let debuginfo = dlsym(handle, "debuginfod_find_debuginfo"),
              let client = unsafeBitCast(begin, to: Begin.self)() else { return nil }
        self.urls = urls
        self.client = client
        self.end = unsafeBitCast(end, to: End.self)
        self.source = unsafeBitCast(source, to: FindSource.self)
        self.debuginfo = unsafeBitCast(debuginfo, to: FindDebuginfo.self)
    }

    deinit { end(client) }

    /// `DEBUGINFOD_URLS`, when set and not empty.
    public static var configuredURLs: String? {
        guard let value = getenv("DEBUGINFOD_URLS").map({ String(cString: $0) }), value.contains(where: { $0 != " " }) else { return nil }
        return value
    }

    /// libdebuginfod waits 90 s per file by default, and tries a failed query twice more (each
    /// attempt waiting out the timeout again); a profiler should not. Explicit
    /// `DEBUGINFOD_TIMEOUT` and `DEBUGINFOD_RETRY_LIMIT` are kept. libdw's own client reads the
    /// same variables.
    public static func boundTimeout() {
        setenv("DEBUGINFOD_TIMEOUT", "10", 0)
        setenv("DEBUGINFOD_RETRY_LIMIT", "0", 0)
    }

    /// Stops every later query in this process, libdw's included (libdebuginfod reads
    /// `DEBUGINFOD_URLS` per query): after one unreachable answer, each further file would wait
    /// out the same timeout.
    public static func disable() {
        unsetenv("DEBUGINFOD_URLS")
    }

    /// The servers (`DEBUGINFOD_URLS`) and the reason, once ``checkServersOnce(buildID:installed:)``
    /// found that none answers; nil until then. Who reports debuginfod's state says so once.
    public static var unreachable: (urls: String, reason: String)? {
        pthread_mutex_lock(checkLock); defer { pthread_mutex_unlock(checkLock) }
        return unreachableServers
    }

    private static let checkLock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        return lock
    }()
    private nonisolated(unsafe) static var checked = false
    private nonisolated(unsafe) static var unreachableServers: (urls: String, reason: String)?

    /// Asks the servers for `buildID`'s debug file, the first time a file would be asked about in
    /// this process (later calls return at once); when none answers, records why
    /// (``unreachable``) and turns every later query off (``disable()``), so that one dead or
    /// silent server costs one timeout, not one per query. `installed` says whether the debug
    /// file is on disk already: then nothing is asked, and the next file is checked instead.
    /// Concurrent callers wait for the first one's answer.
    public static func checkServersOnce(buildID: String, installed: (String) -> Bool) {
        pthread_mutex_lock(checkLock); defer { pthread_mutex_unlock(checkLock) }
        guard !checked, configuredURLs != nil, !installed(buildID) else { return }
        checked = true
        guard let client = DebuginfodClient() else { return }
        if case .unreachable(let reason) = client.findDebuginfo(buildID: buildID) {
            unreachableServers = (client.urls, reason)
            disable()
        }
    }

    /// `/buildid/ID/source/PATH`. `buildID` is lowercase hex.
    public func findSource(buildID: String, path: String) -> Result {
        var found: UnsafeMutablePointer<CChar>?
        let fd = withHexID(buildID) { source(client, $0, 0, path, &found) }
        return result(fd, found)
    }

    /// `/buildid/ID/debuginfo`. `buildID` is lowercase hex.
    public func findDebuginfo(buildID: String) -> Result {
        var found: UnsafeMutablePointer<CChar>?
        let fd = withHexID(buildID) { debuginfo(client, $0, 0, &found) }
        return result(fd, found)
    }

    /// A build-id length of 0 tells libdebuginfod the id is a NUL-terminated hex string.
    private func withHexID(_ id: String, _ body: (UnsafePointer<UInt8>) -> Int32) -> Int32 {
        var bytes = Array(id.utf8)
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    private func result(_ fd: Int32, _ found: UnsafeMutablePointer<CChar>?) -> Result {
        defer { free(found) }
        if fd >= 0 {
            close(fd)
            return found.map { .found(String(cString: $0)) } ?? .notFound
        }
        switch -fd {
        case ENOENT, ENOSYS, EINVAL: return .notFound
        default: return .unreachable(String(cString: strerror(-fd)))
        }
    }
}
