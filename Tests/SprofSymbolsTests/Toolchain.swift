import Foundation
import XCTest
import SprofCore

/// Builds and inspects small C programs with the system toolchain, in a private temp directory.
final class Workbench {
    let dir: URL

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sprof-symbols-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    @discardableResult
    func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "Workbench", code: Int(p.terminationStatus), userInfo: [
                NSLocalizedDescriptionKey: "\(tool) \(args.joined(separator: " ")): " + String(decoding: errData, as: UTF8.self),
            ])
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes `source` and compiles it with `cc`; returns the output path.
    func compile(_ name: String, source: String, flags: [String], compiler: String = "cc", ext: String = "c") throws -> String {
        let src = path(name + "." + ext)
        try source.write(toFile: src, atomically: true, encoding: .utf8)
        let out = path(name)
        try run(compiler, flags + ["-o", out, src])
        return out
    }

    /// Symbol name -> (file address, size) from `nm -S`.
    func symbols(_ binary: String) throws -> [String: (address: UInt64, size: UInt64)] {
        var result: [String: (UInt64, UInt64)] = [:]
        for line in try run("nm", ["-S", binary]).split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 4, let a = UInt64(f[0], radix: 16), let s = UInt64(f[1], radix: 16) else { continue }
            result[String(f[3])] = (a, s)
        }
        return result
    }

    struct Load { var offset: UInt64; var vaddr: UInt64; var fileSize: UInt64; var executable: Bool }

    /// PT_LOAD headers from `readelf -lW`.
    func loads(_ binary: String) throws -> [Load] {
        try run("readelf", ["-lW", binary]).split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.first == "LOAD", f.count >= 8,
                  let off = UInt64(f[1].dropFirst(2), radix: 16), let va = UInt64(f[2].dropFirst(2), radix: 16),
                  let fs = UInt64(f[4].dropFirst(2), radix: 16) else { return nil }
            return Load(offset: off, vaddr: va, fileSize: fs, executable: f[6..<(f.count - 1)].contains("E"))
        }
    }

    /// The executable segment mapped the way the kernel reports it after ld.so or execve mapped
    /// the file at `base` (0 for ET_EXEC).
    func textMapping(_ binary: String, base: UInt64) throws -> Mapping {
        guard let text = try loads(binary).first(where: { $0.executable }) else {
            throw NSError(domain: "Workbench", code: 1, userInfo: [NSLocalizedDescriptionKey: "no executable PT_LOAD"])
        }
        let page: UInt64 = 0x1000
        let start = base + (text.vaddr & ~(page - 1))
        let end = base + ((text.vaddr + text.fileSize + page - 1) & ~(page - 1))
        return Mapping(start: ProcessAddress(start), end: ProcessAddress(end), fileOffset: text.offset & ~(page - 1), path: binary)
    }

    /// The GNU build-id note, as lowercase hex, from `readelf -n`.
    func buildID(_ binary: String) throws -> String {
        for line in try run("readelf", ["-n", binary]).split(separator: "\n") where line.contains("Build ID:") {
            return String(line.split(separator: " ").last!)
        }
        throw NSError(domain: "Workbench", code: 2, userInfo: [NSLocalizedDescriptionKey: "no build-id"])
    }
}

/// A C program with known functions: two plain ones, one always-inlined helper and its caller.
let sampleSource = """
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) int alpha(int x) {
    int s = 0;
    for (int i = 0; i < x; i++) s += i * x;
    return s;
}

__attribute__((noinline)) int beta(int x) {
    return alpha(x) * 3 + x;
}

static inline __attribute__((always_inline)) double helper(double *v, int n) {
    double acc = 1.0;
    for (int i = 0; i < n; i++) acc = acc * v[i] + v[(i * 7) % n] / (acc + 1.0);
    return acc;
}

__attribute__((noinline)) double outer(double *v, int n) {
    double r = helper(v, n);
    return r * 2.0;
}

int main(int argc, char **argv) {
    double v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    printf("%d %f\\n", beta(argc + 10), outer(v, argc + 7));
    return 0;
}
"""

/// 1-based line of the first line of `source` containing `needle`.
func lineNumber(of needle: String, in source: String) -> Int {
    let lines = source.components(separatedBy: "\n")
    return lines.firstIndex { $0.contains(needle) }! + 1
}
