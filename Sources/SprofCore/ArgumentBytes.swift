/// A lossless mapping between command-line bytes and Swift `String`s.
///
/// Linux passes argv as bytes; `CommandLine.arguments` decodes them as UTF-8 and turns every
/// invalid byte into U+FFFD, so a command path or argument in another encoding (a Latin-1 file
/// name) would reach exec changed: "command not found", or the wrong file. perf passes the bytes
/// through; so does sprof, by carrying each byte that is not valid UTF-8 in a `String` as the
/// private-use scalar U+10FE00 + byte, and turning it back into the byte before exec.
///
/// The mapping is a bijection: a genuine U+10FE80…U+10FEFF in the input (a valid but vanishingly
/// rare private-use character) is itself escaped byte by byte, so ``bytes(_:)`` of
/// ``string(_:)`` always gives back the original bytes.
public enum ArgumentBytes {
    /// The escaped range: U+10FE00 + byte, for bytes 0x80…0xFF.
    static let base: UInt32 = 0x10FE00

    /// The argument's bytes as a `String`: valid UTF-8 as is, other bytes escaped.
    public static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let bytes = Array(bytes)
        var scalars = String.UnicodeScalarView()
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var i = 0
        func escape(_ count: Int) {
            for k in i ..< i + count { scalars.append(Unicode.Scalar(base + UInt32(bytes[k]))!) }
        }
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                if (base + 0x80 ... base + 0xFF).contains(scalar.value) { escape(encoded.count) } else { scalars.append(scalar) }
                i += encoded.count
            case .error(let length):
                escape(length)
                i += length
            case .emptyInput:
                return String(scalars)
            }
        }
    }

    /// The original bytes of a string made by ``string(_:)`` (any other string: its UTF-8).
    public static func bytes(_ string: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for scalar in string.unicodeScalars {
            if (base + 0x80 ... base + 0xFF).contains(scalar.value) {
                out.append(UInt8(scalar.value - base))
            } else {
                out.append(contentsOf: String(scalar).utf8)
            }
        }
        return out
    }

    /// The string for display: escaped bytes shown as U+FFFD, as a terminal would show them.
    public static func displayed(_ string: String) -> String {
        String(decoding: bytes(string), as: UTF8.self)
    }

    /// Calls `body` with the original bytes of `path`, NUL-terminated, for open(2), stat(2),
    /// rename(2) and the like: a file name given on the command line in another encoding than
    /// UTF-8 names that file, not one with U+10FExx characters in its name.
    public static func withPath<T>(_ path: String, _ body: (UnsafePointer<CChar>) throws -> T) rethrows -> T {
        var raw = bytes(path).map { CChar(bitPattern: $0) }
        raw.append(0)
        return try raw.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// A NUL-terminated copy of the original bytes for exec and open, allocated with malloc (free it).
    public static func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let raw = bytes(string)
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: raw.count + 1)
        for (i, b) in raw.enumerated() { p[i] = CChar(bitPattern: b) }
        p[raw.count] = 0
        return p
    }
}
