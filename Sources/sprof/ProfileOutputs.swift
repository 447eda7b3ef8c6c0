#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Sprof
import SprofFormats

/// The files one recording writes beside each other (`PREFIX.folded`, `PREFIX.svg`,
/// `PREFIX.pb.gz`), all made from the one ``Profile`` value.
///
/// Created before recording starts, so an unwritable prefix fails at once; each file is written
/// to a temporary name and renamed into place only once the profile exists (``OutputFile``), so a
/// failed or too-short run never destroys an earlier profile.
final class ProfileOutputs {
    let prefix: String
    private var files: [(suffix: String, file: OutputFile)] = []

    init(prefix: String) throws {
        self.prefix = prefix
        for suffix in [".folded", ".svg", ".pb.gz"] {
            files.append((suffix, try OutputFile(path: prefix + suffix)))
        }
    }

    /// Writes every output; returns the paths written, for the summary line.
    func write(_ profile: Profile, title: String, perThread: Bool, fullNames: Bool) throws -> [String] {
        let folded = profile.folded(perThread: perThread, fullNames: fullNames)
        var graph = FlameGraphOptions(title: title, subtitle: profile.metadata.summaryLine + dateSuffix(profile.metadata.startTime))
        graph.details = profile.metadata.provenanceLines
        var contents: [String: [UInt8]] = [
            ".folded": folded.serializedBytes(),
            ".svg": FlameGraph.renderBytes(folded, options: graph),
        ]
        for (suffix, bytes) in try extraOutputs(profile) { contents[suffix] = bytes }
        var written: [String] = []
        for (suffix, file) in files {
            guard let bytes = contents[suffix] else { file.discard(); continue }
            try file.write(bytes)
            written.append(file.path)
        }
        return written
    }

    /// Leaves every path as it was.
    func discard() { for (_, file) in files { file.discard() } }

    /// Outputs beyond folded and SVG (pprof).
    private func extraOutputs(_ profile: Profile) throws -> [(String, [UInt8])] {
        do {
            return [(".pb.gz", try PprofFormat.encode(profile))]
        } catch {
            throw fail("cannot encode \(prefix).pb.gz: \(error)")
        }
    }
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
