import Dispatch

/// gzip through zlib's own API (``Zlib``). pprof files are gzip-compressed
/// (profile.proto's header comment); `go tool pprof` reads gzip or plain bytes.
enum Gzip {
    /// The first two bytes of every gzip member (RFC 1952).
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// One gzip member with mtime 0 and no file name, so equal input gives equal bytes.
    /// Level 1 by default: a profile written at the end of a run should not make the user wait,
    /// and level 6 saves only 10% on pprof protobuf for 2.4 times the time (bench/RESULTS.md).
    static func compress(_ input: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        try input.withUnsafeBufferPointer { try compress($0, level: level) }
    }

    /// Input is compressed in pieces of at most this many bytes, on as many threads as there are
    /// CPUs (as pigz does). The pieces are fixed by the input alone (its segments and this size),
    /// so the output does not depend on the number of CPUs; each costs a few bytes of flush and
    /// starts without history (under 1%).
    static let pieceSize = 1 << 20

    /// ``compress(_:level:)`` of bytes in place (the pprof writer's buffer, without a copy).
    static func compress(_ input: UnsafeBufferPointer<UInt8>, level: Int32 = 1) throws -> [UInt8] {
        try compress(segments: [input], level: level)
    }

    /// One gzip member of the segments' bytes joined in order, without joining them first.
    /// Pieces are cut at segment ends and every ``pieceSize`` bytes within a segment, so they
    /// depend on the input alone; up to ``pieceSize`` in all, one zlib call writes the member
    /// (the same bytes as for the joined input).
    static func compress(segments: [UnsafeBufferPointer<UInt8>], level: Int32 = 1) throws -> [UInt8] {
        let total = segments.reduce(0) { $0 + $1.count }
        if total <= pieceSize {
            if segments.count == 1 { return try compressWhole(segments[0], level: level) }
            var joined: [UInt8] = []
            joined.reserveCapacity(total)
            for s in segments { joined.append(contentsOf: s) }
            return try joined.withUnsafeBufferPointer { try compressWhole($0, level: level) }
        }
        var pieces: [UnsafeBufferPointer<UInt8>] = []
        for s in segments where s.count > 0 {
            var start = 0
            while start < s.count {
                let length = min(pieceSize, s.count - start)
                pieces.append(UnsafeBufferPointer(rebasing: s[start..<start + length]))
                start += length
            }
        }
        let count = pieces.count
        let bound = Zlib.gzipBound(pieceSize)
        let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: bound * count)
        defer { scratch.deallocate() }
        let results = UnsafeMutablePointer<(written: Int, crc: UInt32)>.allocate(capacity: count)
        results.initialize(repeating: (0, 0), count: count)
        defer { results.deallocate() }
        // Each iteration writes only its own slot of `scratch` and `results`.
        nonisolated(unsafe) let (scratchOut, resultsOut, input) = (scratch, results, pieces)
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let piece = input[i]
            let written = Zlib.deflatePiece(piece, into: UnsafeMutableBufferPointer(start: scratchOut + i * bound, count: bound), level: level, last: i == count - 1)
            resultsOut[i] = (written, Zlib.crc32(piece))
        }
        var out: [UInt8] = []
        out.reserveCapacity((0..<count).reduce(18) { $0 + max(0, results[$1].written) })
        // RFC 1952 header: deflate, no flags, mtime 0, XFL as zlib sets it, OS 3 (Unix).
        out += [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, level >= 9 ? 2 : (level < 2 ? 4 : 0), 3]
        var crc: UInt32 = 0
        for i in 0..<count {
            let r = results[i]
            guard r.written >= 0 else { throw FormatError.compression("zlib deflate failed (error \(r.written))") }
            out.append(contentsOf: UnsafeBufferPointer(start: scratch + i * bound, count: r.written))
            crc = i == 0 ? r.crc : Zlib.crc32Combine(crc, r.crc, secondLength: pieces[i].count)
        }
        let size = UInt32(truncatingIfNeeded: total)
        for v in [crc, size] {
            out += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 24)]
        }
        return out
    }

    /// Inputs of one piece: one zlib call writes the whole member.
    private static func compressWhole(_ input: UnsafeBufferPointer<UInt8>, level: Int32) throws -> [UInt8] {
        let bound = Zlib.gzipBound(input.count)
        var failure: Int = 0
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            let written = Zlib.gzip(input, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<bound]), level: level)
            if written < 0 {
                failure = written
                count = 0
            } else {
                count = written
            }
        }
        if failure != 0 { throw FormatError.compression("zlib deflate failed (error \(failure))") }
        return out
    }

    /// The most bytes a profile decompresses to (1 GiB): sprof's largest profiles are tens of
    /// MiB uncompressed, and past this the input is a compression bomb, not a profile.
    static let maxDecompressedBytes = 1 << 30

    /// Decompresses one gzip (or zlib) stream. At most `limit` bytes of output, so that a
    /// compression bomb fails with an error instead of exhausting memory; `acceptHead` (see
    /// ``Zlib/gunzip(_:limit:headSize:acceptHead:)``) may refuse the first 64 KiB of output
    /// before the rest is decompressed, as `notAccepted`.
    static func decompress(_ input: [UInt8], limit: Int = maxDecompressedBytes,
                           acceptHead: ((UnsafeBufferPointer<UInt8>) -> Bool)? = nil,
                           notAccepted: FormatError = .malformed("the bytes are not protobuf data")) throws -> [UInt8] {
        let result = input.withUnsafeBufferPointer { Zlib.gunzip($0, limit: limit, acceptHead: acceptHead) }
        switch result {
        case .success(let bytes):
            return bytes
        case .failure(let error) where error.code == Zlib.headRefused:
            throw notAccepted
        case .failure(let error) where error.code == Zlib.overLimit:
            throw FormatError.compression("gzip data expands beyond \(sizeText(limit)), the most sprof decompresses (not a profile?)")
        case .failure(let error) where error.code == Zlib.bufferError:
            throw FormatError.compression("gzip data is truncated")
        case .failure(let error) where error.code == Zlib.memoryError:
            throw FormatError.compression("out of memory while decompressing")
        case .failure(let error):
            throw FormatError.compression("gzip data is corrupt (zlib error \(error.code))")
        }
    }

    /// `1 GiB`, `64 MiB`, `4096 bytes`: a limit as messages give it.
    static func sizeText(_ bytes: Int) -> String {
        if bytes >= 1 << 30 && bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes >= 1 << 20 && bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}
