#if canImport(Glibc)
import Glibc
#endif
import SprofCore
import SprofProfile
import SprofSymbols

/// What `sprof annotate` shows and where it looks.
public struct AnnotateOptions: Sendable {
    /// Which ``Profile/sampleTypes`` entry to count.
    public var valueIndex: Int
    /// Disassemble each function's code with per-instruction samples (`--asm`), instead of its source.
    public var assembly: Bool
    /// Rewrites for moved source trees, first match wins.
    public var sourcePrefixes: [SourcePrefix]
    /// Roots searched for separate debug files (for `--asm`'s source lines).
    public var debugDirectories: [String]

    /// Creates options: source view of the default measure.
    public init(valueIndex: Int = 0, assembly: Bool = false, sourcePrefixes: [SourcePrefix] = [],
                debugDirectories: [String] = ["/usr/lib/debug"]) {
        self.valueIndex = valueIndex
        self.assembly = assembly
        self.sourcePrefixes = sourcePrefixes
        self.debugDirectories = debugDirectories
    }
}

/// The result of ``Annotator/annotate(_:pattern:options:)``.
public struct Annotation: Sendable {
    /// The listing, one block per function (`ROUTINE ===…`), ending with a newline.
    public var text: String
    /// Problems that cost text without failing (a source file not found, debuginfod unreachable), once each.
    public var notices: [String]
    /// Functions listed.
    public var annotated: Int
    /// Functions refused because their binary on disk is not the one recorded (build-id mismatch).
    public var changedBinaries: Int
    /// Source files a debuginfod server supplied.
    public var fetchedSources: Int
}

/// Why nothing could be annotated.
public enum AnnotateError: Error, CustomStringConvertible, Sendable {
    /// The pattern is not a regular expression.
    case badPattern(String, String)
    /// No function of the profile matches.
    case noMatch(String)

    public var description: String {
        switch self {
        case .badPattern(let p, let why): return "'\(p)' is not a regular expression (\(why))"
        case .noMatch(let p): return "no function in the profile matches '\(p)'; `sprof report` lists its functions"
        }
    }
}

/// One function's source with per-line costs: the values `sprof annotate` prints, for other
/// views (the source view of `sprof serve`).
public struct SourceListing: Sendable {
    /// One line of a file.
    public struct Row: Sendable, Hashable {
        /// The line number; 0 for the samples without line information.
        public var line: Int
        /// Value of samples whose innermost frame is this line of the function.
        public var selfValue: Int64
        /// Value of samples with this line of the function anywhere on the stack, once per sample.
        public var totalValue: Int64
        /// The line's text; nil when the file could not be read (or for line 0).
        public var text: String?
    }
    /// One source file of the function.
    public struct File: Sendable {
        /// The path the debug info records; empty when unknown.
        public var path: String
        /// Whether its text was found (on disk, after the source prefixes, or from debuginfod).
        public var found: Bool
        /// Sampled lines, the lines between them and a few around, then the row without line information.
        public var rows: [Row]
    }
    /// The function's costs (self, total, per line and address).
    public var function: FunctionCosts
    /// Its files, most total value first; empty when ``changed`` is set.
    public var files: [File]
    /// The profile's total of the value counted.
    public var grandTotal: Int64
    /// Set when a file of its code changed since recording (build-ids differ): why no lines are shown.
    public var changed: String?
    /// Problems that cost text (a source not found, debuginfod unreachable), once each.
    public var notices: [String]
}

/// `sprof annotate`: a function's source (or disassembly) with the samples of each line (or
/// instruction), as `go tool pprof -list` (and `-disasm`, `perf annotate --stdio`) show them.
public enum Annotator {
    /// Annotates every function whose name, full name or linkage (mangled) name contains a match of
    /// `pattern` (a regular expression, unanchored), largest total first.
    /// - Throws: ``AnnotateError`` for a bad pattern or when nothing matches.
    public static func annotate(_ profile: Profile, pattern: String, options: AnnotateOptions = .init()) throws -> Annotation {
        let regex: Regex<AnyRegexOutput>
        do { regex = try Regex(pattern) } catch { throw AnnotateError.badPattern(pattern, "\(error)") }
        // An absent name (no linkage name: kernel frames, folded input) is not an empty one to match.
        let costs = profile.functionCosts(valueIndex: options.valueIndex) { f in
            [f.name, f.fullName, f.systemName].contains { !$0.isEmpty && $0.contains(regex) }
        }
        guard !costs.isEmpty else { throw AnnotateError.noMatch(pattern) }
        var writer = Writer(profile: profile, options: options)
        for function in costs { writer.write(function) }
        writer.sources.noteUnreachableServers()
        var notices = writer.notices + writer.sources.notices
        var seen = Set<String>()
        notices = notices.filter { seen.insert($0).inserted }
        return Annotation(text: writer.out, notices: notices, annotated: writer.annotated,
                          changedBinaries: writer.changed, fetchedSources: writer.sources.fetched)
    }

    /// The source of the function named exactly `name` (its display name, as `sprof report` and
    /// the flame graphs show it), with the per-line costs ``annotate(_:pattern:options:)`` prints;
    /// nil when no sample has it on its stack.
    public static func listing(_ profile: Profile, function name: String, options: AnnotateOptions = .init()) -> SourceListing? {
        guard let costs = profile.functionCosts(valueIndex: options.valueIndex, matching: { $0.name == name }).first else { return nil }
        var writer = Writer(profile: profile, options: options)
        let (changed, buildID) = writer.check(costs)
        let files = changed == nil ? writer.sourceFiles(costs, buildID: buildID) : []
        writer.sources.noteUnreachableServers()
        var seen = Set<String>()
        return SourceListing(function: costs, files: files, grandTotal: profile.total(options.valueIndex), changed: changed,
                             notices: writer.sources.notices.filter { seen.insert($0).inserted })
    }
}

private struct Writer {
    let profile: Profile
    let options: AnnotateOptions
    let sources: SourceFiles
    var out = ""
    var notices: [String] = []
    var annotated = 0
    var changed = 0
    private var binaries: [String: BinaryCode?] = [:]
    /// Mapping paths that are no regular file, already noted by ``binary(_:)``.
    private var notRegular: Set<String> = []
    private let grandTotal: Int64

    init(profile: Profile, options: AnnotateOptions) {
        self.profile = profile
        self.options = options
        self.sources = SourceFiles(prefixes: options.sourcePrefixes)
        self.grandTotal = profile.total(options.valueIndex)
    }

    mutating func write(_ function: FunctionCosts) {
        let (changedMessage, buildID) = check(function)
        if let changedMessage {
            // A notice, not listing text: stdout holds listings only, so a script reading it
            // never takes the refusal for code.
            notices.append(changedMessage)
            changed += 1
            return
        }
        if options.assembly {
            // Counted only when a listing came out: a function with no readable code (the
            // kernel's, a deleted file's) is a notice, and nothing annotated is status 1.
            if writeAssembly(function) { annotated += 1 }
        } else {
            annotated += 1
            writeSource(function, buildID: buildID)
        }
    }

    /// Whether any file of the function's code or its callers' changed since recording (which
    /// would put the samples on the wrong lines or instructions): the message, and the build-id
    /// that dates the function's source.
    mutating func check(_ function: FunctionCosts) -> (changed: String?, buildID: String) {
        var buildID = ""
        for m in function.mappings {
            let mapping = profile.mappings[m]
            if buildID.isEmpty { buildID = mapping.buildID }
            guard let binary = binary(mapping.path), !mapping.buildID.isEmpty, !binary.buildID.isEmpty,
                  binary.buildID != mapping.buildID else { continue }
            return ("\(function.name): \(mapping.path) has changed since it was recorded (build-id \(binary.buildID) on disk, "
                + "\(mapping.buildID) in the profile): not annotated", buildID)
        }
        return (nil, buildID)
    }

    /// The binary at a mapping's path, opened once. The path comes from the profile, not from the
    /// user, so it may name anything: only a regular file is opened (a FIFO would block the open
    /// forever, a device would never end); anything else is one notice and no binary.
    private mutating func binary(_ path: String) -> BinaryCode? {
        if let known = binaries[path] { return known }
        var code: BinaryCode? = nil
        if path.hasPrefix("/") {
            if let kind = Self.notRegular(path) {
                notices.append("\(path) is \(kind), not a binary: not read (the profile's mapping names it)")
                notRegular.insert(path)
            } else {
                code = BinaryCode(path: path, debugDirectories: options.debugDirectories)
            }
        }
        binaries[path] = .some(code)
        return code
    }

    /// What `path` is when it exists and is not a regular file (`a FIFO`, `a directory`, `a
    /// device`); nil for a regular file or none at all. stat(2) does not open, so it never blocks.
    private static func notRegular(_ path: String) -> String? {
        var st = stat()
        guard ArgumentBytes.withPath(path, { stat($0, &st) }) == 0 else { return nil }
        return nonRegularFileKind(st.st_mode)
    }

    /// In the sample type's unit, as `sprof report` prints it (`1.010s`, `12.3MB`); counts as
    /// `go tool pprof -list` prints them (`1747`).
    private func value(_ v: Int64) -> String {
        v == 0 ? "." : valueText(v, unit: profile.sampleTypes[options.valueIndex].unit, groupingCounts: false)
    }
    private func share(_ v: Int64) -> String {
        v == 0 || grandTotal == 0 ? "" : String(format2(100 * Double(v) / Double(grandTotal))) + "%"
    }

    private mutating func writeSource(_ function: FunctionCosts, buildID: String) {
        let type = profile.sampleTypes[options.valueIndex]
        for file in sourceFiles(function, buildID: buildID) {
            out += "ROUTINE ======================== \(function.name) in \(file.path.isEmpty ? "(unknown file)" : file.path)\n"
            out += "\(pad(value(function.selfValue), 10)) \(pad(share(function.selfValue), 7)) "
                + "\(pad(value(function.totalValue), 10)) \(pad(share(function.totalValue), 7))  (\(type.type == "samples" ? "samples" : type.description), self and total, of \(valueText(grandTotal, unit: type.unit, groupingCounts: false)))\n"
            for row in file.rows {
                out += "\(pad(value(row.selfValue), 10)) \(pad(share(row.selfValue), 7)) "
                    + "\(pad(value(row.totalValue), 10)) \(pad(share(row.totalValue), 7)) "
                    + (row.line > 0 ? "\(pad(String(row.line), 6))  \(row.text ?? "")\n" : "\(pad("?", 6))  (no line information)\n")
            }
        }
    }

    /// The function's source files, most total value first, each with its sampled lines and the
    /// lines between them (and ``context`` lines around), then its rows without line information.
    mutating func sourceFiles(_ function: FunctionCosts, buildID: String) -> [SourceListing.File] {
        let byFile = Dictionary(grouping: function.lines, by: \.file)
        let files = byFile.keys.sorted { a, b in
            let ta = byFile[a]!.reduce(0) { $0 + $1.totalValue }, tb = byFile[b]!.reduce(0) { $0 + $1.totalValue }
            return ta != tb ? ta > tb : a < b
        }
        return files.map { file in
            let rows = byFile[file]!
            let known = rows.filter { $0.line > 0 }
            let byLine = Dictionary(uniqueKeysWithValues: known.map { ($0.line, $0) })
            let text = file.isEmpty ? nil : sources.lines(of: file, buildID: buildID)
            var out: [SourceListing.Row] = []
            if let first = known.map(\.line).min(), let last = known.map(\.line).max() {
                // Lines without samples between the function's sampled lines stay, for context, and
                // a few around them.
                let lo = max(1, first - Self.context)
                var hi = last + Self.context
                if let text { hi = min(hi, max(last, text.count)) }
                for n in lo...hi {
                    let row = byLine[n]
                    out.append(SourceListing.Row(line: n, selfValue: row?.selfValue ?? 0, totalValue: row?.totalValue ?? 0,
                                                 text: text.flatMap { n <= $0.count ? String($0[n - 1]) : nil }))
                }
            }
            for row in rows where row.line <= 0 {
                out.append(SourceListing.Row(line: 0, selfValue: row.selfValue, totalValue: row.totalValue, text: nil))
            }
            return SourceListing.File(path: file, found: text != nil, rows: out)
        }
    }

    /// Lines of context shown before the first and after the last sampled line.
    static let context = 2

    /// Writes the function's listings; false when none could be written (the reasons are notices).
    private mutating func writeAssembly(_ function: FunctionCosts) -> Bool {
        let byMapping = Dictionary(grouping: function.addresses.filter { $0.mapping != nil }, by: { $0.mapping! })
        if byMapping.isEmpty {
            notices.append("\(function.name): no code of its own in the profile (inlined everywhere, or not in a mapped file); "
                + "annotate the functions it was inlined into")
            return false
        }
        var listed = false
        // One listing per file (path and build-id), not per mapping: each process of a `run -r N`
        // profile, or of a program that forks, maps the binary at its own address; file
        // addresses are the same in all of them, so their samples add up in one listing.
        var files: [String: [Int]] = [:]
        var order: [String] = []
        for m in byMapping.keys.sorted() {
            let key = profile.mappings[m].path + "\u{0}" + profile.mappings[m].buildID
            if files[key] == nil { order.append(key) }
            files[key, default: []].append(m)
        }
        for key in order {
            let mappings = files[key]!
            let mapping = profile.mappings[mappings[0]]
            guard let binary = binary(mapping.path) else {
                if notRegular.contains(mapping.path) { continue }
                // `[kernel.kallsyms]`, `[vdso]`: code that lives in memory only.
                notices.append(mapping.path.hasPrefix("[")
                    ? "\(function.name): \(mapping.path) is no file: no image to disassemble (the kernel's code is in memory only); `sprof annotate` without --asm lists its samples"
                    : "\(function.name): cannot read \(mapping.path): no disassembly")
                continue
            }
            var selfByAddress: [UInt64: Int64] = [:]
            var totalByAddress: [UInt64: Int64] = [:]
            for m in mappings {
                let own = profile.mappings[m]
                for a in byMapping[m]! {
                    let address = binary.fileAddress(of: a.address, mappingStart: own.start, fileOffset: own.fileOffset)
                    if a.selfValue != 0 { selfByAddress[address, default: 0] += a.selfValue }
                    totalByAddress[address, default: 0] += a.totalValue
                }
            }
            /// The address with the most, the lowest of equals.
            func top(_ values: [UInt64: Int64]) -> UInt64? {
                values.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key
            }
            let anchor = top(selfByAddress) ?? top(totalByAddress)!
            guard let symbol = binary.function(containing: anchor), symbol.end > symbol.start, symbol.end - symbol.start <= Self.maxCode,
                  let code = binary.bytes(at: symbol.start, count: Int(symbol.end - symbol.start)),
                  let instructions = Disassembler.x86_64(code, address: symbol.start) else {
                notices.append("\(function.name): no function's code at 0x\(String(anchor, radix: 16)) in \(mapping.path) (no symbol or .eh_frame entry covers it): no disassembly")
                continue
            }
            listed = true
            let inRange = selfByAddress.filter { $0.key >= symbol.start && $0.key < symbol.end }
            let functionSelf = inRange.values.reduce(0, +)
            let hottest = top(inRange)
            out += "ROUTINE ======================== \(symbol.name) in \(mapping.path)"
                + (binary.buildID.isEmpty ? "" : " [build-id \(binary.buildID)]") + "\n"
            out += "\(pad(String(functionSelf), 10)) samples in its \(instructions.count) instructions"
                + " (>> the hottest, > at least \(Self.markPercent)%)\n"
            out += " Percent    samples          address  instruction\n"
            var lastPosition: SourcePosition?
            for insn in instructions {
                if let position = binary.sourcePositions(at: insn.address).first, position.line != nil, position != lastPosition {
                    lastPosition = position
                    let line = position.line!
                    let text = position.file.flatMap { sources.lines(of: $0, buildID: binary.buildID) }
                        .flatMap { line <= $0.count ? String($0[line - 1]) : nil } ?? ""
                    let base = position.file.map { String($0.split(separator: "/").last ?? "") } ?? "?"
                    let inlined = position.function == symbol.name || position.function == function.name ? "" : " [\(position.function)]"
                    out += "\(String(repeating: " ", count: 29)):  \(base):\(line)\(inlined)  \(text)\n"
                }
                let samples = inRange[insn.address] ?? 0
                let pct = functionSelf == 0 ? 0 : 100 * Double(samples) / Double(functionSelf)
                let mark = insn.address == hottest ? ">>" : (pct >= Double(Self.markPercent) ? " >" : "  ")
                out += "\(pad(samples == 0 ? "" : format2(pct), 8)) \(pad(samples == 0 ? "." : String(samples), 10)) \(mark) "
                    + "\(pad(String(insn.address, radix: 16), 12)):  \(insn.text)\n"
            }
            let outside = selfByAddress.values.reduce(0, +) - functionSelf
            if outside > 0 {
                notices.append("\(function.name): \(outside) samples lie outside \(symbol.name) (another copy of the function) and are not shown")
            }
        }
        return listed
    }

    /// The most code disassembled for one function; a symbol this large is a data blob or a bad size.
    static let maxCode: UInt64 = 4 << 20
    /// Instructions with at least this share of the function's samples are marked.
    static let markPercent = 5
}

private func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

/// Two decimals, without Foundation.
func format2(_ x: Double) -> String {
    let hundredths = Int((x * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}
