#if canImport(Glibc)
import Glibc
#endif

/// `1,234,567`: an integer with its thousands grouped, as every sprof view prints counts (no
/// locale: the same bytes on every machine).
public func grouped(_ n: some BinaryInteger) -> String {
    let digits = String(n)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 && ch != "-" { out.append(",") }
        out.append(ch)
    }
    return out
}

/// A value in its unit, as every view prints one: `1.234s` for nanoseconds, `12.3MB` for bytes,
/// else the count, grouped (`sprof report`) or not (`sprof annotate`, as `go tool pprof -list`).
public func valueText(_ value: Int64, unit: String, groupingCounts: Bool = true) -> String {
    switch unit {
    case "nanoseconds": return fixed(Double(value) / 1e9, decimals: 3) + "s"
    case "bytes": return fixed(Double(value) / 1_048_576, decimals: 1) + "MB"
    default: return groupingCounts ? grouped(value) : String(value)
    }
}

/// `x` with `decimals` decimals, as printf's `%.Nf` writes it (without Foundation).
func fixed(_ x: Double, decimals: Int) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = withVaList([x]) { args in
        buffer.withUnsafeMutableBufferPointer { vsnprintf($0.baseAddress, $0.count, "%.\(decimals)f", args) }
    }
    guard n >= 0, Int(n) < buffer.count else { return String(x) }
    return String(decoding: buffer.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
