#if canImport(Glibc)
import Glibc
#endif

/// Why an output file cannot be written. ``description`` is one line: `cannot write PATH: REASON`.
public struct OutputFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path the caller asked for.
    public var path: String
    /// errno of the failed call (EISDIR for a directory, EACCES, ENOENT for a missing directory,
    /// ENOSPC, …).
    public var errno: Int32

    /// Creates an error for `path` with `errno`.
    public init(path: String, errno: Int32) {
        self.path = path
        self.errno = errno
    }

    /// `cannot write out.svg: Is a directory`.
    public var description: String { "cannot write \(ArgumentBytes.displayed(path)): \(String(cString: strerror(errno)))" }
}

/// An output file that either appears complete or not at all: a failed or interrupted run never
/// leaves a truncated file, nor destroys the one a previous run wrote.
///
/// Use: create it *before* the long work (launching, attaching, reading input) so that a path
/// that cannot be written is reported at once; then ``commit(_:)`` the whole content, or
/// ``write(_:)`` pieces and ``commit()``. An output that is dropped (or ``discard()``ed) without a
/// commit leaves the path as it was.
///
/// How: `init` checks the path (not a directory; an existing file must be writable) and creates a
/// hidden temporary file `.NAME.sprof-PID-N` in the same directory, which also proves that the
/// directory can be written. `commit` flushes it and renames it over `path`: rename(2) within one
/// directory is atomic, so readers see either the old file or the new one. The temporary file is
/// created with mode 0666 less the umask, like any file the shell creates.
///
/// Paths that are not regular files are written in place, without a temporary: a character device
/// (`/dev/null`, `/dev/stdout`), a FIFO or a socket must not be replaced by a regular file. A
/// symbolic link is followed, so the file it points to is replaced and the link kept.
public final class OutputFile: @unchecked Sendable {
    /// The path as given.
    public let path: String
    /// Where the content finally goes (the path, or the file a symbolic link names).
    private let target: String
    /// The temporary file, or nil when writing in place.
    private var temporary: String?
    private var fd: Int32
    private var committed = false

    /// Checks that `path` can be written and opens a temporary file next to it. Creates nothing
    /// at `path` itself.
    ///
    /// - Throws: ``OutputFileError`` with EISDIR when `path` is a directory, EACCES when an
    ///   existing file or the directory is not writable, ENOENT when the directory does not exist.
    public init(path: String) throws(OutputFileError) {
        self.path = path
        guard !path.isEmpty else { throw OutputFileError(path: path, errno: ENOENT) }
        var target = path
        var st = stat()
        // Paths are opened by their original bytes (ArgumentBytes: -o may not be UTF-8).
        if ArgumentBytes.withPath(path, { lstat($0, &st) }) == 0 && (st.st_mode & S_IFMT) == S_IFLNK,
           let resolved = ArgumentBytes.withPath(path, { realpath($0, nil) }) {
            target = ArgumentBytes.string(UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)))
            free(resolved)
        }
        self.target = target
        if ArgumentBytes.withPath(target, { stat($0, &st) }) == 0 {
            let kind = st.st_mode & S_IFMT
            if kind == S_IFDIR { throw OutputFileError(path: path, errno: EISDIR) }
            if ArgumentBytes.withPath(target, { access($0, W_OK) }) != 0 { throw OutputFileError(path: path, errno: errno) }
            if kind != S_IFREG {
                let fd = ArgumentBytes.withPath(target) { open($0, O_WRONLY | O_CLOEXEC) }
                if fd < 0 { throw OutputFileError(path: path, errno: errno) }
                self.fd = fd
                self.temporary = nil
                return
            }
        }
        let slash = target.lastIndex(of: "/")
        let directory = slash.map { String(target[...$0]) } ?? ""
        let name = slash.map { String(target[target.index(after: $0)...]) } ?? target
        while true {
            let candidate = directory + "." + name + ".sprof-\(getpid())-\(OutputFile.nextSerial())"
            let fd = ArgumentBytes.withPath(candidate) { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666) }
            if fd >= 0 {
                self.fd = fd
                self.temporary = candidate
                return
            }
            if errno != EEXIST { throw OutputFileError(path: path, errno: errno) }
        }
    }

    deinit { discard() }

    /// Appends `bytes` to the content.
    ///
    /// - Throws: ``OutputFileError`` (ENOSPC, EIO, …); the path is left as it was.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(OutputFileError) {
        precondition(!committed && fd >= 0, "OutputFile \(path): write after commit or discard")
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw OutputFileError(path: path, errno: errno)
            }
            offset += n
        }
    }

    /// Appends `bytes` to the content.
    public func write(_ bytes: [UInt8]) throws(OutputFileError) {
        var failure: OutputFileError?
        bytes.withUnsafeBytes { raw in
            do { try write(raw) } catch { failure = error as? OutputFileError ?? OutputFileError(path: path, errno: EIO) }
        }
        if let failure { throw failure }
    }

    /// Makes the content written so far the file at `path`, replacing what was there.
    ///
    /// - Throws: ``OutputFileError`` when flushing or renaming fails; the temporary file is then
    ///   removed and the path left as it was.
    public func commit() throws(OutputFileError) {
        precondition(!committed && fd >= 0, "OutputFile \(path): commit after commit or discard")
        let closed = close(fd)
        let closeErrno = errno
        fd = -1
        guard let temporary else {
            committed = true
            if closed != 0 { throw OutputFileError(path: path, errno: closeErrno) }
            return
        }
        if closed != 0 {
            ArgumentBytes.withPath(temporary) { _ = unlink($0) }
            self.temporary = nil
            throw OutputFileError(path: path, errno: closeErrno)
        }
        if ArgumentBytes.withPath(temporary, { from in ArgumentBytes.withPath(target) { rename(from, $0) } }) != 0 {
            let saved = errno
            ArgumentBytes.withPath(temporary) { _ = unlink($0) }
            self.temporary = nil
            throw OutputFileError(path: path, errno: saved)
        }
        self.temporary = nil
        committed = true
    }

    /// Writes `bytes` as the whole content and commits it.
    public func commit(_ bytes: [UInt8]) throws(OutputFileError) {
        do {
            try write(bytes)
        } catch {
            discard()
            throw error
        }
        try commit()
    }

    /// Drops the content: removes the temporary file and leaves the path as it was. Idempotent;
    /// `deinit` calls it for an output never committed.
    public func discard() {
        if fd >= 0 { close(fd); fd = -1 }
        if let temporary {
            ArgumentBytes.withPath(temporary) { _ = unlink($0) }
            self.temporary = nil
        }
    }

    // Distinguishes several outputs of one process in one directory (PREFIX.folded, PREFIX.svg
    // are different names anyway; this covers the same name opened twice).
    private nonisolated(unsafe) static var serial = 0
    private static let serialLock: UnsafeMutablePointer<pthread_mutex_t> = {
        let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        return lock
    }()
    private static func nextSerial() -> Int {
        pthread_mutex_lock(serialLock)
        defer { pthread_mutex_unlock(serialLock) }
        serial += 1
        return serial
    }
}
