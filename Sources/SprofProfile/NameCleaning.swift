/// The one cleaning of a name that a text view prints, whatever it was read from: folded stacks
/// (``FoldedStacks`` in SprofOutput interns every frame through it) and pprof or speedscope names
/// (``Profile/FunctionNames`` cleans every name a view shows). A name from a file is untrusted: an
/// escape sequence in it would reach the terminal and a newline would split a table's row. One rule
/// for both sources means a profile converted to folded stacks and back shows, and compares (`sprof
/// diff`), the same names as the profile it came from.
///
/// The rule (the folded format's, which must keep every name on its line):
/// - `;` (the folded frame separator) becomes `:` in folded stacks only (`foldedSeparator`): views
///   of a pprof profile keep it, since real names hold it (Rust's `[u8; 32]`, which `sprof serve`'s
///   stack paths escape), and a written pprof must keep its names;
/// - control characters (C0, including newline, CR, tab and ESC, and DEL) become `?`;
/// - leading and trailing spaces and control characters are removed, and so is a leading byte order
///   mark (U+FEFF), which readers drop at the start of a file;
/// - a byte that is not part of valid UTF-8 becomes `\xHH` (its value in lowercase hex): decoded
///   as U+FFFD, names that differ only in such bytes merged into one function;
/// - an empty name becomes `[unknown]`, so that no frame is silently dropped.
public enum NameCleaning {
    /// What an empty name becomes.
    public static let unknown: [UInt8] = Array("[unknown]".utf8)

    /// A byte the rule changes wherever it is.
    @inlinable
    public static func isBad(_ b: UInt8, foldedSeparator: Bool = true) -> Bool {
        b < 0x20 || b == 0x7F || (foldedSeparator && b == UInt8(ascii: ";"))
    }

    /// A byte the rule removes at either end.
    @inlinable
    public static func isTrimmed(_ b: UInt8) -> Bool {
        b <= 0x20 || b == 0x7F
    }

    /// Whether `raw[i...]` starts with U+FEFF, the byte order mark: readers drop one at the start
    /// of a file, so a name beginning with it would lose it on a round trip (found by fuzz/FuzzFolded).
    @inlinable
    public static func hasBOM(_ raw: UnsafeBufferPointer<UInt8>, at i: Int, before end: Int) -> Bool {
        end - i >= 3 && raw[i] == 0xEF && raw[i + 1] == 0xBB && raw[i + 2] == 0xBF
    }

    /// Whether the rule leaves `raw` as it is (the common case, which copies nothing).
    @inlinable
    public static func isClean(_ raw: UnsafeBufferPointer<UInt8>, foldedSeparator: Bool = true) -> Bool {
        guard let first = raw.first, let last = raw.last, first != 0x20, last != 0x20 else { return false }
        if hasBOM(raw, at: 0, before: raw.count) { return false }
        var i = 0
        while i < raw.count {
            let b = raw[i]
            if b < 0x80 {
                if isBad(b, foldedSeparator: foldedSeparator) { return false }
                i += 1
            } else {
                let n = validSequenceLength(raw, at: i, before: raw.count)
                if n == 0 { return false }
                i += n
            }
        }
        return true
    }

    /// The length of the well-formed UTF-8 sequence at `raw[i]` (a byte of 0x80 or more), 0 when
    /// there is none (Unicode's Table 3-7: no overlong forms, surrogates or values past U+10FFFF).
    @usableFromInline
    static func validSequenceLength(_ raw: UnsafeBufferPointer<UInt8>, at i: Int, before end: Int) -> Int {
        let b = raw[i]
        let length: Int, low: UInt8, high: UInt8
        switch b {
        case 0xC2...0xDF: (length, low, high) = (2, 0x80, 0xBF)
        case 0xE0: (length, low, high) = (3, 0xA0, 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, low, high) = (3, 0x80, 0xBF)
        case 0xED: (length, low, high) = (3, 0x80, 0x9F)
        case 0xF0: (length, low, high) = (4, 0x90, 0xBF)
        case 0xF1...0xF3: (length, low, high) = (4, 0x80, 0xBF)
        case 0xF4: (length, low, high) = (4, 0x80, 0x8F)
        default: return 0
        }
        guard end - i >= length, raw[i + 1] >= low, raw[i + 1] <= high else { return 0 }
        for k in 2 ..< length where raw[i + k] < 0x80 || raw[i + k] > 0xBF { return 0 }
        return length
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `raw` cleaned by the rule.
    public static func cleaned(_ raw: UnsafeBufferPointer<UInt8>, foldedSeparator: Bool = true) -> [UInt8] {
        var lo = 0, hi = raw.count
        while lo < hi && (isTrimmed(raw[lo]) || hasBOM(raw, at: lo, before: hi)) {
            lo += isTrimmed(raw[lo]) ? 1 : 3
        }
        while hi > lo && isTrimmed(raw[hi - 1]) { hi -= 1 }
        if lo == hi { return unknown }
        var out: [UInt8] = []
        out.reserveCapacity(hi - lo)
        var i = lo
        while i < hi {
            let b = raw[i]
            if b >= 0x80 {
                let n = validSequenceLength(raw, at: i, before: hi)
                if n > 0 {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: raw[i ..< i + n]))
                    i += n
                } else {
                    out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]])
                    i += 1
                }
                continue
            }
            if foldedSeparator && b == UInt8(ascii: ";") {
                out.append(UInt8(ascii: ":"))
            } else if b < 0x20 || b == 0x7F {
                out.append(UInt8(ascii: "?"))
            } else {
                out.append(b)
            }
            i += 1
        }
        return out
    }

    /// `name` cleaned by the rule (the same String when it is clean already).
    public static func cleaned(_ name: String, foldedSeparator: Bool = true) -> String {
        var copy = name
        return copy.withUTF8 { raw in
            isClean(raw, foldedSeparator: foldedSeparator) ? name : String(decoding: cleaned(raw, foldedSeparator: foldedSeparator), as: UTF8.self)
        }
    }
}
