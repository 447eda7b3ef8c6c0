internal import CZlib

/// zlib's own API (deflate, inflate, crc32), driven from Swift for ``Gzip``.
///
/// Every z_stream lives on the heap for its whole use: zlib keeps a pointer back to the stream
/// and refuses calls made through another address (deflateStateCheck), so a Swift value that
/// could be copied between calls will not do. `deflateInit2`/`inflateInit2` are C macros; their
/// functions (`deflateInit2_`, `inflateInit2_`) take the library version and the stream's size.
/// No gz_header is set, so zlib writes mtime 0, no file name and OS 3: the same input always
/// gives the same bytes. avail_in and avail_out are 32-bit, so inputs and outputs beyond 1 GiB
/// are fed and drained in 1 GiB chunks.
enum Zlib {
    /// Z_BUF_ERROR: no progress possible (output full, or input truncated).
    static let bufferError = Z_BUF_ERROR
    /// Z_MEM_ERROR.
    static let memoryError = Z_MEM_ERROR
    /// What ``gunzip(_:limit:)`` returns when the output would pass its limit.
    static let overLimit: Int32 = -100

    private static let chunk = 0x4000_0000

    private static func withStream<T>(_ body: (UnsafeMutablePointer<z_stream>) -> T) -> T {
        let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        s.initialize(to: z_stream())
        defer { s.deallocate() }
        return body(s)
    }

    private static func deflateInit(_ s: UnsafeMutablePointer<z_stream>, level: Int32, windowBits: Int32) -> Int32 {
        deflateInit2_(s, level, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    }

    /// An upper bound on ``gzip(_:into:level:)``'s output for `count` input bytes (deflateBound
    /// with the gzip wrapper), so the caller can allocate once.
    static func gzipBound(_ count: Int) -> Int {
        withStream { s in
            guard deflateInit(s, level: 1, windowBits: 15 + 16) == Z_OK else { return count + count / 2 + 1024 }
            defer { deflateEnd(s) }
            return Int(deflateBound(s, uLong(count))) + 64
        }
    }

    /// Compresses `input` into one gzip member at `out` (at least ``gzipBound(_:)`` bytes).
    /// `level`: 1 (fastest) … 9 (smallest). Returns the bytes written, or a negative zlib error.
    static func gzip(_ input: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>, level: Int32) -> Int {
        withStream { s in
            var rc = deflateInit(s, level: level, windowBits: 15 + 16)
            guard rc == Z_OK else { return Int(rc < 0 ? rc : -1) }
            defer { deflateEnd(s) }
            var consumed = 0, written = 0
            var flush = Z_NO_FLUSH
            repeat {
                if s.pointee.avail_in == 0 {
                    let left = input.count - consumed
                    s.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
                    s.pointee.avail_in = uInt(min(left, chunk))
                    flush = left > chunk ? Z_NO_FLUSH : Z_FINISH
                }
                let room = out.count - written
                if room == 0 { return Int(Z_BUF_ERROR) }
                s.pointee.next_out = out.baseAddress.map { $0 + written }
                s.pointee.avail_out = uInt(min(room, chunk))
                let (inBefore, outBefore) = (s.pointee.avail_in, s.pointee.avail_out)
                rc = deflate(s, flush)
                consumed += Int(inBefore - s.pointee.avail_in)
                written += Int(outBefore - s.pointee.avail_out)
            } while rc == Z_OK || (rc == Z_BUF_ERROR && s.pointee.avail_out != 0)
            return rc == Z_STREAM_END ? written : Int(rc < 0 ? rc : Z_BUF_ERROR)
        }
    }

    /// One piece of a gzip member compressed on its own (raw deflate, no header), so that pieces
    /// can be compressed on several threads and concatenated, as pigz does: every piece but the
    /// last ends with a sync flush (byte-aligned, not final), the last with Z_FINISH. The caller
    /// writes the gzip header and the CRC-32/ISIZE trailer. Returns the bytes written or a
    /// negative zlib error.
    static func deflatePiece(_ input: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>, level: Int32, last: Bool) -> Int {
        withStream { s in
            let rc = deflateInit(s, level: level, windowBits: -15)
            guard rc == Z_OK else { return Int(rc < 0 ? rc : -1) }
            defer { deflateEnd(s) }
            guard input.count <= chunk, out.count <= Int(UInt32.max) else { return Int(Z_BUF_ERROR) }
            s.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            s.pointee.avail_in = uInt(input.count)
            s.pointee.next_out = out.baseAddress
            s.pointee.avail_out = uInt(out.count)
            let result = deflate(s, last ? Z_FINISH : Z_SYNC_FLUSH)
            let written = out.count - Int(s.pointee.avail_out)
            let done = last ? result == Z_STREAM_END : (result == Z_OK && s.pointee.avail_in == 0 && s.pointee.avail_out != 0)
            return done ? written : Int(Z_BUF_ERROR)
        }
    }

    /// zlib's CRC-32 (the gzip trailer's) of `input`.
    static func crc32(_ input: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var crc = CZlib.crc32(0, nil, 0)
        var offset = 0
        while offset < input.count {
            let n = min(input.count - offset, chunk)
            crc = CZlib.crc32(crc, input.baseAddress! + offset, uInt(n))
            offset += n
        }
        return UInt32(truncatingIfNeeded: crc)
    }

    /// The CRC-32 of two pieces joined, from theirs and the second's length.
    static func crc32Combine(_ a: UInt32, _ b: UInt32, secondLength: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: crc32_combine(uLong(a), uLong(b), off_t(secondLength)))
    }

    /// What ``gunzip(_:limit:headSize:acceptHead:)`` returns when `acceptHead` refused the first bytes.
    static let headRefused: Int32 = -101

    /// Decompresses one gzip (or zlib) stream. The output size is not known in advance, so the
    /// buffer doubles as it fills, up to `limit` bytes (a hostile file cannot exhaust memory).
    /// When the first `headSize` bytes are out (or the whole output, if shorter), `acceptHead`
    /// sees them and may refuse them (``headRefused``), so that a compressed file that cannot be
    /// what the caller reads is refused before the rest is decompressed (a gzip bomb of zeros).
    /// Returns the bytes, or a zlib error: ``bufferError`` when truncated, Z_DATA_ERROR when
    /// corrupt, ``memoryError``, ``overLimit`` or ``headRefused``.
    static func gunzip(_ input: UnsafeBufferPointer<UInt8>, limit: Int, headSize: Int = 1 << 16,
                       acceptHead: ((UnsafeBufferPointer<UInt8>) -> Bool)? = nil) -> Result<[UInt8], ZlibError> {
        withStream { s in
            var rc = inflateInit2_(s, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) // 32: a gzip or a zlib header
            guard rc == Z_OK else { return .failure(ZlibError(code: rc < 0 ? rc : -1)) }
            defer { inflateEnd(s) }
            var out = [UInt8](repeating: 0, count: max(1, min(input.count * 4 + 4096, limit)))
            var used = 0, consumed = 0
            var headChecked = acceptHead == nil
            while true {
                if s.pointee.avail_in == 0 {
                    s.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
                    s.pointee.avail_in = uInt(min(input.count - consumed, chunk))
                }
                if used == out.count {
                    if out.count >= limit { return .failure(ZlibError(code: overLimit)) }
                    out.append(contentsOf: repeatElement(0, count: min(out.count * 2, limit) - out.count))
                }
                // Until the head is checked, inflate no further than its end.
                let room = min(out.count - used, chunk, headChecked || used >= headSize ? Int.max : headSize - used)
                let (inBefore, outBefore) = (s.pointee.avail_in, uInt(room))
                rc = out.withUnsafeMutableBufferPointer { buffer in
                    s.pointee.next_out = buffer.baseAddress! + used
                    s.pointee.avail_out = outBefore
                    return inflate(s, Z_NO_FLUSH)
                }
                consumed += Int(inBefore - s.pointee.avail_in)
                used += Int(outBefore - s.pointee.avail_out)
                if !headChecked, used >= headSize || rc == Z_STREAM_END {
                    headChecked = true
                    let accepted = out.withUnsafeBufferPointer { acceptHead!(UnsafeBufferPointer(rebasing: $0[0..<used])) }
                    if !accepted { return .failure(ZlibError(code: headRefused)) }
                }
                if rc == Z_STREAM_END { break }
                // Z_BUF_ERROR only means "no progress": fine when the output was full (it grows
                // next round), truncated input when every input byte is consumed and room is left.
                let exhausted = s.pointee.avail_in == 0 && consumed == input.count && s.pointee.avail_out != 0
                if (rc == Z_OK || rc == Z_BUF_ERROR) && !exhausted { continue }
                if exhausted { return .failure(ZlibError(code: Z_BUF_ERROR)) }
                return .failure(ZlibError(code: rc == Z_NEED_DICT ? Z_DATA_ERROR : (rc < 0 ? rc : Z_DATA_ERROR)))
            }
            out.removeLast(out.count - used)
            return .success(out)
        }
    }
}

/// A zlib return code other than success.
struct ZlibError: Error {
    /// Z_BUF_ERROR, Z_DATA_ERROR, Z_MEM_ERROR, ``Zlib/overLimit`` or ``Zlib/headRefused``.
    var code: Int32
}
