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
    /// - Throws: ``ServeError`` 500 naming the directory that could not be made and the system's
    ///   reason (`mkdir`'s errno: Foundation's error said only "The operation could not be completed").
    public static func makeDirectory(_ path: String) throws {
        var made = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            made += "/" + part
            if mkdir(made, 0o755) == 0 { continue }
            let err = errno
            var st = stat()
            if err == EEXIST, stat(made, &st) == 0, (st.st_mode & 0o170000) == 0o040000 { continue }
            let why = err == EEXIST ? "it is a file, not a directory" : String(cString: strerror(err))
            throw ServeError(500, "cannot create \(made == path ? path : "\(made) for \(path)"): \(why)")
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
        // Our own errors (a folded line, a pprof file) carry one line of their own.
        if let e = error as? ServeError { return e.message }
        // (Swift error values only: an NSError's description is its domain and code.)
        if !(type(of: error) is AnyClass), !(error is CocoaError), let e = error as? CustomStringConvertible { return e.description }
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

/// Bounds a job's `output.log` while the command writes it: the first ``headBytes`` and the last
/// ``tailBytes`` are kept, with one line between them saying how much was left out. A command
/// that prints without end (`yes` wrote 2 GB in 4 s) can then fill neither the disk nor, when the
/// log is downloaded, the server's memory. The command writes the file itself (`O_APPEND`, so that
/// it survives the server), and the server cuts it from outside: each cut keeps the head, rewrites
/// the line and moves the last ``tailBytes`` (from a line start) down behind it. Output written
/// in the instant of a cut may land before the moved tail or be left out uncounted.
public struct OutputLog: Sendable {
    /// Bytes kept from the start of the output.
    public var headBytes: Int
    /// Bytes kept from the end of the output.
    public var tailBytes: Int
    /// Bytes left out so far (shown in the line).
    public private(set) var leftOut: Int64 = 0

    /// The caps of every job: 8 MiB from the start and 8 MiB from the end (documented in the README).
    public static let standard = OutputLog(headBytes: 8 << 20, tailBytes: 8 << 20)

    /// Creates a cap.
    public init(headBytes: Int, tailBytes: Int) {
        self.headBytes = headBytes
        self.tailBytes = tailBytes
    }

    /// The line between the head and the tail: one width whatever the count, so that a later
    /// cut rewrites it in place.
    func marker() -> [UInt8] {
        let count = String(leftOut)
        let padded = String(repeating: " ", count: max(0, 20 - count.count)) + count
        return Array("\n[sprof serve: \(padded) bytes of output left out here; output.log keeps the first \(headBytes >> 10) KiB and the last \(tailBytes >> 10) KiB]\n".utf8)
    }

    /// Cuts the log at `path` when it holds more than it keeps: at once when `final` (the command
    /// has ended), else only when it holds a whole tail more, so that a busy command's log is cut
    /// once per ``tailBytes`` of output, not at every look. Returns whether it cut.
    @discardableResult
    public mutating func cut(_ path: String, final: Bool = false) -> Bool {
        let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        let size = Int(st.st_size)
        let mark = marker()
        let dataStart = headBytes + (leftOut > 0 ? mark.count : 0)
        guard size > dataStart + tailBytes + (final ? 0 : tailBytes) else { return false }
        var tail = [UInt8](repeating: 0, count: tailBytes)
        let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress, tailBytes, off_t(size - tailBytes)) }
        guard n == tailBytes else { return false }
        // The kept tail starts at a line, when it holds a line end.
        let from = tail.firstIndex(of: 0x0a).map { $0 + 1 } ?? 0
        leftOut += Int64(size - tailBytes + from - dataStart)
        let line = marker()
        guard ftruncate(fd, off_t(headBytes)) == 0 else { return false }
        for chunk in [line, Array(tail[from...])] {
            var offset = 0
            while offset < chunk.count {
                let w = chunk[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if w < 0 { if errno == EINTR { continue }; return false }
                offset += w
            }
        }
        return true
    }
}
