#if canImport(Glibc)
import Glibc
#endif
import Foundation
import XCTest
import Sprof
import SprofTestSupport

/// Inputs that never end, are huge, or are no file at all get one line, not a crash or a hang:
/// the profile readers' limits (README "Reading profiles"), and files named by a profile opened
/// only when regular.
final class ProfileInputLimitTests: XCTestCase {
    private func lines(_ s: String) -> [Substring] { s.split(separator: "\n") }

    private func goodProfile(_ prefix: String) throws -> String {
        let good = prefix + ".good.folded"
        try "main;a 3\nmain;b 1\n".write(toFile: good, atomically: true, encoding: .utf8)
        return good
    }

    /// /dev/zero and a 50 GB sparse file: every reader of profiles says one line (status 1)
    /// instead of reading until memory runs out.
    func testEndlessAndHugeInputsGetOneLine() throws {
        let prefix = SprofCLI.outputPrefix("endless-input")
        let good = try goodProfile(prefix)
        let sparse = prefix + ".sparse.pb"
        FileManager.default.createFile(atPath: sparse, contents: nil)
        defer { unlink(sparse) }
        XCTAssertEqual(truncate(sparse, 50 << 30), 0)
        let inputs = [("/dev/zero", "/dev/zero: not a pprof profile: the bytes are not protobuf data"),
                      (sparse, "\(sparse): larger than 1 GiB, the most sprof reads of a profile (not a profile?); give a pprof file (.pb.gz) or folded stacks")]
        for (input, expected) in inputs {
            for args in [["report", input], ["flamegraph", input, "-o", prefix + ".svg"],
                         ["convert", input, "--to", "folded", "-o", prefix + ".out.folded"],
                         ["diff", good, input, "-o", prefix + ".diff.svg"], ["annotate", "main", input]] {
                let r = try SprofCLI.run(args, timeout: 60)
                XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
                XCTAssertEqual(lines(r.stderr).count, 1, "\(args): \(r.stderr)")
                XCTAssertEqual(r.stderr, "sprof: \(expected)\n", "\(args)")
            }
        }
    }

    /// A gzip bomb of zeros is refused as not a profile from its first decompressed bytes: the
    /// file here is the first 20,000 bytes of 16 MiB of zeros compressed, so a reader that
    /// decompressed on would call it truncated instead.
    func testGzipOfZerosIsRefusedFromItsFirstBytes() throws {
        let prefix = SprofCLI.outputPrefix("gzip-zeros")
        let bomb = prefix + ".pb.gz"
        let gzip = try TestFixtures.run("/bin/sh", ["-c", "head -c 16777216 /dev/zero | gzip -1 | head -c 20000 > '\(bomb)'"], timeout: 60)
        XCTAssertEqual(gzip.status, 0, gzip.stderr)
        defer { unlink(bomb) }
        let r = try SprofCLI.run(["report", bomb], timeout: 60)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(r.stderr, "sprof: \(bomb): not a pprof profile: the bytes are not protobuf data\n")
    }

    /// PREFIX.memory.tsv is named from the profile's name, not by the user: a symbolic link to
    /// /dev/zero or a FIFO there gets one line, neither a hang nor memory running out.
    func testReportMemoryReadsOnlyARegularTimeline() throws {
        let prefix = SprofCLI.outputPrefix("memory-not-regular")
        let tsv = prefix + ".memory.tsv"
        defer { unlink(tsv) }
        for (kind, make) in [("a device", { symlink("/dev/zero", tsv) }), ("a FIFO", { mkfifo(tsv, 0o600) })] {
            unlink(tsv)
            XCTAssertEqual(make(), 0)
            let r = try SprofCLI.run(["report", "--memory", prefix + ".pb.gz"], timeout: 60)
            XCTAssertEqual(r.status, 1, r.stderr)
            XCTAssertEqual(r.stderr, "sprof: \(tsv) is not a regular file (\(kind)): not a memory timeline; sprof run writes one beside PREFIX.pb.gz\n")
        }
    }

    /// A profile whose mapping names a FIFO: annotate says so once and goes on, with and without
    /// --asm, instead of blocking in open(2) forever.
    func testAnnotateDoesNotOpenAMappingThatIsAFIFO() throws {
        let prefix = SprofCLI.outputPrefix("annotate-fifo")
        let fifo = prefix + ".fifo"
        unlink(fifo)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        defer { unlink(fifo) }
        let samples = Profile.ValueType(type: "samples", unit: "count")
        var b = ProfileBuilding(sampleTypes: [samples], defaultSampleType: 0, periodType: nil, period: 0)
        let m = b.mapping(Profile.Mapping(start: 0x40_0000, limit: 0x50_0000, fileOffset: 0, path: fifo, buildID: "0123456789abcdef"))
        let main = b.function(Profile.Function(name: "main", systemName: "main", file: "/nonexistent/main.c", startLine: 1))
        let l = b.location(Profile.Location(address: 0x40_1234, mapping: m, lines: [.init(function: main, line: 3)]))
        b.add(stack: b.stack([l]), thread: nil, values: [5])
        let path = prefix + ".pb.gz"
        FileManager.default.createFile(atPath: path, contents: Data(try PprofFormat.encode(b.build(metadata: Profile.Metadata()))))
        for extra in [[], ["--asm"]] {
            let r = try SprofCLI.run(["annotate", "main", path] + extra, timeout: 60)
            XCTAssertNotEqual(r.status, 137, "annotate \(extra) blocked on the FIFO: \(r.stderr)")
            XCTAssertEqual(r.stderr.components(separatedBy: "\(fifo) is a FIFO, not a binary: not read (the profile's mapping names it)").count, 2,
                           "one notice: \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("cannot read \(fifo)"), r.stderr)
        }
    }
}
