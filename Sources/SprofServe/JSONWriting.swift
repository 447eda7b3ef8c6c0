import Foundation
import SprofFormats
import SprofOutput
import SprofProfile

/// Minimal JSON writing for the large arrays of flame trees.
enum JSONWriting {
    static func int(_ v: Int64, into out: inout [UInt8]) {
        if v == 0 { out.append(UInt8(ascii: "0")); return }
        var n = v.magnitude
        if v < 0 { out.append(UInt8(ascii: "-")) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while n > 0 {
                d[count] = UInt8(truncatingIfNeeded: n % 10) + 48
                n /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }

    /// `values` as JSON numbers joined by commas (no brackets), written through one buffer of
    /// the largest size they can take: appending byte by byte was most of a large tree's JSON.
    static func ints<T: BinaryInteger>(_ values: [T], into out: inout [UInt8]) {
        guard !values.isEmpty else { return }
        let chunk = [UInt8](unsafeUninitializedCapacity: values.count * 21) { buffer, count in
            var at = 0
            var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)   // 24 bytes of scratch
            withUnsafeMutableBytes(of: &digits) { d in
                for (k, value) in values.enumerated() {
                    if k > 0 { buffer[at] = UInt8(ascii: ","); at += 1 }
                    let v = Int64(value)
                    if v < 0 { buffer[at] = UInt8(ascii: "-"); at += 1 }
                    var n = v.magnitude
                    var used = 0
                    repeat {
                        d[used] = UInt8(truncatingIfNeeded: n % 10) + 48
                        n /= 10
                        used += 1
                    } while n > 0
                    while used > 0 { used -= 1; buffer[at] = d[used]; at += 1 }
                }
            }
            count = at
        }
        out.append(contentsOf: chunk)
    }

    static func string(_ s: String, into out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0..<0x20, UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "&"):
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
