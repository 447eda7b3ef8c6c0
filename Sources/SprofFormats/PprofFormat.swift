import SprofProfile
import SwiftProtobuf

/// pprof's profile format: a gzip-compressed protobuf `Profile` message (google/pprof
/// `proto/profile.proto`), the file `go tool pprof`, Grafana Pyroscope and Parca read.
///
/// How a ``Profile`` maps onto the message:
/// - `sample_type`, `period_type`, `period` and `default_sample_type` come from the profile's
///   measures; every sample carries one value per sample type.
/// - Mapping, location and function ids are the model's zero-based indices plus one.
/// - A location's inline chain is its `line` entries, innermost first.
/// - Kernel (and JIT) locations without a mapping get a synthesized `[kernel.kallsyms]` (`[jit]`)
///   mapping, so that every kernel frame sits in a kernel mapping and the kind reads back.
///   Markers (`[truncated]`, `[unknown]`, …) are explicit locations with no mapping and address 0.
/// - Each sample of a thread carries the labels `pid` and `tid` (numbers), `thread_name` and
///   `process_name` (strings); samples without a thread carry none. A sample of a repeated
///   recording also carries `run` (a number from 1, ``Profile/Sample/run``).
/// - `time_nanos`/`duration_nanos` are the metadata's start and duration; the provenance
///   (``ProfileMetadata/provenanceLines``) is written as `comment` strings.
///
/// Output is deterministic: the same ``Profile`` always gives the same bytes (tables in model
/// order, strings in first-use order, samples ordered by stack then by thread content, and a
/// gzip header without timestamp or name). Writing what was read from sprof's own file gives the
/// same bytes again.
///
/// Not carried by pprof, hence not read back: ``Profile/timedSamples``, ``Profile/memory`` and
/// ``Profile/Function/fullName`` (read back equal to the name; `system_name` keeps the linkage
/// name, from which `sprof report --full-names` makes the full name again). A function's `name` is
/// the short name views show (``Profile/FunctionNames``: unique in the profile).
public enum PprofFormat {
    /// The label keys written on every sample of a thread (a convention, not part of the schema;
    /// `go tool pprof -tagfocus`/`-tagroot` use them).
    public static let pidLabel = "pid"
    /// Thread id label (a number).
    public static let tidLabel = "tid"
    /// Thread name label (a string).
    public static let threadNameLabel = "thread_name"
    /// Process name label (a string).
    public static let processNameLabel = "process_name"
    /// Run number label (a number, from 1) on every sample of a profile of repeated runs
    /// (`sprof run -r N`): `go tool pprof -tagfocus=run=3` keeps the third run.
    public static let runLabel = "run"

    /// Mapping path given to kernel locations (perf's name for the kernel image).
    public static let kernelMappingPath = "[kernel.kallsyms]"
    /// Mapping path given to JIT locations without a mapping of their own.
    public static let jitMappingPath = "[jit]"

    /// The gzip-compressed pprof bytes of `profile`, ready to be written to `NAME.pb.gz`.
    /// - Throws: ``FormatError/inconsistent(_:)`` when an index in `profile` points outside its
    ///   table or a sample's value count differs from ``Profile/sampleTypes``' count;
    ///   ``FormatError/compression(_:)`` if zlib fails.
    public static func encode(_ profile: Profile) throws -> [UInt8] {
        var writer = PprofWriter(profile)
        let segments = try writer.write()
        return try withBytes(of: segments) { try Gzip.compress(segments: $0) }
    }

    /// The uncompressed protobuf bytes of `profile` (what ``encode(_:)`` gzips).
    /// - Throws: ``FormatError/inconsistent(_:)`` as ``encode(_:)``.
    public static func encodeUncompressed(_ profile: Profile) throws -> [UInt8] {
        var writer = PprofWriter(profile)
        let segments = try writer.write()
        var out: [UInt8] = []
        out.reserveCapacity(segments.reduce(0) { $0 + $1.count })
        for segment in segments { segment.withBytes { out.append(contentsOf: $0) } }
        return out
    }

    /// Lends the segments' bytes, in order, without copying them.
    private static func withBytes<R>(of segments: [ProtobufWriter], _ body: ([UnsafeBufferPointer<UInt8>]) throws -> R) rethrows -> R {
        // The writers own their buffers and are alive for the whole call.
        try body(segments.map { $0.withBytes { $0 } })
    }

    /// Reads a pprof profile, gzip-compressed or plain, from sprof or from another tool (Go's
    /// `runtime/pprof`, Pyroscope, …). Threads come from the `pid`/`tid`/`thread_name`/
    /// `process_name` labels (samples without them have no thread); comments become the metadata
    /// through ``ProfileMetadata/init(provenanceLines:)``, with `time_nanos`/`duration_nanos` as
    /// the start and duration when the comments lack them. Location kinds come from the mapping:
    /// `[kernel…]` paths are kernel, `[jit]` and `/tmp/perf-PID.map` are JIT, and a location with
    /// no mapping, address 0 and one bracketed function name (`[truncated]`) is a marker.
    /// - Throws: ``FormatError/compression(_:)`` for corrupt or truncated gzip data,
    ///   ``FormatError/malformed(_:)`` for bytes that are not a protobuf message,
    ///   ``FormatError/invalid(_:)`` for a message that breaks the schema's rules (zero or duplicate
    ///   ids, ids that refer to nothing, string indices outside the table, value counts that differ
    ///   from `sample_type`'s).
    ///   gzip data that expands beyond 1 GiB (``Gzip/maxDecompressedBytes``) is
    ///   ``FormatError/compression(_:)``, and gzip data whose first 64 KiB cannot start a
    ///   `Profile` message (``couldStartProfile(_:)``) is ``FormatError/malformed(_:)`` before
    ///   the rest is decompressed.
    public static func decode(_ bytes: [UInt8]) throws -> Profile {
        try decode(bytes, decompressedLimit: Gzip.maxDecompressedBytes)
    }

    /// ``decode(_:)`` with another limit on the decompressed size (tests).
    static func decode(_ bytes: [UInt8], decompressedLimit: Int) throws -> Profile {
        let plain = Gzip.isGzip(bytes) ? try Gzip.decompress(bytes, limit: decompressedLimit, acceptHead: { couldStartProfile($0) }) : bytes
        guard !plain.isEmpty else { throw FormatError.malformed("the file is empty") }
        let message: Perftools_Profiles_Profile
        do {
            message = try Perftools_Profiles_Profile(serializedBytes: plain)
        } catch let error as BinaryDecodingError {
            throw FormatError.malformed(describe(error))
        } catch {
            throw FormatError.malformed("protobuf decoding failed (\(error))")
        }
        return try PprofDecoder(message).profile()
    }

    /// Whether `head`, the first bytes of a plain (uncompressed) input, can start a protobuf
    /// `Profile` message: a run of fields, each a valid tag (field number 1 or more; wire type
    /// varint, fixed64, length-delimited or fixed32, as pprof's own reader accepts) followed by
    /// its value, with `Profile`'s own fields in their schema's wire type (the decoder refuses
    /// others too), and no length past the most a profile holds. The last field may run past the
    /// end of `head`. False for zeros (field number 0) and for most other binary data, so an
    /// endless or huge input that is no profile is refused after its first bytes.
    public static func couldStartProfile(_ head: UnsafeBufferPointer<UInt8>) -> Bool {
        // The varint at `i`: its value and the index after it; nil when it runs past the end,
        // .max when it is longer than 10 bytes (no valid varint is).
        func varint(_ i: Int) -> (value: UInt64, next: Int)? {
            var value: UInt64 = 0
            var j = i
            while j < head.count {
                guard j - i < 10 else { return (.max, -1) }
                let byte = head[j]
                value |= UInt64(byte & 0x7f) << UInt64(7 * (j - i))
                j += 1
                if byte & 0x80 == 0 { return (value, j) }
            }
            return nil
        }
        // Profile's fields (profile.proto) and their wire types: 2 length-delimited, 0 varint;
        // comment (13) is a repeated int64, packed (2) or not (0).
        let lengthDelimited: Set<UInt64> = [1, 2, 3, 4, 5, 6, 11]
        let varints: Set<UInt64> = [7, 8, 9, 10, 12, 14]
        var i = 0
        while i < head.count {
            guard let t = varint(i) else { return true }
            let (tag, afterTag) = t
            guard afterTag >= 0 else { return false }
            let (field, wireType) = (tag >> 3, tag & 7)
            guard field >= 1, field <= 536_870_911 else { return false }
            switch wireType {
            case 0:
                guard !lengthDelimited.contains(field) else { return false }
                guard let value = varint(afterTag) else { return true }
                guard value.next >= 0 else { return false }
                i = value.next
            case 1:
                guard !lengthDelimited.contains(field), !varints.contains(field), field != 13 else { return false }
                i = afterTag + 8
            case 2:
                guard !varints.contains(field) else { return false }
                guard let length = varint(afterTag) else { return true }
                guard length.next >= 0, length.value <= UInt64(Gzip.maxDecompressedBytes) else { return false }
                i = length.next + Int(length.value)
            case 5:
                guard !lengthDelimited.contains(field), !varints.contains(field), field != 13 else { return false }
                i = afterTag + 4
            default:
                return false
            }
        }
        return true
    }

    /// ``couldStartProfile(_:)`` of an array's bytes.
    public static func couldStartProfile(_ head: [UInt8]) -> Bool {
        head.withUnsafeBufferPointer { couldStartProfile($0) }
    }

    private static func describe(_ error: BinaryDecodingError) -> String {
        switch error {
        case .truncated: return "the protobuf data is truncated"
        case .malformedProtobuf: return "the bytes are not protobuf data"
        case .invalidUTF8: return "a string is not valid UTF-8"
        case .messageDepthLimit: return "messages are nested too deeply"
        default: return "protobuf decoding failed (\(error))"
        }
    }
}

