#if canImport(Glibc)
import Glibc
#endif
import Sprof
import SprofFormats

/// Reads a profile for `report`, `diff`, `convert` and `flamegraph`: sprof's or another tool's
/// pprof (gzip-compressed or plain profile.proto), or folded stacks from any tool. The format is
/// told by content, not by name: gzip's magic bytes or binary content mean pprof, text means folded.
///
/// - Throws: one-line `ExitCode` failures (status 1) naming the file: unreadable, not a profile,
///   a folded line without a count, a corrupt pprof message.
func readProfile(_ path: String) throws -> Profile { try readProfileInput(path).profile }

/// ``readProfile(_:)``, and whether the input was folded stacks (which carry no threads: the
/// profile's threads are then only the stacks' root frames).
func readProfileInput(_ path: String) throws -> (profile: Profile, folded: Bool) {
    let fromStdin = path == "-"
    let source = fromStdin ? "<stdin>" : ArgumentBytes.displayed(path)
    var bytes: [UInt8] = []
    let fd = fromStdin ? STDIN_FILENO : ArgumentBytes.withPath(path) { open($0, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else { throw fail("cannot read \(source): \(String(cString: strerror(errno)))") }
    defer { if !fromStdin { close(fd) } }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw fail("cannot read \(source): \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    if bytes.isEmpty { throw fail("\(source): empty file, not a profile (expected pprof or folded stacks)") }
    switch inputKind(bytes) {
    case .pprof:
        do {
            return (withoutNegativeValues(try PprofFormat.decode(bytes), source: source), false)
        } catch {
            throw fail(pprofFailure(bytes, source: source, error: error))
        }
    case .either:
        if let profile = try? PprofFormat.decode(bytes) { return (withoutNegativeValues(profile, source: source), false) }
    case .folded:
        break
    }
    do {
        let stacks = try FoldedStacks.parse(bytes: bytes, source: source).stacks()
        // A profile's values are pprof's int64s: counts that add up past that cannot be one
        // (clamping them would make this view disagree with `sprof flamegraph` of the same file).
        var total: UInt64 = 0
        for stack in stacks {
            let (sum, overflow) = total.addingReportingOverflow(stack.count)
            guard !overflow, sum <= UInt64(Int64.max) else {
                throw fail("\(source): the counts add up to more than \(grouped(Int64.max)), the most a profile (pprof's int64 values) holds")
            }
            total = sum
        }
        // Blank lines or only zero counts: as `sprof flamegraph` says of them, not a profile.
        if total == 0 { throw fail("\(source): no samples (an empty profile?)") }
        return (Profile(folded: stacks.map { (frames: $0.frames, count: Int64($0.count)) }), true)
    } catch let error as FoldedParseError {
        // The folded parser's own message already names the expected form when that is the problem.
        throw fail(error.description.contains("(expected") ? error.description : error.description + " (expected folded stacks 'a;b;c COUNT' or a pprof file)")
    }
}

/// What input bytes are: pprof when gzip (1f 8b) or with a NUL byte, which folded text never
/// has; folded when every byte of the first 4 KiB is text; otherwise (another control byte, say
/// ESC in a frame name) pprof if they decode as one, else folded stacks.
enum InputKind { case pprof, folded, either }

func inputKind(_ bytes: [UInt8]) -> InputKind {
    if bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b { return .pprof }
    let head = bytes.prefix(4096)
    if head.contains(0) { return .pprof }
    return head.contains { $0 < 0x20 && $0 != 0x0a && $0 != 0x0d && $0 != 0x09 } ? .either : .folded
}

/// The sample type a view reads: `--sample-type`/`--view` names (`samples`, `cpu`, `wall`,
/// `off-cpu`/`offcpu`, or any of the profile's types), else the profile's default.
func valueIndex(_ profile: Profile, named name: String?) throws -> Int {
    guard let name else { return profile.defaultSampleType }
    let wanted = name == "offcpu" ? "off-cpu" : name
    if let i = profile.sampleTypeIndex(wanted) { return i }
    let known = profile.sampleTypes.map(\.type).joined(separator: ", ")
    let advice = ["wall", "off-cpu"].contains(wanted) ? "; record with --off-cpu for wall and off-cpu" : ""
    throw usage("this profile has no '\(name)' values (it has: \(known))\(advice)")
}

/// Refuses, before anything is read or written, an output that is the same file as an input (same
/// device and inode, so also through a symbolic link, a hard link or `./`): replacing it would
/// destroy the only copy of the input (`sprof flamegraph -o x.folded x.folded`). Standard input
/// and output (`-`) and paths that do not exist yet are never the same file.
///
/// - Throws: a one-line usage error (status 2) naming both paths.
func refuseOutputOverInput(_ outputs: [String?], inputs: [String?], option: String = "-o") throws {
    func identity(_ path: String?) -> (dev: UInt64, ino: UInt64)? {
        guard let path, path != "-" else { return nil }
        var st = stat()
        guard ArgumentBytes.withPath(path, { stat($0, &st) }) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }
    for output in outputs {
        guard let out = identity(output) else { continue }
        for input in inputs {
            guard let inp = identity(input), inp == out else { continue }
            let same = input == output ? "" : " (the same file as \(ArgumentBytes.displayed(input!)))"
            throw usage("\(option) \(ArgumentBytes.displayed(output!)) is the input file\(same): writing it would destroy the input; choose another output name")
        }
    }
}

/// The one line for input taken as pprof (gzip or a NUL byte) that does not decode, the same in
/// every subcommand that reads profiles. Text with a NUL byte in it is a damaged folded file, not
/// a pprof one: the line names where the byte is, rather than protobuf's complaint.
func pprofFailure(_ bytes: [UInt8], source: String, error: Error) -> String {
    if let nul = bytes.firstIndex(of: 0), nul > 0,
       !bytes[..<nul].contains(where: { $0 < 0x20 && $0 != 0x0a && $0 != 0x0d && $0 != 0x09 }) {
        let line = bytes[..<nul].reduce(1) { $1 == 0x0a ? $0 + 1 : $0 }
        let lineStart = bytes[..<nul].lastIndex(of: 0x0a).map { $0 + 1 } ?? 0
        return "\(source):\(line): a NUL byte (0x00) at byte \(nul - lineStart + 1) of the line; folded stacks are text (remove the byte, or give a pprof file)"
    }
    // FormatError's own text already says "not a … pprof file/profile".
    return "\(source): \(error)"
}

/// The one rule for negative sample values, which pprof allows (`pprof -diff_base` output) but a
/// cost view cannot show (a −100% row, a frame of negative width): every view counts them as 0,
/// so report, flamegraph, speedscope, folded and diff agree, and a notice on stderr says how many
/// samples that touched. `sprof diff BASE NEW` is the view for differences.
func withoutNegativeValues(_ profile: Profile, source: String) -> Profile {
    var clamped = 0
    var result = profile
    for i in result.samples.indices where result.samples[i].values.contains(where: { $0 < 0 }) {
        clamped += 1
        result.samples[i].values = result.samples[i].values.map { max(0, $0) }
    }
    if clamped > 0 {
        printError("\(source): \(grouped(clamped)) sample\(clamped == 1 ? " has" : "s have") negative values, counted as 0 (sprof's views show costs; compare two profiles with sprof diff BASE NEW)")
    }
    return result
}
