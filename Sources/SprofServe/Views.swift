import Foundation
import SprofFormats
import SprofOutput
import SprofProfile

/// One run's profile as the views read it.
public struct LoadedRun: Sendable {
    /// The recording (CPU or whatever event was sampled).
    public var profile: Profile
    /// An older run's profiles of one sample type each (`profile.wall.folded`), by sample type;
    /// empty for a run read from `profile.pb.gz`, whose profile holds every type.
    public var separate: [String: Profile] = [:]
    /// Which file it came from.
    public var source: String
    /// Process names from the memory timeline file (pid → name).
    public var memoryNames: [Int32: String] = [:]

    /// Creates a loaded run.
    public init(profile: Profile, source: String) {
        self.profile = profile
        self.source = source
    }

    /// The profile holding sample type `type` (a name or alias, as `--sample-type` takes) and
    /// the index of its values; nil when the run did not record it.
    public func values(of type: String) -> (profile: Profile, valueIndex: Int)? {
        let type = Profile.ValueType.aliases[type] ?? type
        if let p = separate[type] { return (p, 0) }
        return profile.sampleTypeIndex(type).map { (profile, $0) }
    }
}

/// The files a run leaves and how they are read.
public enum ProfileFiles {
    /// Suffixes of `profile` that hold a profile, preferred first.
    public static let kinds = [".pb.gz", ".folded"]

    /// Loads run `dir`: `profile.pb.gz` (pprof, with wall and off-CPU values when recorded), else
    /// `profile.folded` (an older sprof) with `profile.NAME.folded` for each ``SampleTypeView``
    /// (`profile.wall.folded`, `profile.offcpu.folded`, in nanoseconds); and
    /// the memory timeline `profile.memory.tsv` when there is one.
    /// - Throws: ``ServeError`` 404 when no profile is there, 500 when it cannot be read.
    public static func load(runDirectory dir: String) throws -> LoadedRun {
        let fm = FileManager.default
        var run: LoadedRun
        if let data = fm.contents(atPath: dir + "/profile.pb.gz") {
            // The one reader every subcommand uses: the same message for the same bad file.
            let p: Profile
            do {
                p = try ProfileReader.read([UInt8](data), source: dir + "/profile.pb.gz").profile
            } catch {
                throw ServeError(500, "\(error)")
            }
            run = LoadedRun(profile: p, source: "profile.pb.gz")
        } else {
            guard let cpu = try folded(dir + "/profile.folded") else {
                throw ServeError(404, "this run has no profile (it ended before sprof wrote one)")
            }
            run = LoadedRun(profile: cpu, source: "profile.folded")
            for view in SampleTypeView.table {
                guard var p = try folded(dir + "/profile.\(view.name).folded") else { continue }
                p.sampleTypes = [Profile.ValueType(type: view.sampleType, unit: "nanoseconds")]
                run.separate[view.sampleType] = p
            }
        }
        if run.profile.memory.isEmpty, let text = try? String(contentsOfFile: dir + "/profile.memory.tsv", encoding: .utf8) {
            // A malformed timeline leaves the chart out; the profile itself is still shown.
            if let (points, names) = try? MemoryTimeline.parse(text) {
                run.profile.memory = points
                run.memoryNames = names
            }
        }
        return run
    }

    /// Every sample of run `dir` with its time from `profile.timeline.tsv` (nanoseconds from the
    /// start of recording; indices into `profile`, the run's profile); nil when there is no such
    /// file, and the reason when it cannot be read (read only when a timeline or a time range is
    /// asked for: a long recording's file has hundreds of thousands of lines).
    public static func timeline(runDirectory dir: String, matching profile: Profile) -> (timed: [Profile.TimedSample]?, problem: String?) {
        guard let data = FileManager.default.contents(atPath: dir + "/profile.timeline.tsv") else { return (nil, nil) }
        let result = data.withUnsafeBytes { raw in
            Result { () throws(SampleTimeline.ParseError) -> [Profile.TimedSample] in
                try SampleTimeline.parse(raw.bindMemory(to: UInt8.self), matching: profile)
            }
        }
        switch result {
        case .success(let timed): return (timed, nil)
        case .failure(let error): return (nil, error.description)
        }
    }

    static func folded(_ path: String) throws -> Profile? {
        guard let stacks = try parseFolded(path) else { return nil }
        return Profile(folded: stacks.map { (frames: $0.frames, count: $0.value) })
    }

    static func parseFolded(_ path: String) throws -> [(frames: [String], value: Int64)]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let stacks: FoldedStacks
        do {
            // The one reader's sniffing and messages; a file of zero counts is an empty view here.
            switch try ProfileReader.decode([UInt8](data), source: path) {
            case .folded(let folded): stacks = folded
            case .pprof(let profile, _): stacks = profile.folded()
            }
        } catch let error as ProfileReadError where error.kind == .noSamples {
            return []
        } catch {
            throw ServeError(500, "\(error)")
        }
        return stacks.stacks().map { (frames: $0.frames, value: Int64(clamping: $0.count)) }
    }

    /// The sample count of a run, from its profile; nil when unreadable.
    public static func sampleCount(runDirectory dir: String) -> UInt64? {
        (try? load(runDirectory: dir)).map { UInt64(max(0, $0.profile.total(0))) }
    }

    /// Files of a run offered for download: profiles, flame graphs, exports and the command's output.
    public static func downloads(runDirectory dir: String) -> [String] {
        var names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter(isDownloadable)
        if kinds.contains(where: { names.contains("profile" + $0) }) && !names.contains(speedscopeName) {
            names.append(speedscopeName)
        }
        if FileManager.default.fileExists(atPath: mergedRunsPath(runDirectory: dir)) { names.append(mergedRunsName) }
        return names.sorted()
    }

    /// A repeat job's runs as one pprof file (`jobs/ID/profile.pb.gz`, samples labelled `run`, as
    /// `sprof run -r N` writes it, for `sprof diff`), offered with every run's downloads.
    public static let mergedRunsName = "profile.runs.pb.gz"

    /// Where the merged profile of the job of run directory `dir` (`jobs/ID/runs/N`) is.
    public static func mergedRunsPath(runDirectory dir: String) -> String {
        ((dir as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent + "/profile.pb.gz"
    }

    /// The speedscope file, made from the profile when asked for.
    public static let speedscopeName = "profile" + ProfileFormat.speedscope.suffix

    /// True for `output.log` and `profile[.VIEW].{folded,svg,pb.gz,json,speedscope.json,tsv}`: the only
    /// names a download request may use (no `/`, no `..`, no dot files).
    public static func isDownloadable(_ name: String) -> Bool {
        if name == "output.log" { return true }
        guard name.hasPrefix("profile."), name.utf8.count <= 64 else { return false }
        guard name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2e || $0 == 0x2d }) else { return false }
        guard !name.contains("..") else { return false }
        return [".folded", ".svg", ".pb.gz", ".json", ".tsv"].contains { name.hasSuffix($0) }
    }
}
