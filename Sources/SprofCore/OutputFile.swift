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
/// created with mode 0666 less the umask, like any file the shell creates; when it replaces an
/// existing file it gets that file's mode (a 0600 profile stays 0600).
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
        var replacedMode: mode_t?
        if ArgumentBytes.withPath(target, { stat($0, &st) }) == 0 {
            let kind = st.st_mode & S_IFMT
            replacedMode = st.st_mode & 0o7777
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
                // The replaced file's permissions, not the umask's: rename would otherwise reset them.
                if let replacedMode, fchmod(fd, replacedMode) != 0 {
                    let error = errno
                    close(fd)
                    ArgumentBytes.withPath(candidate) { _ = unlink($0) }
                    throw OutputFileError(path: path, errno: error)
                }
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
        try Self.commitAll([self])
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

extension OutputFile {
    /// Makes several outputs appear together: every file's content is flushed first, and only when
    /// all of them are complete are they renamed into place. A failure before the renames (ENOSPC
    /// on close, say) discards every file and leaves every path as it was; a rename that fails
    /// afterwards (rare: the directory changed under sprof) puts back the files already replaced,
    /// from hard links made beforehand, so that the paths never hold outputs of two runs.
    ///
    /// Write each file's whole content with ``write(_:)-(UnsafeRawBufferPointer)`` first.
    ///
    /// - Throws: the first ``OutputFileError``; no file is committed then, and all are discarded.
    public static func commitAll(_ files: [OutputFile]) throws(OutputFileError) {
        var failure: OutputFileError?
        for file in files where failure == nil {
            precondition(!file.committed && file.fd >= 0, "OutputFile \(file.path): commit after commit or discard")
            if file.temporary == nil { continue } // written in place: nothing to rename
            if close(file.fd) != 0 { failure = OutputFileError(path: file.path, errno: errno) }
            file.fd = -1
        }
        if let failure {
            for file in files { file.discard() }
            throw failure
        }
        // Hard links to the files about to be replaced, to undo a partial commit.
        var backups: [(target: String, backup: String)] = []
        var absent: Set<String> = []
        defer { for b in backups { ArgumentBytes.withPath(b.backup) { _ = unlink($0) } } }
        for file in files {
            guard let temporary = file.temporary else { continue }
            let backup = temporary + ".old"
            if ArgumentBytes.withPath(file.target, { from in ArgumentBytes.withPath(backup) { link(from, $0) } }) == 0 {
                backups.append((file.target, backup))
            } else if errno == ENOENT {
                absent.insert(file.target)
            }
        }
        var renamed: [OutputFile] = []
        for file in files {
            guard let temporary = file.temporary else {
                if close(file.fd) != 0 && failure == nil { failure = OutputFileError(path: file.path, errno: errno) }
                file.fd = -1
                file.committed = true
                continue
            }
            if ArgumentBytes.withPath(temporary, { from in ArgumentBytes.withPath(file.target) { rename(from, $0) } }) != 0 {
                failure = OutputFileError(path: file.path, errno: errno)
                break
            }
            file.temporary = nil
            renamed.append(file)
        }
        guard let failure else {
            for file in files { file.committed = true }
            return
        }
        for file in renamed {
            if let b = backups.first(where: { $0.target == file.target }) {
                ArgumentBytes.withPath(b.backup) { from in ArgumentBytes.withPath(file.target) { _ = rename(from, $0) } }
            } else if absent.contains(file.target) {
                ArgumentBytes.withPath(file.target) { _ = unlink($0) } // there was no file before
            }
        }
        for file in files { file.discard() }
        throw failure
    }
}
