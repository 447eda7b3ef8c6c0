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
