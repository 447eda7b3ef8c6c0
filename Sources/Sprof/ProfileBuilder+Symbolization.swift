import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// Frame references to profile locations, through the symbolizer.
extension ProfileBuilder {
    /// Turns every frame reference not yet resolved into a profile location. Called after
    /// recording and, while a CPU is spare, during it; incremental (a later call does only what
    /// was added since).
    func resolve() {
        guard resolved.count < refs.count else { return }
        let first = resolved.count
        let pending = refs[first...]
        // User frames first, while kallsyms (the slowest single source) is read on another thread;
        // kernel frames after, when the table is there.
        if pending.contains(where: { if case .code(_, _, _, true) = $0 { return true } else { return false } }) {
            symbolizer.prefetchKernelSymbols()
        }
        var locations = [Int](repeating: -1, count: pending.count)
        var kernelRefs: [Int] = []
        for (i, ref) in zip(locations.indices, pending) {
            switch ref {
            case .marker(let name):
                locations[i] = building.marker(name)
            case .code(_, _, _, true):
                kernelRefs.append(i)
            case .code(let address, let mapping, let pid, false):
                if let mapping {
                    locations[i] = location(address, frames: symbolizer.symbolize(address, in: mapping, pid: pid), mapping: mapping)
                } else {
                    locations[i] = location(address, frames: [symbolizer.symbolizeUnmapped(address, pid: pid)], mapping: nil)
                }
            }
        }
        for i in kernelRefs {
            guard case .code(let address, _, _, _) = pending[first + i] else { continue }
            locations[i] = location(address, frames: [symbolizer.symbolizeKernel(address)], mapping: nil, kernel: true)
        }
        resolved.append(contentsOf: locations)
    }

    /// One location for one physical frame: its inline chain (innermost first) as lines.
    func location(_ address: ProcessAddress, frames: [SymbolizedFrame], mapping: Mapping?, kernel: Bool = false) -> Int {
        var mappingIndex: Int?
        if kernel {
            if kernelMapping == nil {
                kernelMapping = building.mapping(Profile.Mapping(start: 0xffff_8000_0000_0000, limit: .max, path: "[kernel.kallsyms]"))
            }
            mappingIndex = kernelMapping
        } else if let mapping {
            let hasFiles = frames.contains { $0.sourceFile != nil }
            mappingIndex = building.mapping(Profile.Mapping(
                start: mapping.start.rawValue, limit: mapping.end.rawValue, fileOffset: mapping.fileOffset,
                path: mapping.path, buildID: mapping.buildID.map { String($0, radix: 16).leftPadded(2) }.joined(),
                hasFunctions: true, hasFilenames: hasFiles, hasLineNumbers: frames.contains { $0.line != nil },
                hasInlineFrames: symbolizer.options.inlineFrames))
        }
        let lines = frames.map { f in
            Profile.Line(function: building.function(Profile.Function(name: f.name, fullName: f.fullName, systemName: f.systemName ?? "",
                                                                        file: f.sourceFile ?? "")), line: f.line ?? 0)
        }
        let kind: FrameKind
        switch frames.last?.kind {
        case .kernel?: kind = .kernel
        case .jit?: kind = .jit
        default: kind = kernel ? .kernel : .user
        }
        return building.location(Profile.Location(address: address.rawValue, mapping: mappingIndex, lines: lines, kind: kind))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
