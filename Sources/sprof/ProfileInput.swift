#if canImport(Glibc)
import Glibc
#endif
import Sprof
import SprofFormats

/// Reads a profile for `report`, `diff`, `convert` and `annotate`: sprof's or another tool's
/// pprof (gzip-compressed or plain profile.proto), or folded stacks from any tool, through the one
/// reader (``ProfileReader``), so every subcommand says the same of the same bad input.
///
/// - Throws: one-line `ExitCode` failures (status 1) naming the file: unreadable, not a profile,
///   a folded line without a count, a corrupt pprof message.
func readProfile(_ path: String) throws -> Profile { try readProfileInput(path).profile }

/// ``readProfile(_:)``, and whether the input was folded stacks (which carry no threads: the
/// profile's threads are then only the stacks' root frames).
func readProfileInput(_ path: String, allowingNoSamples: Bool = false) throws -> (profile: Profile, folded: Bool) {
    let (bytes, source) = try readInputBytes(path)
    do {
        let read = try ProfileReader.read(bytes, source: source)
        // A pprof file without samples (a run too short for one) gets the line an empty folded
        // file gets, from every view, rather than an empty table from some and a refusal from others.
        if read.profile.samples.isEmpty && !(allowingNoSamples && !read.isFolded) { throw ProfileReadError.noSamples(source: source) }
        if let notice = read.negativeValuesNotice(source: source) { printError(notice) }
        return (read.profile, read.isFolded)
    } catch let error as ProfileReadError {
        throw fail(error.message)
    }
}

/// All bytes of `path` (`-`: standard input), and the name messages give it (`<stdin>`), read by
/// ``ProfileReader/readInput(fd:source:limit:)``: at most 1 GiB, and input whose first 64 KiB
/// start no profile (`/dev/zero`) is refused then.
///
/// - Throws: a one-line `ExitCode` failure (status 1): `cannot read FILE: strerror`,
///   `FILE: larger than 1 GiB, …`, `FILE: not a pprof profile: …`.
func readInputBytes(_ path: String) throws -> (bytes: [UInt8], source: String) {
    let fromStdin = path == "-"
    let source = fromStdin ? "<stdin>" : ArgumentBytes.displayed(path)
    let fd = fromStdin ? STDIN_FILENO : ArgumentBytes.withPath(path) { open($0, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else { throw fail("cannot read \(source): \(String(cString: strerror(errno)))") }
    defer { if !fromStdin { close(fd) } }
    do {
        return (try ProfileReader.readInput(fd: fd, source: source), source)
    } catch let error as ProfileReadError {
        throw fail(error.message)
    }
}

/// The sample type a view reads: `--sample-type NAME` (any of the profile's types), else the
/// profile's default (pprof's rule, see ``Profile/sampleTypeIndex(selecting:)``). The one
/// implementation behind report, flamegraph, convert and diff.
///
/// - Throws: a usage error (status 2) listing the profile's types.
func valueIndex(_ profile: Profile, named name: String?) throws -> Int {
    do {
        return try profile.sampleTypeIndex(selecting: name)
    } catch {
        throw usage("\(error)")
    }
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

/// Refuses an empty path given to an option or argument (`-o ''`, `--artifacts ''`, a profile
/// `''`), which names no file: a usage error (status 2) before anything is read or written,
/// rather than `cannot write : …` after the input was read.
///
/// - Parameter paths: each option's spelling (`-o`, `--artifacts`, `PROFILE`) and its value.
/// - Throws: a one-line usage error naming the option.
func refuseEmptyPaths(_ paths: [(option: String, path: String?)]) throws {
    for (option, path) in paths where path == "" {
        throw usage("\(option) '': an empty path; give a file name")
    }
}
