/// A folded-stacks line that cannot be read. Its ``description`` is one line, `FILE:LINE: what is wrong`,
/// in the form editors and terminals recognise as a location.
public struct FoldedParseError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The name the caller gave the input (a path, or something like `<stdin>`).
    public var source: String
    /// 1-based line number.
    public var line: Int
    /// What is wrong, without the location.
    public var reason: String

    /// Creates an error for `source` at `line`.
    public init(source: String, line: Int, reason: String) {
        self.source = source
        self.line = line
        self.reason = reason
    }

    /// `FILE:LINE: reason`.
    public var description: String { "\(source):\(line): \(reason)" }
}

extension FoldedStacks {
    /// Reads folded text as written by sprof, flamegraph.pl's stackcollapse scripts, inferno or any other
    /// tool that writes the format (`frame;frame;frame COUNT`).
    ///
    /// Rules, chosen to accept what those tools write and to reject what would silently distort a profile:
    /// - the count is the text after the **last** space or tab, so frame names may contain spaces;
    /// - leading/trailing whitespace, CRLF line ends, blank lines and a UTF-8 byte order mark are ignored;
    /// - duplicate stacks are summed; a count of 0 is accepted and adds nothing;
    /// - a fractional count is an error unless its fraction is all zeros (`12.0`): rounding `0.4` to 0 or
    ///   `1.5` to 2 would misstate the profile, so such input is refused rather than guessed at;
    /// - frame names are normalised like ``add(_:count:)`` does (so parse → serialize is stable);
    /// - invalid UTF-8 is kept as bytes and shown as U+FFFD where a String is needed.
    ///
    /// - Parameter source: names the input in errors, e.g. the file path.
    /// - Throws: ``FoldedParseError`` for a missing, non-numeric, fractional or too large count, or a
    ///   line with a count but no stack.
    public static func parse(_ text: String, source: String) throws -> FoldedStacks {
        var copy = text
        return try copy.withUTF8 { try parse(bytes: $0, source: source) }
    }

    /// ``parse(_:source:)`` over raw bytes (a file's contents), with no String conversion of the whole input.
    public static func parse(bytes: [UInt8], source: String) throws -> FoldedStacks {
        try bytes.withUnsafeBufferPointer { try parse(bytes: $0, source: source) }
    }

    /// ``parse(_:source:)`` over a buffer of UTF-8 bytes.
    public static func parse(bytes: UnsafeBufferPointer<UInt8>, source: String) throws -> FoldedStacks {
        var result = FoldedStacks()
        var start = 0
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { start = 3 }
        var lineNumber = 1
        var i = start
        while start < bytes.count {
            while i < bytes.count && bytes[i] != UInt8(ascii: "\n") { i += 1 }
            try result.parseLine(UnsafeBufferPointer(rebasing: bytes[start ..< i]), source: source,
                                 lineNumber: lineNumber)
            lineNumber += 1
            i += 1
            start = i
        }
        return result
    }

    @inline(__always)
    private static func isSpace(_ b: UInt8) -> Bool {
        b == 0x20 || (b >= 0x09 && b <= 0x0D)
    }

    /// Parses one line without its `\n` and adds it.
    mutating func parseLine(_ line: UnsafeBufferPointer<UInt8>, source: String, lineNumber: Int) throws {
        func fail(_ reason: String) -> FoldedParseError {
            FoldedParseError(source: source, line: lineNumber, reason: reason)
        }
        var lo = 0, hi = line.count
        while lo < hi && Self.isSpace(line[lo]) { lo += 1 }
        while hi > lo && Self.isSpace(line[hi - 1]) { hi -= 1 }
        if lo == hi { return }

        var sep = hi - 1
        while sep >= lo && line[sep] != 0x20 && line[sep] != 0x09 { sep -= 1 }
        if sep < lo {
            return try { throw fail("missing count: expected \"frame;frame;... COUNT\", got \(Self.quote(line, lo, hi))") }()
        }
        let count = try Self.parseCount(line, sep + 1, hi) { fail($0) }
        var stackEnd = sep
        while stackEnd > lo && Self.isSpace(line[stackEnd - 1]) { stackEnd -= 1 }
        if stackEnd == lo { throw fail("count \(count) has no stack before it") }
        if count == 0 { return }
        if total.addingReportingOverflow(count).overflow {
            throw fail("counts add up to more than \(UInt64.max)")
        }

        var node: Int32 = 0
        var f = lo
        while true {
            var e = f
            while e < stackEnd && line[e] != UInt8(ascii: ";") { e += 1 }
            node = child(of: node, name: internFrame(UnsafeBufferPointer(rebasing: line[f ..< e])))
            if e >= stackEnd { break }
            f = e + 1
        }
        addSelf(node, count)
    }

    private static func parseCount(_ line: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int,
                                   _ fail: (String) -> FoldedParseError) throws -> UInt64 {
        var value: UInt64 = 0
        var i = lo
        var digits = 0
        while i < hi, line[i] >= 0x30, line[i] <= 0x39 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(line[i] - 0x30))
            if o1 || o2 { throw fail("count \(quote(line, lo, hi)) is too large (the maximum is \(UInt64.max))") }
            value = s
            i += 1
            digits += 1
        }
        if digits > 0 && i < hi && line[i] == UInt8(ascii: ".") {
            var j = i + 1
            var fractionIsZero = true
            while j < hi, line[j] >= 0x30, line[j] <= 0x39 {
                if line[j] != 0x30 { fractionIsZero = false }
                j += 1
            }
            if j == hi {
                if fractionIsZero { return value }
                throw fail("fractional count \(quote(line, lo, hi)) is not supported: counts must be whole samples")
            }
        }
        if digits == 0 && lo + 1 < hi && line[lo] == UInt8(ascii: "-") && line[lo + 1] >= 0x30 && line[lo + 1] <= 0x39 {
            throw fail("count \(quote(line, lo, hi)) is negative: counts are samples, 0 or more (expected \"frame;frame;... COUNT\")")
        }
        if digits == 0 || i != hi {
            throw fail("count \(quote(line, lo, hi)) is not a number (expected \"frame;frame;... COUNT\")")
        }
        return value
    }

    /// Quotes a piece of untrusted input for an error message: bounded, on one line.
    private static func quote(_ line: UnsafeBufferPointer<UInt8>, _ lo: Int, _ hi: Int) -> String {
        let limit = 40
        var bytes = Array(line[lo ..< min(hi, lo + limit)])
        for k in bytes.indices where bytes[k] < 0x20 || bytes[k] == 0x7F { bytes[k] = UInt8(ascii: "?") }
        var s = String(decoding: bytes, as: UTF8.self)
        if hi - lo > limit { s += "..." }
        return "'" + s + "'"
    }
}
