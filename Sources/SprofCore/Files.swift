#if canImport(Glibc)
import Glibc
#endif

/// Reads a whole file with read(2) until EOF, or returns nil when it cannot be opened or read.
/// `/proc` and sysfs files report size 0, so stat-sized reads would see nothing.
///
/// `chunkSize` bounds the work of one read: the kernel generates some `/proc` files inside
/// read(2) (`/proc/kallsyms` is ~5 MB) and is not preempted there, so large reads from a
/// low-priority thread would hold a CPU for milliseconds at a time.
public func readWholeFile(_ path: String, chunkSize: Int = 1 << 16) -> [UInt8]? {
    var bytes: [UInt8] = []
    let ok = readFileInChunks(path, chunkSize: chunkSize) { bytes.append(contentsOf: $0) }
    return ok ? bytes : nil
}

/// Reads `path` with read(2) until EOF, handing each chunk to `body` as it arrives, so that a
/// caller that parses as it goes never holds the whole file. False when the file cannot be
/// opened or read. `chunkSize` bounds one read(2), as in ``readWholeFile(_:chunkSize:)``.
@discardableResult
public func readFileInChunks(_ path: String, chunkSize: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Void) -> Bool {
    let fd = ArgumentBytes.withPath(path) { open($0, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var chunk = [UInt8](repeating: 0, count: chunkSize)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return false
        }
        if n == 0 { return true }
        chunk.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[0..<n])) }
    }
}

/// ``readWholeFile(_:chunkSize:)`` as UTF-8 text (procfs, sysfs).
public func readTextFile(_ path: String) -> String? {
    readWholeFile(path, chunkSize: 4096).map { String(decoding: $0, as: UTF8.self) }
}

/// What a file of mode `mode` (stat's `st_mode`) is, in words for a message (`a FIFO`, `a
/// directory`, `a device`, `a socket`); nil for a regular file. For the paths sprof opens that
/// come from a profile rather than from the user, which are read only when they are regular
/// files: a FIFO would block the open, a device would never end.
public func nonRegularFileKind(_ mode: mode_t) -> String? {
    switch mode & S_IFMT {
    case S_IFREG: return nil
    case S_IFIFO: return "a FIFO"
    case S_IFDIR: return "a directory"
    case S_IFCHR, S_IFBLK: return "a device"
    case S_IFSOCK: return "a socket"
    default: return "not a regular file"
    }
}
