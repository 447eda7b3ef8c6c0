import Foundation

/// File helpers for the data directory: every write is atomic (a temporary file in the same
/// directory, flushed, then renamed over the target), so a crash leaves the old file or the new one,
/// never half of one.
public enum DataFiles {
    /// Writes `bytes` to `path` atomically.
    /// - Throws: ``ServeError`` 500 naming the path and the system's reason.
    public static func writeAtomically(_ bytes: Data, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let base = (path as NSString).lastPathComponent
        let temp = "\(dir)/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw systemError("cannot write \(path)") }
        var ok = true
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; ok = false; return }
                offset += n
            }
        }
        let savedErrno = errno
        if ok { ok = fsync(fd) == 0 }
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            errno = ok ? errno : savedErrno
            let error = systemError("cannot write \(path)")
            unlink(temp)
            throw error
        }
    }

    /// Encodes `value` as JSON (sorted keys, so the same state gives the same bytes) and writes it atomically.
    public static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        try writeAtomically(try JSON.encode(value), to: path)
    }

    /// Decodes a JSON file, or nil when it does not exist.
    /// - Throws: decoding errors for a file that exists but is not what it should be.
    public static func readJSON<T: Decodable>(_ type: T.Type, from path: String) throws -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try JSONDecoder().decode(T.self, from: data)
    }

    /// Creates `path` and its parents.
    public static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw ServeError(500, "cannot create \(path): \(reason(error))")
        }
    }

    /// Checks that `dir` exists (creating it) and is writable, by writing and removing a file in it.
    /// - Throws: ``ServeError`` with one line naming the directory and what to do.
    public static func checkWritable(_ dir: String) throws {
        do {
            try makeDirectory(dir)
            try writeAtomically(Data("ok\n".utf8), to: dir + "/.write-test")
            unlink(dir + "/.write-test")
        } catch let error as ServeError {
            throw ServeError(500, "data directory \(dir) is not writable (\(error.message)); choose another with --data DIR")
        }
    }

    static func systemError(_ what: String) -> ServeError {
        ServeError(500, "\(what): \(String(cString: strerror(errno)))")
    }

    static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}

/// The one JSON encoder configuration: sorted keys, no escaped slashes.
enum JSON {
    static func encode<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try e.encode(value)
    }

    static func string<T: Encodable>(_ value: T) -> String {
        (try? encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}

/// Milliseconds since the Unix epoch.
func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
