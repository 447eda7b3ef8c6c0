// Byte-level writers shared by the folded serializer and the SVG renderer.
// Both produce megabytes of text for large profiles, so they append to a `[UInt8]` instead of building
// Strings, and format numbers by hand: Foundation's `String(format:)` is slow and locale-sensitive.

/// 32-bit FNV-1a. Chosen because it is stable across runs and platforms (Swift's `Hasher` is seeded per
/// process), which makes both the name table layout and the frame colours reproducible.
@inline(__always)
func fnv1a(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
    var h: UInt32 = 0x811C_9DC5
    for b in bytes {
        h ^= UInt32(b)
        h = h &* 0x0100_0193
    }
    return h
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendLiteral(_ s: StaticString) {
        s.withUTF8Buffer { self.append(contentsOf: $0) }
    }

    /// Appends a run-time String verbatim (no escaping): only for text we generated ourselves.
    mutating func appendRaw(_ s: String) {
        self.append(contentsOf: s.utf8)
    }

    mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            append(0x30 &+ UInt8(value))
            return
        }
        // Count the digits, reserve them, then fill from the right: no temporary buffer.
        var n = 0
        var v = value
        while v > 0 { v /= 10; n += 1 }
        let end = count + n
        append(contentsOf: repeatElement(0x30, count: n))
        v = value
        var i = end - 1
        while v > 0 {
            self[i] = 0x30 &+ UInt8(v % 10)
            v /= 10
            i -= 1
        }
    }

    mutating func appendDecimal(_ value: Int) {
        if value < 0 {
            append(UInt8(ascii: "-"))
            appendDecimal(UInt64(value.magnitude))
        } else {
            appendDecimal(UInt64(value))
        }
    }

    /// Decimal with thousands separators ("1,234,567"), as people read sample counts in tooltips.
    mutating func appendGrouped(_ value: UInt64) {
        var tmp: [UInt8] = []
        tmp.appendDecimal(value)
        let lead = tmp.count % 3
        for (i, d) in tmp.enumerated() {
            if i > 0 && (i - lead) % 3 == 0 { append(UInt8(ascii: ",")) }
            append(d)
        }
    }

    /// Fixed-point with exactly two decimals, rounded half away from zero. The rounding goes through an
    /// integer, so the text is a pure function of the Double: no locale, no platform printf differences.
    mutating func appendFixed2(_ value: Double) {
        guard value.isFinite else {
            appendLiteral("0.00")
            return
        }
        var v = value
        if v < 0 {
            let scaled = (-v * 100).rounded()
            if scaled == 0 {  // never print "-0.00"
                appendLiteral("0.00")
                return
            }
            append(UInt8(ascii: "-"))
            v = -v
        }
        let scaled = (v * 100).rounded()
        let hundredths = scaled >= 1.8e19 ? UInt64.max : UInt64(scaled)
        appendDecimal(hundredths / 100)
        append(UInt8(ascii: "."))
        let frac = hundredths % 100
        append(0x30 &+ UInt8(frac / 10))
        append(0x30 &+ UInt8(frac % 10))
    }

    /// XML-escapes untrusted text for element content and attribute values alike.
    /// Besides the five markup characters it replaces what XML 1.0 forbids outright (C0 controls other than
    /// tab/LF/CR, and U+FFFE/U+FFFF) and every byte that is not part of a well-formed UTF-8 sequence
    /// (folded input from other tools may hold Latin-1 or truncated names): one such byte would make the
    /// whole document unreadable. An ill-formed sequence becomes one U+FFFD per maximal invalid prefix,
    /// as Swift's String(decoding:) does, so the SVG shows what the folded text's reader would.
    mutating func appendEscaped(_ bytes: UnsafeBufferPointer<UInt8>) {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "&"): appendLiteral("&amp;")
            case UInt8(ascii: "<"): appendLiteral("&lt;")
            case UInt8(ascii: ">"): appendLiteral("&gt;")
            case UInt8(ascii: "\""): appendLiteral("&quot;")
            case UInt8(ascii: "'"): appendLiteral("&#39;")
            case 0x09, 0x0A, 0x0D: append(b)
            case 0x00..<0x20: append(UInt8(ascii: "?"))
            case 0x20..<0x80: append(b)
            default:
                let length = Self.validUTF8Length(bytes, at: i)
                if length == 0 {
                    append(contentsOf: [0xEF, 0xBF, 0xBD])  // U+FFFD for one invalid byte
                } else if length == 3 && b == 0xEF && bytes[i + 1] == 0xBF && bytes[i + 2] >= 0xBE {
                    append(contentsOf: [0xEF, 0xBF, 0xBD])  // U+FFFE/U+FFFF are not XML characters
                    i += 2
                } else {
                    for k in 0 ..< length { append(bytes[i + k]) }
                    i += length - 1
                }
            }
            i += 1
        }
    }

    /// The length of the well-formed UTF-8 sequence starting at `i` (2-4), or 0 when the byte there
    /// does not start one (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF).
    static func validUTF8Length(_ bytes: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
        let b = bytes[i]
        let length: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch b {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; hi = 0x9F
        case 0xF0: length = 4; lo = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; hi = 0x8F
        default: return 0
        }
        guard i + length <= bytes.count else { return 0 }
        guard bytes[i + 1] >= lo && bytes[i + 1] <= hi else { return 0 }
        for k in 2 ..< Swift.max(2, length) where bytes[i + k] & 0xC0 != 0x80 { return 0 }
        return length
    }

    mutating func appendEscaped(_ s: String) {
        var copy = s
        copy.withUTF8 { appendEscaped($0) }
    }
}
