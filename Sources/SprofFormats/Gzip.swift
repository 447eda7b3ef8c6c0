internal import CSprof

/// gzip through zlib (the shim's `csprof_gzip`/`csprof_gunzip`). pprof files are gzip-compressed
/// (profile.proto's header comment); `go tool pprof` reads gzip or plain bytes.
enum Gzip {
    /// The first two bytes of every gzip member (RFC 1952).
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// One gzip member with mtime 0 and no file name, so equal input gives equal bytes.
    /// Level 1 by default: a profile written at the end of a run should not make the user wait,
    /// and level 6 saves only a few percent on protobuf (see bench/RESULTS.md).
    static func compress(_ input: [UInt8], level: Int32 = 1) throws -> [UInt8] {
        try input.withUnsafeBufferPointer { try compress($0, level: level) }
    }

    /// ``compress(_:level:)`` of bytes in place (the pprof writer's buffer, without a copy).
    static func compress(_ input: UnsafeBufferPointer<UInt8>, level: Int32 = 1) throws -> [UInt8] {
        let bound = csprof_gzip_bound(input.count)
        var failure: Int = 0
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            let written = csprof_gzip(input.baseAddress, input.count, buffer.baseAddress, bound, level)
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

    /// Decompresses one gzip (or zlib) stream. At most `limit` bytes of output, so that a
    /// compression bomb fails with an error instead of exhausting memory.
    static func decompress(_ input: [UInt8], limit: Int = 4 << 30) throws -> [UInt8] {
        var outPointer: UnsafeMutablePointer<UInt8>?
        var outCount = 0
        let rc = input.withUnsafeBufferPointer { inp in
            csprof_gunzip(inp.baseAddress, inp.count, &outPointer, &outCount, limit)
        }
        defer { free(outPointer) }
        switch rc {
        case 0:
            guard let outPointer else { return [] }
            return Array(UnsafeBufferPointer(start: outPointer, count: outCount))
        case -100:
            throw FormatError.compression("gzip data expands beyond \(limit >> 20) MiB")
        case Z_BUF_ERROR:
            throw FormatError.compression("gzip data is truncated")
        case Z_MEM_ERROR:
            throw FormatError.compression("out of memory while decompressing")
        default:
            throw FormatError.compression("gzip data is corrupt (zlib error \(rc))")
        }
    }
}
