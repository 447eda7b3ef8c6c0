#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SprofProfile
import XCTest
@testable import SprofFormats

/// The limits on what a profile input costs: at most 1 GiB read, at most 1 GiB decompressed, and
/// input that cannot start a profile refused after its first 64 KiB (compressed or not).
final class FormatsInputLimitTests: XCTestCase {
    private func temporaryFile(_ name: String) -> String {
        NSTemporaryDirectory() + "sprof-input-limit-\(getpid())-" + name
    }

    private func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw XCTSkip("cannot open \(path)") }
        return fd
    }

    /// A regular file larger than the limit is refused from its size, before a byte is read
    /// (a 50 GB sparse file used to be read until memory ran out).
    func testARegularFileOverTheLimitIsRefusedBeforeAnyRead() throws {
        let path = temporaryFile("sparse")
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: nil)
        XCTAssertEqual(truncate(path, off_t(ProfileReader.maxInputBytes + 1)), 0)
        let fd = try open(path)
        defer { close(fd) }
        XCTAssertThrowsError(try ProfileReader.readInput(fd: fd, source: "big.pb")) { error in
            XCTAssertEqual((error as? ProfileReadError)?.kind, .tooLarge)
            XCTAssertEqual("\(error)", "big.pb: larger than 1 GiB, the most sprof reads of a profile (not a profile?); give a pprof file (.pb.gz) or folded stacks")
        }
        XCTAssertEqual(lseek(fd, 0, SEEK_CUR), 0, "nothing is read of a file refused by its size")
        XCTAssertEqual(ProfileReader.maxInputBytes, 1 << 30, "README documents 1 GiB")
    }

    /// Input that is not a regular file (a pipe) is refused once it passes the limit, whatever
    /// it holds: text, which could be folded stacks, is never refused early.
    func testAPipeIsRefusedOnceItPassesTheLimit() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let text = [UInt8](String(repeating: "main;work 1\n", count: 1000).utf8) // 12,000 bytes, under the pipe's 64 KiB
        XCTAssertEqual(text.withUnsafeBytes { write(fds[1], $0.baseAddress, $0.count) }, text.count)
        close(fds[1])
        defer { close(fds[0]) }
        XCTAssertThrowsError(try ProfileReader.readInput(fd: fds[0], source: "<stdin>", limit: 10_000)) { error in
            XCTAssertEqual((error as? ProfileReadError)?.kind, .tooLarge)
            XCTAssertTrue("\(error)".hasPrefix("<stdin>: larger than 10000 bytes, the most sprof reads"), "\(error)")
        }
        // Under the limit, all of it.
        var again: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&again), 0)
        XCTAssertEqual(text.withUnsafeBytes { write(again[1], $0.baseAddress, $0.count) }, text.count)
        close(again[1])
        defer { close(again[0]) }
        XCTAssertEqual(try ProfileReader.readInput(fd: again[0], source: "<stdin>", limit: 12_000), text)
    }

    /// Zeros cannot start any format: refused after the first 64 KiB, with the line the whole
    /// input would get, and the rest is never read (/dev/zero used to be read until memory ran out).
    func testInputThatStartsNoProfileIsRefusedAfterItsFirstBytes() throws {
        let path = temporaryFile("zeros")
        defer { unlink(path) }
        FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20))
        let fd = try open(path)
        defer { close(fd) }
        XCTAssertThrowsError(try ProfileReader.readInput(fd: fd, source: "zeros")) { error in
            XCTAssertEqual("\(error)", "zeros: not a pprof profile: the bytes are not protobuf data")
        }
        XCTAssertEqual(lseek(fd, 0, SEEK_CUR), off_t(ProfileReader.headBytes), "only the first 64 KiB are read")
        XCTAssertThrowsError(try ProfileReader.read([UInt8](repeating: 0, count: 100), source: "zeros")) { error in
            XCTAssertEqual("\(error)", "zeros: not a pprof profile: the bytes are not protobuf data", "the same line as for the whole input")
        }

        // /dev/zero itself, which never ends.
        let zero = try open("/dev/zero")
        defer { close(zero) }
        XCTAssertThrowsError(try ProfileReader.readInput(fd: zero, source: "/dev/zero")) { error in
            XCTAssertEqual("\(error)", "/dev/zero: not a pprof profile: the bytes are not protobuf data")
        }
    }

    /// Every prefix of a real profile's protobuf can start a profile; zeros, and fields in a wire
    /// type the schema does not give them, cannot.
    func testCouldStartProfile() throws {
        let plain = try PprofFormat.encodeUncompressed(Synthetic.profile())
        for length in 0 ... min(plain.count, 4096) {
            XCTAssertTrue(PprofFormat.couldStartProfile(Array(plain.prefix(length))), "prefix of \(length) bytes")
        }
        XCTAssertTrue(PprofFormat.couldStartProfile(plain))
        XCTAssertFalse(PprofFormat.couldStartProfile([0, 0, 0, 0]))
        XCTAssertFalse(PprofFormat.couldStartProfile([0x08, 0x01]), "sample_type (1) as a varint")
        XCTAssertFalse(PprofFormat.couldStartProfile([0x3a, 0x01, 0x00]), "drop_frames (7) length-delimited")
        XCTAssertFalse(PprofFormat.couldStartProfile([0x0b]), "a group's start")
        XCTAssertFalse(PprofFormat.couldStartProfile([0x0a, 0xff, 0xff, 0xff, 0xff, 0x7f]), "a length past 1 GiB")
        XCTAssertFalse(PprofFormat.couldStartProfile([0x48] + [UInt8](repeating: 0xff, count: 11)), "a varint of 11 bytes")
        XCTAssertTrue(PprofFormat.couldStartProfile([0x80, 0x01, 0x05]), "an unknown field (16) is fine")
    }

    /// A gzip stream whose first 64 KiB decompressed cannot start a profile is refused then: a
    /// gzip bomb of zeros costs 64 KiB, not its size. The stream here is cut short after 1 MiB of
    /// zeros, so a reader that went on would say it was truncated instead.
    func testGzipOfNoProfileIsRefusedAfterItsFirstDecompressedBytes() throws {
        let compressed = try Gzip.compress([UInt8](repeating: 0, count: 4 << 20))
        let cut = Array(compressed.prefix(compressed.count / 2))
        XCTAssertThrowsError(try PprofFormat.decode(cut)) { error in
            XCTAssertEqual("\(error)", "not a pprof profile: the bytes are not protobuf data")
        }
        // A real profile is read as before, and the decompressed size is capped.
        let profile = Synthetic.profile()
        let encoded = try PprofFormat.encode(profile)
        XCTAssertEqual(try PprofFormat.decode(encoded).samples.count, profile.samples.count)
        XCTAssertThrowsError(try PprofFormat.decode(encoded, decompressedLimit: 100)) { error in
            XCTAssertEqual("\(error)", "not a readable pprof file: gzip data expands beyond 100 bytes, the most sprof decompresses (not a profile?)")
        }
        XCTAssertEqual(Gzip.maxDecompressedBytes, 1 << 30, "README documents 1 GiB")
    }
}
