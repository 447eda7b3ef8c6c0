#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Files behind mappings that can no longer be opened by their path: an executable that deleted
/// itself, a library replaced by an upgrade, code in a memfd. While the process lives, the kernel
/// still serves each mapping's file at `/proc/PID/map_files/START-END` (root or CAP_SYS_ADMIN)
/// and the executable at `/proc/PID/exe` (the process's owner). sprof opens it there the first
/// time a mapping is met during the recording and keeps the descriptor, so that unwinding and
/// naming, which may happen after the process has exited, read the same bytes.
///
/// Shared by the unwinder and the symbolizer; thread-safe. Descriptors stay open for the life of
/// the process (one per such file: a handful).
public enum MappedFiles {
    private static let lock = NSLock()
    /// By "pid start end": the kept path (`/proc/self/fd/N`), or nil when nothing could be opened.
    private static var kept: [String: String?] = [:]

    /// The file a path names, without the ` (deleted)` that `/proc/PID/maps` appends.
    public static func filePath(_ path: String) -> String {
        path.hasSuffix(" (deleted)") ? String(path.dropLast(" (deleted)".count)) : path
    }

    /// Whether `path` is a file mapping worth reading (an absolute path or a memfd).
    public static func isFileMapping(_ path: String) -> Bool {
        path.hasPrefix("/") && !path.hasPrefix("//anon")
    }

    /// A path that reads the file behind `mapping` of process `pid`. The mapping's own path when
    /// that file is there (unless `replaced`: the caller found a different file at that path, by
    /// build-id), else a kept descriptor on the process's view of it, else nil.
    public static func readablePath(_ mapping: Mapping, pid: Int32, replaced: Bool = false) -> String? {
        let path = filePath(mapping.path)
        guard isFileMapping(path) else { return nil }
        if !replaced, !mapping.path.hasSuffix(" (deleted)"), !path.hasPrefix("/memfd:"), access(path, R_OK) == 0 {
            return path
        }
        return kept(mapping, pid: pid)
    }

    /// Only the kept descriptor's path, if one was opened for this mapping earlier.
    public static func keptPath(_ mapping: Mapping, pid: Int32) -> String? {
        lock.lock(); defer { lock.unlock() }
        return kept[key(mapping, pid)] ?? nil
    }

    private static func key(_ m: Mapping, _ pid: Int32) -> String {
        "\(pid) \(String(m.start.rawValue, radix: 16)) \(String(m.end.rawValue, radix: 16))"
    }

    private static func kept(_ mapping: Mapping, pid: Int32) -> String? {
        let k = key(mapping, pid)
        lock.lock(); defer { lock.unlock() }
        if let known = kept[k] { return known }
        var candidates = ["/proc/\(pid)/map_files/\(String(mapping.start.rawValue, radix: 16))-\(String(mapping.end.rawValue, radix: 16))"]
        // The executable itself, for users who may not open map_files: same file if its name matches.
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe"),
           filePath(target) == filePath(mapping.path) {
            candidates.append("/proc/\(pid)/exe")
        }
        var result: String? = nil
        for candidate in candidates {
            let fd = open(candidate, O_RDONLY | O_CLOEXEC)
            if fd >= 0 {
                result = "/proc/self/fd/\(fd)"
                break
            }
        }
        kept[k] = .some(result)
        return result
    }
}
