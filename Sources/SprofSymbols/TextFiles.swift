#if canImport(Glibc)
import Glibc
#endif
import SprofCore

/// Size of a regular file, or nil when it cannot be stat'ed.
func fileSize(_ path: String) -> Int? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int(st.st_size)
}

/// Splits `bytes` into lines and hands each line's bytes to `body`, without building Strings for
/// the fields nobody reads (kallsyms has hundreds of thousands of lines).
func forEachLine(_ bytes: [UInt8], _ body: (ArraySlice<UInt8>) -> Void) {
    var lineStart = 0
    for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") {
        if i > lineStart { body(bytes[lineStart..<i]) }
        lineStart = i + 1
    }
    if lineStart < bytes.count { body(bytes[lineStart...]) }
}

/// Parses hexadecimal digits (an optional `0x` prefix allowed); nil on anything else or overflow.
func parseHex<C: Collection>(_ digits: C) -> UInt64? where C.Element == UInt8 {
    var value: UInt64 = 0
    var seen = false
    var idx = digits.startIndex
    if digits.count >= 2, digits[idx] == UInt8(ascii: "0") {
        let next = digits.index(after: idx)
        if digits[next] == UInt8(ascii: "x") || digits[next] == UInt8(ascii: "X") { idx = digits.index(after: next) }
    }
    while idx < digits.endIndex {
        let c = digits[idx]
        let d: UInt64
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt64(c - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt64(c - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt64(c - UInt8(ascii: "A") + 10)
        default: return nil
        }
        if value >> 60 != 0 { return nil }
        value = value << 4 | d
        seen = true
        idx = digits.index(after: idx)
    }
    return seen ? value : nil
}

/// Splits a line at runs of spaces and tabs into at most `maxFields` fields; the last field keeps
/// the rest of the line (JIT names contain spaces).
func splitFields(_ line: ArraySlice<UInt8>, maxFields: Int) -> [ArraySlice<UInt8>] {
    var fields: [ArraySlice<UInt8>] = []
    var i = line.startIndex
    func isBlank(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") }
    while i < line.endIndex {
        while i < line.endIndex && isBlank(line[i]) { i += 1 }
        if i == line.endIndex { break }
        if fields.count == maxFields - 1 {
            var end = line.endIndex
            while end > i && isBlank(line[end - 1]) { end -= 1 }
            fields.append(line[i..<end])
            break
        }
        let start = i
        while i < line.endIndex && !isBlank(line[i]) { i += 1 }
        fields.append(line[start..<i])
    }
    return fields
}
