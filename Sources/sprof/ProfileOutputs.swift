#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Sprof

/// The files one recording writes beside each other (`PREFIX.folded`, `PREFIX.svg`,
/// `PREFIX.pb.gz`), all made from the one ``Profile`` value.
///
/// Each file is written to a temporary name in the same directory and renamed into place only
/// once every output is ready, so that a failed or empty run never destroys an earlier profile.
struct ProfileOutputs {
    let prefix: String

    var foldedPath: String { prefix + ".folded" }
    var svgPath: String { prefix + ".svg" }
    var pprofPath: String { prefix + ".pb.gz" }

    /// Fails at once (before launching anything) when an output could not be created.
    func checkWritable() throws {
        for path in [foldedPath, svgPath, pprofPath] { try checkOutputPath(path, hint: "choose another prefix with -o") }
    }

    /// Writes every output; returns the paths written, for the summary line.
    func write(_ profile: Profile, title: String, perThread: Bool, fullNames: Bool) throws -> [String] {
        let folded = profile.folded(perThread: perThread, fullNames: fullNames)
        var graph = FlameGraphOptions(title: title, subtitle: profile.metadata.summaryLine + dateSuffix(profile.metadata.startTime))
        graph.details = profile.metadata.provenanceLines
        var files: [(String, [UInt8])] = [
            (foldedPath, folded.serializedBytes()),
            (svgPath, FlameGraph.renderBytes(folded, options: graph)),
        ]
        files.append(contentsOf: try extraOutputs(profile))
        try writeAll(files)
        return files.map(\.0)
    }

    /// Outputs beyond folded and SVG (pprof).
    private func extraOutputs(_ profile: Profile) throws -> [(String, [UInt8])] {
        []
    }
}

/// Checks that `path` can be created or replaced, without touching an existing file: its directory
/// must be writable and the path must not be a directory.
func checkOutputPath(_ path: String, hint: String) throws {
    var st = stat()
    if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
        throw fail("cannot write \(path): it is a directory (\(hint))")
    }
    let slash = path.lastIndex(of: "/")
    let dir = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    if access(dir, W_OK) != 0 {
        throw fail("cannot write \(path): \(String(cString: strerror(errno))) (\(hint))")
    }
}

/// Writes each file to a temporary name beside it, then renames them all into place, so readers
/// never see a half-written file and a failure leaves the previous files as they were.
func writeAll(_ files: [(path: String, bytes: [UInt8])]) throws {
    var temps: [String] = []
    defer { for t in temps { unlink(t) } }
    for (path, bytes) in files {
        let temp = path + ".tmp-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot write \(path): \(String(cString: strerror(errno)))") }
        temps.append(temp)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                close(fd)
                throw fail("cannot write \(path): \(reason)")
            }
            offset += n
        }
        close(fd)
    }
    for ((path, _), temp) in zip(files, temps) {
        guard rename(temp, path) == 0 else { throw fail("cannot write \(path): \(String(cString: strerror(errno)))") }
    }
    temps.removeAll()
}

/// `, 2026-11-29 15:04:05` for a subtitle. strftime, not DateFormatter: loading ICU for one date
/// costs tens of milliseconds.
func dateSuffix(_ unixNanos: UInt64) -> String {
    guard unixNanos > 0 else { return "" }
    var tm = tm()
    var seconds = time_t(unixNanos / 1_000_000_000)
    localtime_r(&seconds, &tm)
    var buffer = [CChar](repeating: 0, count: 32)
    let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &tm)
    return ", " + String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
