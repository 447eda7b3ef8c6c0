import Foundation
import Sprof
import SprofFormats
import SprofOutput
import SprofProfile

/// A profile uploaded through the Compare tab to compare a job against (`DIR/uploads/ID/`:
/// `profile.pb.gz`, the upload as pprof, and `upload.json`, this record).
public struct Upload: Codable, Sendable, Equatable {
    /// The upload's id (``JobID`` form, so it is safe in paths).
    public var id: String
    /// The file's name as the browser gave it (shown only).
    public var name: String
    /// When it was uploaded, milliseconds since 1970.
    public var createdMs: Int64
    /// Its sample count (the first value's total).
    public var samples: Int64
    /// `pprof` or `folded`.
    public var format: String

    enum CodingKeys: String, CodingKey {
        case id, name, createdMs = "created_ms", samples, format
    }
}

/// Reading, storing and listing uploads.
public enum Uploads {
    /// Reads an uploaded file: pprof (gzip-compressed or not) or folded stacks, through the
    /// reader every `sprof` command uses (``ProfileReader``), so a bad file gets the CLI's line.
    /// - Throws: ``ServeError`` 400 with one line when it is neither, or has no samples.
    public static func decode(_ bytes: [UInt8], name: String) throws -> (profile: Profile, format: String) {
        let source = shownName(name)
        let read: ProfileRead
        do {
            read = try ProfileReader.read(bytes, source: source)
        } catch let error as ProfileReadError {
            throw ServeError(400, error.kind == .noSamples ? "\(source) has no samples: there is nothing to compare with" : error.message)
        } catch {
            throw ServeError(400, "\(source): \(DataFiles.reason(error)); upload a pprof profile (.pb.gz) or folded stacks (.folded)")
        }
        guard read.profile.total(0) > 0 else {
            throw ServeError(400, "\(source) has no samples: there is nothing to compare with")
        }
        return (read.profile, read.isFolded ? "folded" : "pprof")
    }

    /// The browser's file name as shown in messages and lists: control characters dropped, at
    /// most 120 characters.
    static func shownName(_ name: String) -> String {
        let clean = String(String.UnicodeScalarView(name.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7f }.prefix(120)))
        return clean.isEmpty ? "upload" : clean
    }

    /// Stores an upload under `dataDirectory/uploads/`.
    public static func store(_ bytes: [UInt8], name: String, dataDirectory: String) throws -> Upload {
        let (profile, format) = try decode(bytes, name: name)
        let id = "u" + JobID.make()
        let dir = "\(dataDirectory)/uploads/\(id)"
        try DataFiles.makeDirectory(dir)
        do {
            try DataFiles.writeAtomically(Data(try PprofFormat.encode(profile)), to: dir + "/profile.pb.gz")
        } catch let e as ServeError {
            throw e
        } catch {
            throw ServeError(500, "cannot store the upload: \(DataFiles.reason(error))")
        }
        let upload = Upload(id: id, name: shownName(name),
                            createdMs: Int64(Date().timeIntervalSince1970 * 1000), samples: profile.total(0), format: format)
        try DataFiles.writeJSON(upload, to: dir + "/upload.json")
        return upload
    }

    /// The uploads, newest first.
    public static func list(dataDirectory: String) -> [Upload] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory + "/uploads")) ?? []
        return names.filter(JobID.isValid).compactMap { try? DataFiles.readJSON(Upload.self, from: "\(dataDirectory)/uploads/\($0)/upload.json") }
            .sorted { $0.createdMs != $1.createdMs ? $0.createdMs > $1.createdMs : $0.id > $1.id }
    }

    /// Deletes upload `id` and returns its directory (gone now).
    /// - Throws: ``ServeError`` 404 for an unknown or malformed id, 500 when it cannot be removed.
    public static func delete(_ id: String, dataDirectory: String) throws -> String {
        let dir = try directory(of: id, dataDirectory: dataDirectory)
        do {
            try FileManager.default.removeItem(atPath: dir)
        } catch {
            throw ServeError(500, "cannot delete the upload: \(DataFiles.reason(error))")
        }
        return dir
    }

    /// The directory of upload `id` (checked).
    /// - Throws: ``ServeError`` 404 for an unknown or malformed id.
    public static func directory(of id: String, dataDirectory: String) throws -> String {
        let dir = "\(dataDirectory)/uploads/\(id)"
        guard JobID.isValid(id), FileManager.default.fileExists(atPath: dir + "/profile.pb.gz") else {
            throw ServeError(404, "no upload \(String(id.prefix(70)).debugDescription)")
        }
        return dir
    }
}

extension ProfileViews {
    /// The Compare tab's table and whether its changes were tested: with repeated runs on both
    /// sides (samples labelled `run`, as the merged profile of a repeat job holds them) each
    /// row carries `sprof diff`'s test (``ProfileComparison``: Welch or Mann–Whitney per
    /// function, Benjamini–Hochberg q-values); otherwise the shares of the whole profiles.
    /// `known`: the two sides' rows by function (``Profile/top(by:valueIndex:names:granularity:)``)
    /// when made already with the names it is given (the two sides named together), else nil.
    public static func comparison(base: Profile, new: Profile, limit: Int = 200,
                                  known: ([Profile.FunctionNames]) throws -> (base: [CostRow], new: [CostRow])? = { _ in nil }) rethrows
        -> (rows: [CompareRow], comparison: ProfileComparison?) {
        guard base.runs.count >= 2 && new.runs.count >= 2 else {
            let names = Profile.FunctionNames.shared([base, new])
            if let rows = try known(names) { return (compare(baseRows: rows.base, newRows: rows.new, limit: limit), nil) }
            return (compare(base: base, new: new, limit: limit), nil)
        }
        let c = ProfileComparison(base: base, new: new)
        let rows = c.rows.prefix(limit).map { r -> CompareRow in
            var row = CompareRow(name: r.diff.name, baseSelf: r.diff.basePercent, newSelf: r.diff.newPercent, deltaSelf: r.diff.delta,
                                 baseTotal: r.diff.baseTotalPercent, newTotal: r.diff.newTotalPercent, deltaTotal: r.diff.totalDelta)
            row.qSelf = r.selfTest?.q
            row.qTotal = r.totalTest?.q
            row.test = r.selfTest?.method
            row.significant = (r.selfTest.map { $0.q <= c.alpha } ?? false) || (r.totalTest.map { $0.q <= c.alpha } ?? false)
            return row
        }
        return (rows, c)
    }
}
