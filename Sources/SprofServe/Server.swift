import Foundation
import HTTPTypes
import Hummingbird
import SprofFormats
import SprofProfile

/// How `sprof serve` listens and whom it trusts.
public struct ServeConfiguration: Sendable {
    /// Address to listen on; loopback unless ``allowRemote``.
    public var host: String
    /// TCP port.
    public var port: Int
    /// Permits a non-loopback ``host`` (the token is still required).
    public var allowRemote: Bool
    /// Host names (or addresses) besides the loopback ones that requests may name in `Host`
    /// (`--allow-host`), lowercased. Nothing else is answered: a DNS-rebinding page sends its own name.
    public var allowedHosts: [String]
    /// The access token every API request must carry (`Authorization: Bearer TOKEN`, or `?token=`
    /// where a browser cannot set a header: event streams and download links).
    public var token: String
    /// Largest request body accepted, in bytes.
    public var maxBodyBytes: Int
    /// Largest profile accepted as an upload to compare with (`POST /api/uploads`), in bytes.
    public var maxUploadBytes: Int = 64 << 20

    /// Creates a configuration.
    public init(host: String = "127.0.0.1", port: Int = 8080, allowRemote: Bool = false, allowedHosts: [String] = [],
                token: String = ServeConfiguration.newToken(), maxBodyBytes: Int = 64 * 1024) {
        self.host = host
        self.port = port
        self.allowRemote = allowRemote
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
        self.token = token
        self.maxBodyBytes = maxBodyBytes
    }

    /// 32 random hex digits (128 bits from the system's generator).
    public static func newToken() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in
            let s = String(UInt32.random(in: 0 ... .max, using: &g), radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }

    /// True for `localhost` and for literal loopback addresses: 127.0.0.0/8 in dotted-quad form,
    /// `::1` and `::ffff:127.x.y.z` (with or without brackets). Parsed with `inet_pton`, never
    /// compared as text: `127.evil.example` and `127.0.0.1.nip.io` are names, not addresses.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" { return true }
        guard let bytes = address(h) else { return false }
        if bytes.count == 4 { return bytes[0] == 127 }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        return bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
    }

    /// The bytes of a literal IPv4 (4) or IPv6 (16, brackets allowed) address; nil for a name.
    public static func address(_ text: String) -> [UInt8]? {
        var t = Substring(text)
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        var v4 = in_addr()
        if inet_pton(AF_INET, String(t), &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, String(t), &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    /// True when a request whose `Host` names `name` (without the port) may be answered: a
    /// loopback address or `localhost`, the address given with `--host` when it is one (not the
    /// wildcard), or a name given with `--allow-host` (addresses compared as addresses).
    public func hostAllowed(_ name: String) -> Bool {
        let n = name.lowercased()
        if Self.isLoopback(n) { return true }
        let given = Self.address(n)
        if let given, let own = Self.address(host), own.contains(where: { $0 != 0 }), own == given { return true }
        return allowedHosts.contains { other in
            if let given, let o = Self.address(other) { return given == o }
            return given == nil && other == n
        }
    }

    /// Checks the host/remote combination.
    /// - Throws: ``ServeError`` when a non-loopback host is given without `--allow-remote`.
    public func validate() throws {
        if !allowRemote && !Self.isLoopback(host) {
            throw ServeError(400, "--host \(host) is not a loopback address: anyone who reaches it can run commands here; add --allow-remote to mean it (the token is still required)")
        }
        guard (0...65535).contains(port) else { throw ServeError(400, "--port \(port): a TCP port is 1 to 65535") }
    }
}

/// Refuses what must not reach the handlers: changing requests without the token or from another
/// site (CSRF), requests for another host name (DNS rebinding), and answers `ServeError`s as JSON.
struct SecurityMiddleware<Context: RequestContext>: RouterMiddleware {
    let configuration: ServeConfiguration

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            try check(request)
            var response = try await next(request, context)
            Self.addSecurityHeaders(&response.headers)
            return response
        } catch let error as ServeError {
            return Responses.error(error, path: request.uri.path)
        } catch let error as any HTTPResponseError {
            // HTTPError, and NIO's too-many-bytes error of collectBody(upTo:) (a 413 that had
            // no body before).
            let message: String
            switch error.status.code {
            case 404: message = "not found: \(request.uri.path)"
            case 413 where request.uri.path == "/api/uploads":
                message = "the file is too large: uploads are at most \(configuration.maxUploadBytes >> 20) MiB"
            case 413: message = "request too large: at most \(configuration.maxBodyBytes) bytes"
            default: message = (error as? HTTPError)?.body ?? error.status.reasonPhrase
            }
            return Responses.error(ServeError(error.status.code, message), path: request.uri.path)
        }
    }

    private func check(_ request: Request) throws {
        // A page on another site can resolve its own name to 127.0.0.1: answer only our own names.
        if let host = request.head.authority, !Self.hostAllowed(host, configuration) {
            throw ServeError(403, "host \(String(host.prefix(100))) refused: this server answers only loopback addresses, localhost and the names given with --allow-host")
        }
        let method = request.method
        let path = request.uri.path
        // Job data is read with the token too: command lines, profiles and the commands' output
        // can hold secrets. The pages and assets carry none, so a bookmark of a page still opens.
        if method == .get || method == .head || method == .options {
            if !Self.isPublicPage(path) && !Self.hasToken(request, configuration) {
                throw ServeError(401, "access token missing or wrong: send 'Authorization: Bearer TOKEN' (or ?token=TOKEN) with the token sprof serve printed at start (open the URL it printed)")
            }
            return
        }
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin" && site != "none" {
            throw ServeError(403, "cross-site request refused (Sec-Fetch-Site: \(site))")
        }
        if let origin = request.headers[.origin] {
            let host = request.head.authority ?? ""
            guard origin == "http://\(host)" else {
                throw ServeError(403, "origin \(String(origin.prefix(100))) refused: changes are accepted only from this server's own pages")
            }
        }
        guard let auth = request.headers[.authorization], auth.hasPrefix("Bearer "),
              Self.constantTimeEqual(String(auth.dropFirst(7)), configuration.token) else {
            throw ServeError(401, "access token missing or wrong: send 'Authorization: Bearer TOKEN' with the token sprof serve printed at start (open the URL it printed)")
        }
    }

    /// Whether `path` is one of the pages or assets, which carry no job data and open without the
    /// token: the list (`/`), a job's page (`/jobs/ID`) and `/assets/NAME`. Decided on the path's
    /// non-empty parts, as the router matches it, and everything else needs the token: a test of
    /// `/api/` as a prefix let `//api/jobs` (the router's `/api/jobs`) be read without it.
    static func isPublicPage(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        switch parts.count {
        case 0: return true
        case 2: return (parts[0] == "jobs" && JobID.isValid(String(parts[1]))) || (parts[0] == "assets" && Assets.files[String(parts[1])] != nil)
        default: return false
        }
    }

    /// The token as a bearer header, or as `?token=` (EventSource and download links cannot send headers).
    static func hasToken(_ request: Request, _ configuration: ServeConfiguration) -> Bool {
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") {
            return constantTimeEqual(String(auth.dropFirst(7)), configuration.token)
        }
        if let t = FormQuery(request.uri.query).get("token") { return constantTimeEqual(String(t), configuration.token) }
        return false
    }

    /// True when a request naming `authority` (its Host) may be answered; `--allow-remote` changes
    /// where the server listens, not which names it answers.
    static func hostAllowed(_ authority: String, _ configuration: ServeConfiguration) -> Bool {
        configuration.hostAllowed(hostName(authority))
    }

    static func hostName(_ authority: String) -> String {
        let a = authority.lowercased()
        if a.hasPrefix("["), let close = a.firstIndex(of: "]") { return String(a[...close]) }
        return String(a.split(separator: ":", maxSplits: 1).first ?? "")
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    static func addSecurityHeaders(_ headers: inout HTTPFields) {
        // Nothing from the network, nothing inline: the pages' own script and style only.
        headers[HTTPField.Name("Content-Security-Policy")!] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        // The token travels in the page URL once; keep it out of Referer headers.
        headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
    }
}

/// Building responses.
enum Responses {
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSON.encode(value)) ?? Data("null".utf8)
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(bytes: Data, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func error(_ error: ServeError, path: String) -> Response {
        var response: Response
        if path.hasPrefix("/api/") {
            response = json(["error": error.message], status: HTTPResponse.Status(code: error.status))
        } else {
            response = Response(status: HTTPResponse.Status(code: error.status), headers: [.contentType: "text/html; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(string: Pages.errorPage(error.message))))
        }
        SecurityMiddleware<BasicRequestContext>.addSecurityHeaders(&response.headers)
        return response
    }

    static func text(_ body: String, type: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: type, .cacheControl: "no-cache"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }
}

/// Work run on a thread of its own while its caller goes on; ``wait()`` returns the result (once
/// made, at once). Parallel work inside one step of ``ProfileCache``, which must stay one step:
/// an `await` between its parts would let a background preparation run a step in between. A
/// thread, not Dispatch's global queue: the actor's step blocks in ``wait()`` on one of the few
/// threads of the pool that Swift's tasks share with that queue (as many as CPUs), so on one CPU
/// the work could never start.
final class Background<T: Sendable>: @unchecked Sendable {
    // Written once before `done` is left, read only after waiting for it.
    private var result: T?
    private let done = DispatchGroup()

    /// - Parameter ahead: work made ahead of a click (a run's timeline read as its page opens),
    ///   which runs at nice 10 so that the requests of the user meanwhile are served first.
    init(ahead: Bool = false, _ work: @escaping @Sendable () -> T) {
        done.enter()
        let thread = Thread {
            // Linux keeps a nice value per thread; `who` 0 is the calling thread.
            if ahead { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10) }
            self.result = work()
            self.done.leave()
        }
        thread.name = "sprof-serve-background"
        thread.start()
    }

    func wait() -> T {
        done.wait()
        return result!
    }

    /// Whether the result is made (``wait()`` would return at once).
    var isDone: Bool { done.wait(timeout: .now()) == .success }
}

/// Caches loaded runs and the views rendered from them: a profile of 100k stacks takes seconds to
/// read and turn into a tree, and every tab (and every reload of the page) asks again.
actor ProfileCache {
    /// A run's sample timeline (nil with the reason when it has none) and its index for cutting.
    typealias TimelineRead = (timed: [Profile.TimedSample]?, problem: String?, index: ProfileViews.TimedSamples?)

    private final class Entry {
        var stacks: InternedStacks?
        var run: LoadedRun?
        var views: [String: Data] = [:]
        var transformed: [String: LoadedRun] = [:]
        /// The CPU stacks of each transformed profile of `transformed`.
        var transformedStacks: [String: InternedStacks] = [:]
        /// Frame names per stack of the run's profile, named once (see ``ProfileViews/StackNames``).
        var stackNames: ProfileViews.StackNames?
        /// The sample timeline and its index for cutting, read on a thread of their own when first
        /// asked for (``ProfileCache/timelineWork(_:)``).
        var timeline: Background<TimelineRead>?
        /// The whole profile's rows by function (Compare reads them), made on a thread of their own.
        var topRows: Background<[CostRow]>?
        /// The last time range asked for, as a profile and its CPU stacks (made when first asked for).
        var range: (range: TimeRange, profile: Profile, stacks: InternedStacks?)?
        /// Whole flame trees by view key, the last few: a zoom or a search asks the same tree again.
        var trees: [(key: String, tree: ProfileViews.FlameTree)] = []
        /// The run's CPU flame tree with where each stack ends (ranges and dropping transforms cut it).
        var wholeTree: ProfileViews.WholeTree?
    }
    private var entries: [(key: String, entry: Entry)] = []

    private func entry(_ dir: String) -> Entry {
        if let i = entries.firstIndex(where: { $0.key == dir }) {
            let e = entries.remove(at: i)
            entries.append(e)
            return e.entry
        }
        let e = Entry()
        entries.append((dir, e))
        if entries.count > 4 { entries.removeFirst() }
        return e
    }

    /// The run's whole profile (for tables, threads, memory and diffs).
    func load(_ dir: String) throws -> LoadedRun {
        let e = entry(dir)
        if let run = e.run { return run }
        let run = try ProfileFiles.load(runDirectory: dir)
        e.run = run
        return run
    }

    /// The run with `transforms` applied to each of its profiles (made once per list of transforms).
    func load(_ dir: String, transforms: [StackTransform]) throws -> LoadedRun {
        guard !transforms.isEmpty else { return try load(dir) }
        let key = ServeApp.transformsKey(transforms)
        if let run = entry(dir).transformed[key] { return run }
        var run = try load(dir)
        let original = run.profile
        run.profile = original.transformed(transforms)
        // One pprof file holds every value: its views of each sample type read the same profile.
        run.separate = run.separate.mapValues { $0.transformed(transforms) }
        let e = entry(dir)
        if e.transformed.count >= 8 { e.transformed.removeAll(); e.transformedStacks.removeAll() }
        e.transformed[key] = run
        return run
    }

    /// The CPU stacks with `transforms` applied (made once per list of transforms).
    func cpuStacks(_ dir: String, transforms: [StackTransform]) throws -> InternedStacks {
        guard !transforms.isEmpty else { return try cpuStacks(dir) }
        let key = ServeApp.transformsKey(transforms)
        if let s = entry(dir).transformedStacks[key] { return s }
        // Rewritten on the run's named stacks: the transformed profile is not made (nor named).
        let profile = try load(dir).profile
        let s = ProfileViews.cpuStacks(profile, names: stackNames(dir, profile), transforms: transforms)
        let e = entry(dir)
        if e.transformedStacks.count >= 8 { e.transformedStacks.removeAll() }
        e.transformedStacks[key] = s
        return s
    }

    /// The CPU flame graph's stacks, from the run's profile (the model, as every view).
    func cpuStacks(_ dir: String) throws -> InternedStacks {
        let e = entry(dir)
        if let s = e.stacks { return s }
        let profile = try load(dir).profile
        let stacks = ProfileViews.cpuStacks(profile, names: stackNames(dir, profile))
        e.stacks = stacks
        return stacks
    }

    /// The run's CPU flame tree (no range, no transform), made once; the tree of a subset of its
    /// stacks is cut from it (``ProfileViews/WholeTree``).
    func wholeTree(_ dir: String) throws -> ProfileViews.WholeTree {
        if let t = entry(dir).wholeTree { return t }
        // The run's stacks say where they come from (no transform), so this is never nil.
        guard let t = ProfileViews.WholeTree(try cpuStacks(dir), unit: "samples") else {
            throw ServeError(500, "the run's stacks do not say where they come from")
        }
        entry(dir).wholeTree = t
        return t
    }

    /// The CPU flame tree of run `dir` with `transforms` (whole, not cut for drawing): the run's
    /// tree, cut from it for transforms that only drop samples, else built from the transformed
    /// stacks; kept as the CPU view's tree (``tree(_:key:make:)``).
    func cpuTree(_ dir: String, transforms: [StackTransform]) throws -> ProfileViews.FlameTree {
        if transforms.isEmpty { return try wholeTree(dir).tree }
        return try tree(dir, key: ServeApp.viewKey(view: "cpu", transforms: transforms)) { cache in
            // Transforms that only drop samples: the sums of the kept stacks cut the run's tree,
            // and no stack's frames are made.
            if ProfileViews.onlyDrop(transforms) {
                let profile = try cache.load(dir).profile
                let sums = ProfileViews.stackSums(profile, names: cache.stackNames(dir, profile), transforms: transforms)
                if let cut = try cache.wholeTree(dir).tree(of: sums) { return cut }
            }
            return ProfileViews.flameTree(try cache.cpuStacks(dir, transforms: transforms), unit: "samples")
        }
    }

    /// The CPU flame tree of the samples of run `dir` in `range` with `transforms`: cut from the
    /// run's tree when the transforms only drop samples, else built from the stacks.
    func cpuTree(_ dir: String, range: TimeRange, transforms: [StackTransform]) throws -> ProfileViews.FlameTree {
        if ProfileViews.onlyDrop(transforms) {
            let sums = ProfileViews.stackSums(try restricted(dir, range), names: try stackNames(dir), transforms: transforms)
            if let cut = try wholeTree(dir).tree(of: sums) { return cut }
        }
        return ProfileViews.flameTree(try rangedStacks(dir, range, transforms: transforms), unit: "samples")
    }

    /// The run's profile with only the samples in `range` (see ``ProfileViews/restrict(_:timed:to:)``);
    /// the last range is kept, as a user looks at one range in several views.
    /// - Throws: ``ServeError`` 400 when the run has no timeline.
    func restricted(_ dir: String, _ range: TimeRange) throws -> Profile {
        let e = entry(dir)
        if let r = e.range, r.range == range { return r.profile }
        let run = try load(dir)
        let timeline = try self.timeline(dir)
        guard let timed = timeline.timed else {
            throw ServeError(400, "this run has no sample timeline, so it cannot be cut to a time range" + (timeline.problem.map { ": \($0)" } ?? " (recorded by a sprof without --timeline)"))
        }
        guard let index = try timelineWork(dir).wait().index else { throw ServeError(500, "the run's timeline has no index") }
        let p = index.restrict(run.profile, to: range)
        e.range = (range, p, nil)
        return p
    }

    /// The CPU stacks of the samples of run `dir` in `range` with `transforms` (those without
    /// transforms kept with the range: the inverted tree and the callers read them too).
    func rangedStacks(_ dir: String, _ range: TimeRange, transforms: [StackTransform]) throws -> InternedStacks {
        let p = try restricted(dir, range)
        // The cut shares the run's stacks, so the run's names serve it.
        guard transforms.isEmpty else { return ProfileViews.cpuStacks(p, names: try stackNames(dir), transforms: transforms) }
        if let stacks = entry(dir).range?.stacks { return stacks }
        let stacks = ProfileViews.cpuStacks(p, names: try stackNames(dir))
        entry(dir).range?.stacks = stacks
        return stacks
    }

    /// The rows of run `dir`'s whole profile by function (``Profile/top(by:valueIndex:names:granularity:)``
    /// with the run's names), made once on a thread of their own: Compare needs them and the run's
    /// CPU tree, and the actor makes the tree meanwhile (a 30,000-stack Compare clicked as the
    /// page opens waited ~40 ms more for them, one after the other).
    func topRows(_ dir: String) throws -> Background<[CostRow]> {
        if let rows = entry(dir).topRows { return rows }
        let profile = try load(dir).profile
        let names = try stackNames(dir).functionNames
        let rows = Background { profile.top(by: [.sym], names: names) }
        entry(dir).topRows = rows
        return rows
    }


    /// The names of run `dir`'s stacks (see ``ProfileViews/StackNames``), made once.
    func stackNames(_ dir: String) throws -> ProfileViews.StackNames {
        try stackNames(dir, load(dir).profile)
    }

    private func stackNames(_ dir: String, _ profile: Profile) -> ProfileViews.StackNames {
        if let n = entry(dir).stackNames { return n }
        let n = ProfileViews.StackNames(profile)
        entry(dir).stackNames = n
        return n
    }

    /// The run's sample timeline (see ``ProfileFiles/timeline(runDirectory:matching:)``).
    func timeline(_ dir: String) throws -> (timed: [Profile.TimedSample]?, problem: String?) {
        let t = try timelineWork(dir).wait()
        return (t.timed, t.problem)
    }

    /// Reads run `dir`'s sample timeline and indexes it for cutting (``ProfileViews/TimedSamples``)
    /// on a thread of its own, once: a 300,000-sample timeline takes ~200 ms, and as one step of
    /// the actor it held up every request behind it (a cached view, or Compare clicked as the
    /// page opened, waited for it).
    func timelineWork(_ dir: String) throws -> Background<TimelineRead> {
        if let t = entry(dir).timeline { return t }
        let profile = try load(dir).profile
        let work = Background(ahead: true) { () -> TimelineRead in
            let t = ProfileFiles.timeline(runDirectory: dir, matching: profile)
            return (t.timed, t.problem, t.timed.map { ProfileViews.TimedSamples(profile, timed: $0) })
        }
        entry(dir).timeline = work
        return work
    }

    /// The whole flame tree of view `key` of run `dir` (the last 3 per run are kept).
    func tree(_ dir: String, key: String, make: (isolated ProfileCache) throws -> ProfileViews.FlameTree) rethrows -> ProfileViews.FlameTree {
        let e = entry(dir)
        if let t = e.trees.first(where: { $0.key == key }) { return t.tree }
        let t = try make(self)
        e.trees.append((key, t))
        if e.trees.count > 3 { e.trees.removeFirst() }
        return t
    }

    /// Reads run `dir`'s profile, names its stacks, renders its CPU flame graph, and starts its
    /// table by function and its timeline (read and indexed) on threads of their own, ahead of a
    /// click; each step on the actor a call of its own, so that requests meanwhile wait for one
    /// step at most.
    static func prepare(_ cache: ProfileCache, _ dir: String) async {
        guard (try? await cache.load(dir)) != nil else { return }
        // Compare's table of this run (against any other), made beside the steps below.
        _ = try? await cache.topRows(dir)
        _ = try? await cache.cpuStacks(dir)
        _ = try? await cache.view(dir, key: ServeApp.viewKey(view: "cpu")) { cache in
            try ServeApp.render(view: "cpu", dir: dir, cache: cache, thread: nil)
        }
        _ = try? await cache.timelineWork(dir)
    }

    /// What is made of run `dir` so far: `profile`, `stacks`, `cpu` (the CPU view), and what is
    /// made or being made on a thread of its own: `top` (the table by function), `timeline`.
    func made(_ dir: String) -> [String] {
        guard let e = entries.first(where: { $0.key == dir })?.entry else { return [] }
        return [e.run != nil ? "profile" : nil, e.stacks != nil ? "stacks" : nil,
                e.views[ServeApp.viewKey(view: "cpu")] != nil ? "cpu" : nil,
                e.topRows != nil ? "top" : nil, e.timeline != nil ? "timeline" : nil].compactMap { $0 }
    }

    /// A rendered view, made once per run.
    func view(_ dir: String, key: String, make: (isolated ProfileCache) throws -> Data) rethrows -> Data {
        if let d = entry(dir).views[key] { return d }
        let d = try make(self)
        // Each list of transforms is a view of its own: bound what one run keeps.
        if entry(dir).views.count >= 64 { entry(dir).views.removeAll() }
        entry(dir).views[key] = d
        return d
    }

    func forget(prefix: String) {
        entries.removeAll { $0.key.hasPrefix(prefix) }
    }
}

/// The HTTP application of `sprof serve`: pages, assets, the job API and the views.
public enum ServeApp {
    /// Builds the router over `store`.
    public static func router(store: JobStore, validator: JobValidator, configuration: ServeConfiguration) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: SecurityMiddleware(configuration: configuration))
        let cache = ProfileCache()

        // Pages and assets.
        // A page asked for: its job's last run (the list: the newest job's) is read, named,
        // rendered and its timeline read in the background, before the user clicks.
        @Sendable func prepare(_ job: Job?) async {
            guard let job, job.runsDone > 0, let dir = try? await store.directory(of: job.id) else { return }
            let run = "\(dir)/runs/\(job.runsDone)"
            Task.detached(priority: .utility) { await ProfileCache.prepare(cache, run) }
        }
        router.get("/") { _, _ in
            await prepare(await store.list().first { $0.runsDone > 0 })
            return Responses.text(Pages.listPage(), type: "text/html; charset=utf-8")
        }
        router.get("/jobs/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let job = try await store.job(id)
            await prepare(job)
            return Responses.text(Pages.jobPage(id: id), type: "text/html; charset=utf-8")
        }
        router.get("/assets/:name") { _, context in
            let name = context.parameters.get("name") ?? ""
            guard let asset = Assets.files[name] else { throw ServeError(404, "no asset \(String(name.prefix(80)))") }
            return Responses.text(asset.body, type: asset.type)
        }

        // The job API.
        router.get("/api/info") { _, _ in
            Responses.json(["version": SystemInfoReader.sprofVersion,
                            "off_cpu": validator.capabilities.offCPU ? "yes" : "no",
                            "memory": validator.capabilities.memory ? "yes" : "no",
                            "progress": validator.capabilities.progressFD ? "yes" : "no"])
        }
        router.get("/api/jobs") { _, _ in Responses.json(await store.list()) }
        router.post("/api/jobs") { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: configuration.maxBodyBytes)
            let spec = try decodeSpec(Data(buffer: body))
            let options = try validator.validate(spec)
            let job = try await store.create(command: spec.command, options: options)
            return Responses.json(job, status: .created)
        }
        router.get("/api/jobs/:id") { _, context in
            Responses.json(try await store.job(context.parameters.get("id") ?? ""))
        }
        router.delete("/api/jobs/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let dir = try await store.directory(of: id)
            try await store.delete(id)
            await cache.forget(prefix: dir + "/")
            return Responses.json(["deleted": id])
        }
        router.post("/api/jobs/:id/stop") { _, context in
            Responses.json(try await store.stop(context.parameters.get("id") ?? ""))
        }
        router.post("/api/jobs/:id/rerun") { _, context in
            let old = try await store.job(context.parameters.get("id") ?? "")
            let options = try validator.validate(JobSpec(command: old.command, options: old.options))
            return Responses.json(try await store.create(command: old.command, options: options), status: .created)
        }
        router.get("/api/jobs/:id/events") { _, context in
            let stream = try await store.events(context.parameters.get("id") ?? "")
            return sse(stream)
        }
        router.get("/api/events") { _, _ in sse(await store.allEvents()) }

        // Views of run N.
        router.get("/api/jobs/:id/runs/:run/files/:name") { _, context in
            let dir = try await runDirectory(store, context)
            let name = context.parameters.get("name") ?? ""
            guard ProfileFiles.isDownloadable(name) else {
                throw ServeError(404, "no file \(String(name.prefix(80)).debugDescription) in this run")
            }
            // Files on disk are sent in chunks as they are read, never whole in memory (an
            // output.log was 2 GB before it was capped; a profile can be large too).
            func isFile(_ path: String) -> Bool {
                var st = stat()
                return stat(path, &st) == 0 && (st.st_mode & 0o170000) == 0o100000
            }
            let stored = [dir + "/" + name, name == ProfileFiles.mergedRunsName ? ProfileFiles.mergedRunsPath(runDirectory: dir) : nil]
                .compactMap { $0 }.first(where: isFile)
            // The format registry's MIME types, as `convert` and `run` name the same formats.
            var headers: HTTPFields = [.contentType: ProfileFormat.mimeType(ofFileName: name)]
            // An SVG flame graph runs its own script: served as a download, it cannot act as this site.
            headers[.contentDisposition] = "attachment; filename=\"\(name)\""
            let data: Data
            if let stored {
                return Response(status: .ok, headers: headers, body: try await FileIO().loadFile(path: stored, context: context, chunkLength: 256 << 10))
            } else if name == ProfileFiles.speedscopeName {
                // Made on demand from the profile: one file fewer per run on disk.
                data = try await cache.view(dir, key: name) { cache in
                    let profile = try cache.load(dir).profile
                    return Data(try ProfileFormat.speedscope.encode(profile, ProfileFormat.Options(profile)))
                }
            } else {
                throw ServeError(404, "no file \(String(name.prefix(80)).debugDescription) in this run")
            }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.get("/api/jobs/:id/runs/:run/files") { _, context in
            Responses.json(ProfileFiles.downloads(runDirectory: try await runDirectory(store, context)))
        }
        router.get("/api/jobs/:id/system") { _, context in
            // The machine as the last recorded run's provenance describes it.
            let id = context.parameters.get("id") ?? ""
            let job = try await store.job(id)
            let dir = try await store.directory(of: id)
            guard job.runsDone > 0, let run = try? await cache.load("\(dir)/runs/\(job.runsDone)") else {
                throw ServeError(404, "no system info: the job has no recorded run yet")
            }
            return Responses.json(SystemInfoRecord(run.profile.metadata))
        }
        router.get("/api/jobs/:id/runs/:run/view/:view") { request, context in
            let dir = try await runDirectory(store, context)
            let view = context.parameters.get("view") ?? ""
            let thread = try ServeApp.thread(request)
            let query = FormQuery(request.uri.query)
            let function: String? = query.get("fn").map { String($0) }
            let sampleType: String? = query.get("name").map { String($0) }
            let tf = try transforms(request)
            let range = try TimeRange.parse(from: query.get("from").map { String($0) }, to: query.get("to").map { String($0) })
            let drawn = try DrawnTree(request)
            let data = try await cache.view(dir, key: viewKey(view: view, thread: thread, function: function, sampleType: sampleType, transforms: tf, range: range, drawn: drawn)) { cache in
                try render(view: view, dir: dir, cache: cache, thread: thread, function: function, sampleType: sampleType, transforms: tf, range: range, drawn: drawn)
            }
            return Responses.json(bytes: data)
        }
        router.get("/api/jobs/:id/runs/:run/compare") { request, context in
            // `all=1`: this job's runs merged (jobs/ID/profile.pb.gz, samples labelled `run`).
            let q = FormQuery(request.uri.query)
            let dir: String
            if q.get("all") == "1" {
                dir = try await mergedDirectory(store, context.parameters.get("id") ?? "")
            } else {
                dir = try await runDirectory(store, context)
            }
            let baseDir: String, baseName: String
            if let upload = q.get("base_upload") {
                baseDir = try Uploads.directory(of: String(upload), dataDirectory: store.dataDirectory)
                baseName = "the uploaded base"
            } else if let baseID = q.get("base") {
                let baseJob = try await store.job(String(baseID))
                if q.get("base_run") == "all" {
                    baseDir = try await mergedDirectory(store, String(baseID))
                    baseName = "job \(baseJob.id) (its runs merged)"
                } else {
                    let baseRun = q.get("base_run").map { Int($0) ?? 0 } ?? max(1, baseJob.runsDone)
                    guard (1...JobOptions.maxRepeat).contains(baseRun) else {
                        throw ServeError(400, "base_run=\(String((q.get("base_run") ?? "").prefix(20)).debugDescription): runs are numbered from 1, or give base_run=all")
                    }
                    baseDir = try await store.directory(of: String(baseID)) + "/runs/\(baseRun)"
                    baseName = "job \(baseJob.id) run \(baseRun)"
                }
            } else {
                throw ServeError(400, "give the base as ?base=JOB[&base_run=N|all] or ?base_upload=ID")
            }
            // Function transforms apply to both sides; a thread or process is this run's own.
            let tf = try transforms(request)
            // Made once per pair of runs and transforms, from the cached profiles and stacks of each.
            let drawn = try DrawnTree(request)
            let key = cacheKey(["compare", baseDir, transformsKey(tf)])
            // One step of the actor, so that no step of a background preparation runs between its parts.
            let out = try await cache.view(dir, key: key + drawn.key) { cache in
                // A heap profile against a CPU one compares allocations with samples: refused as `sprof diff` refuses it.
                if let mismatch = Profile.kindMismatch(base: try cache.load(baseDir).profile, baseName: baseName,
                                                       new: try cache.load(dir).profile, newName: "this run") {
                    throw ServeError(400, mismatch)
                }
                let baseTransforms = tf.filter { !$0.selectsThreads }
                // Each side's table by function, made (once per run) beside the tree.
                let table = tf.isEmpty && drawn.zoom == nil && drawn.match == nil ? (base: try cache.topRows(baseDir), new: try cache.topRows(dir)) : nil
                // Merged from each side's CPU tree, each made once per run and transforms (and
                // already made for a run whose CPU view was asked for or prepared).
                let tree = try cache.tree(dir, key: key) { cache in
                    ProfileViews.FlameTree.differential(new: try cache.cpuTree(dir, transforms: tf),
                                                        base: try cache.cpuTree(baseDir, transforms: baseTransforms))
                }
                // A zoom or a search asks for the differential tree alone.
                if drawn.zoom != nil || drawn.match != nil { return try drawn.json(tree) }
                let new = try cache.load(dir, transforms: tf).profile
                let base = try cache.load(baseDir, transforms: baseTransforms).profile
                let (rows, tested) = try ProfileViews.comparison(base: base, new: new) { names in
                    // Each side's own names are the shared ones (no short name told apart across
                    // the two): each run's table, made once, serves every comparison.
                    guard let table, names == [try cache.stackNames(baseDir).functionNames, try cache.stackNames(dir).functionNames] else { return nil }
                    return (table.base.wait(), table.new.wait())
                }
                var out = Data("{\"flame\":".utf8)
                out.append(contentsOf: try drawn.json(tree))
                out.append(contentsOf: Data(",\"table\":".utf8))
                out.append((try? JSON.encode(rows)) ?? Data("[]".utf8))
                out.append(contentsOf: Data(",\"base_runs\":\(base.runs.count),\"new_runs\":\(new.runs.count),\"tested\":\(tested != nil)".utf8))
                if let tested { out.append(contentsOf: Data(",\"alpha\":\(tested.alpha)".utf8)) }
                out.append(UInt8(ascii: "}"))
                return out
            }
            return Responses.json(bytes: out)
        }

        // Profiles uploaded to compare with (pprof or folded), size-limited.
        router.post("/api/uploads") { request, _ in
            var request = request
            let body = try await request.collectBody(upTo: configuration.maxUploadBytes)
            let name = FormQuery(request.uri.query).get("name").map(String.init) ?? "upload"
            let upload = try Uploads.store([UInt8](Data(buffer: body)), name: name, dataDirectory: store.dataDirectory)
            return Responses.json(upload, status: .created)
        }
        router.get("/api/uploads") { _, _ in Responses.json(Uploads.list(dataDirectory: store.dataDirectory)) }
        router.delete("/api/uploads/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let dir = try Uploads.delete(id, dataDirectory: store.dataDirectory)
            await cache.forget(prefix: dir + "/")
            return Responses.json(["deleted": id])
        }
        return router
    }

    struct Empty: Encodable {
        var empty: String
    }

    /// The transforms of a view request: `?tf=KIND:ARG`, repeated, applied in order.
    /// - Throws: ``ServeError`` 400 for a transform that does not parse, or too many.
    static func transforms(_ request: Request) throws -> [StackTransform] {
        let texts = FormQuery(request.uri.query).getAll("tf")
        guard texts.count <= 64 else { throw ServeError(400, "at most 64 transforms (tf=) in one request") }
        return try texts.map { text in
            // No function name holds a control character (folded stacks cannot carry a newline).
            if let bad = text.unicodeScalars.first(where: { $0.value < 0x20 || $0.value == 0x7f }) {
                throw ServeError(400, "transform \(String(text.prefix(60)).debugDescription) holds a control character (U+\(String(format: "%04X", bad.value))); give one transform per tf= parameter")
            }
            do { return try StackTransform(parsing: String(text)) } catch { throw ServeError(400, "\(error)") }
        }
    }

    /// The cache key of a view request: its parts each written with its length (``cacheKey(_:)``),
    /// so that no two requests share a key (a `thread=-1`, a name holding `|` or a newline
    /// once did, and the wrong view stayed cached for the run).
    static func viewKey(view: String, thread: Int? = nil, function: String? = nil, sampleType: String? = nil,
                        transforms: [StackTransform] = [], range: TimeRange? = nil, drawn: DrawnTree = DrawnTree()) -> String {
        cacheKey(["view", view, thread.map(String.init), function, sampleType, transformsKey(transforms),
                  range.map { "\($0.from)-\($0.to)" }]) + drawn.key
    }

    /// `parts` as one key that no other list gives: each part as its UTF-8 length, `:` and
    /// itself, a missing one as `-`.
    static func cacheKey(_ parts: [String?]) -> String {
        parts.map { $0.map { "\($0.utf8.count):\($0)" } ?? "-" }.joined()
    }

    /// The key of a list of transforms (``cacheKey(_:)`` of their text forms).
    static func transformsKey(_ transforms: [StackTransform]) -> String {
        cacheKey(transforms.map(\.description))
    }

    /// The `?thread=` of a view request: a thread id, or nil when not given.
    /// - Throws: ``ServeError`` 400 for anything but a whole number ≥ 0.
    static func thread(_ request: Request) throws -> Int? {
        guard let text = FormQuery(request.uri.query).get("thread") else { return nil }
        guard let t = Int(text), t >= 0, t <= Int(Int32.max) else {
            throw ServeError(400, "thread=\(String(text.prefix(20)).debugDescription): give a thread id, a whole number from 0 (as the Threads tab links it)")
        }
        return t
    }

    /// What a flame graph request asks of its tree: the whole view cut for drawing, the subtree
    /// of a zoomed node (`?zoom=A.B.C`, indices into the tree's names from a root), or the
    /// matched total of a search (`?match=` the names that match as a bit mask, bit k of byte
    /// k/8 for name k, in base64url), over the whole tree.
    struct DrawnTree {
        var zoom: [Int32]?
        var match: [Bool]?

        init() {}

        /// - Throws: ``ServeError`` 400 for a zoom or match that does not parse.
        init(_ request: Request) throws {
            let q = FormQuery(request.uri.query)
            if let z = q.get("zoom") {
                let ids = z.split(separator: ".").map { Int32($0) }
                guard !ids.isEmpty, ids.count <= 4096, ids.allSatisfy({ ($0 ?? -1) >= 0 }) else {
                    throw ServeError(400, "zoom must be name indices joined by '.' (as the page sends them)")
                }
                zoom = ids.map { $0! }
            }
            if let m = q.get("match") {
                var text = String(m).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
                while text.utf8.count % 4 != 0 { text += "=" }
                guard let bytes = Data(base64Encoded: text) else { throw ServeError(400, "match must be a base64url bit mask of names (as the page sends it)") }
                match = (0..<(bytes.count * 8)).map { bytes[bytes.startIndex + $0 / 8] & (1 << UInt8($0 % 8)) != 0 }
            }
        }

        var key: String {
            (zoom.map { "|zoom=" + $0.map(String.init).joined(separator: ".") } ?? "")
                + (match.map { "|match=" + $0.map { $0 ? "1" : "0" }.joined() } ?? "")
        }

        /// The JSON the page asked for of `tree`.
        /// - Throws: ``ServeError`` 404 when the zoomed node is not in the tree.
        func json(_ tree: ProfileViews.FlameTree) throws -> Data {
            if let match {
                return Data("{\"matched\":\(tree.matched(match)),\"total\":\(tree.total)}".utf8)
            }
            guard let cut = tree.drawn(zoom: zoom) else { throw ServeError(404, "no frame at that zoom path in this view") }
            return Data(cut.jsonBytes())
        }
    }

    /// The JSON of one view of run `dir`, cut to `range` (when given) and with `transforms` applied to its profiles.
    static func render(view: String, dir: String, cache: isolated ProfileCache, thread: Int?, function: String? = nil, sampleType: String? = nil,
                       transforms: [StackTransform] = [], range: TimeRange? = nil, drawn: DrawnTree = DrawnTree()) throws -> Data {
        // Flame trees: whole trees are kept (a zoom or a search asks for the same again), the page gets them cut.
        let treeKey = viewKey(view: view, thread: thread, function: function, sampleType: sampleType, transforms: transforms, range: range)
        func flame(_ make: () throws -> ProfileViews.FlameTree) throws -> Data {
            try drawn.json(try cache.tree(dir, key: treeKey) { _ in try make() })
        }
        func json<T: Encodable>(_ value: T) throws -> Data { try JSON.encode(value) }
        // A time range cuts the CPU views (flame graphs, tables, callers, source, threads) to its samples.
        var ranged: Profile?
        if let range, ["cpu", "inverted", "callers", "source", "top", "threads"].contains(view) { ranged = try cache.restricted(dir, range) }
        // The range cuts first, then the transforms rewrite what is left (as `report --transform`).
        func profile() throws -> Profile {
            if let ranged { return transforms.isEmpty ? ranged : ranged.transformed(transforms) }
            return try cache.load(dir, transforms: transforms).profile
        }
        func cpuStacks() throws -> InternedStacks {
            if let range, ranged != nil { return try cache.rangedStacks(dir, range, transforms: transforms) }
            return try cache.cpuStacks(dir, transforms: transforms)
        }
        switch view {
        case "cpu":
            if let thread {
                return try flame {
                    let p = ProfileViews.only(thread: thread, of: try profile())
                    return ProfileViews.flameTree(p.aggregatedStacks(perThread: true, sorted: false), unit: "samples")
                }
            }
            guard let range else { return try drawn.json(try cache.cpuTree(dir, transforms: transforms)) }
            return try flame { try cache.cpuTree(dir, range: range, transforms: transforms) }
        case "inverted":
            return try flame { ProfileViews.invertedTree(try cpuStacks(), unit: "samples") }
        case "callers":
            guard let function, !function.isEmpty else { throw ServeError(400, "give the function as ?fn=NAME") }
            return try json(ProfileViews.callersCallees(try cpuStacks().named, function: function, unit: "samples"))
        case "source":
            guard let function, !function.isEmpty else { throw ServeError(400, "give the function as ?fn=NAME") }
            return try json(ProfileViews.source(try profile(), function: function))
        case "timeline":
            let run = try cache.load(dir)
            let timeline = try cache.timeline(dir)
            guard let timed = timeline.timed else {
                return try json(Empty(empty: timeline.problem.map { "the sample timeline cannot be read: \($0)" }
                    ?? "every sample's time was not recorded for this run (no profile.timeline.tsv): the sprof that recorded it has no --timeline"))
            }
            // Transforms apply here too: a sample whose thread or stack they drop leaves the tracks.
            let kept = transforms.isEmpty ? timed : ProfileViews.kept(timed, of: run.profile, names: try cache.stackNames(dir), transforms: transforms)
            return try json(ProfileViews.timeline(run.profile, timed: kept, names: run.memoryNames))
        case _ where SampleTypeView.named(view) != nil:
            // A view of the table (`wall`, `offcpu`): a job without the type says why.
            let row = SampleTypeView.named(view)!
            let run = try cache.load(dir, transforms: transforms)
            guard let (prof, index) = run.values(of: row.sampleType) else { return try json(Empty(empty: row.notRecorded)) }
            return try flame { sampleTypeTree(prof, index) }
        case "type":
            // Any sample type of the run's profile by name (`?name=alloc_space`), as `--sample-type`.
            guard let name = sampleType, !name.isEmpty else { throw ServeError(400, "give the sample type as ?name=TYPE") }
            let run = try cache.load(dir, transforms: transforms)
            guard let (prof, index) = run.values(of: name) else {
                // The message `--sample-type` gives: the types the profile has.
                do { _ = try run.profile.sampleTypeIndex(selecting: String(name.prefix(40))) } catch { throw ServeError(404, "\(error)") }
                throw ServeError(404, "this run has no '\(name.prefix(40))' values")
            }
            return try flame { sampleTypeTree(prof, index) }
        case "memory":
            let run = try cache.load(dir, transforms: transforms)
            let series = ProfileViews.memory(run.profile, names: run.memoryNames)
            guard !series.isEmpty else {
                return try json(Empty(empty: "memory was not sampled for this job: its run has no memory timeline (profile.memory.tsv); the sprof that recorded it samples none, or sampling was off"))
            }
            return try json(series)
        case "heap", "heap-alloc", "heap-inuse":
            return try HeapView.render(view, runDirectory: dir)
        case "top":
            // The cut and the transformed profiles keep the run's functions, so its names serve them.
            return try json(ProfileViews.top(try profile(), names: try cache.stackNames(dir).functionNames))
        case "threads":
            let rows = ProfileViews.threads(try profile())
            guard !rows.isEmpty else { return try json(Empty(empty: "this profile has no thread information")) }
            return try json(rows)
        case "provenance":
            let run = try cache.load(dir, transforms: transforms)
            return try json(["source": run.source, "lines": run.profile.metadata.provenanceLines.joined(separator: "\n")])
        default:
            throw ServeError(404, "no view \(String(view.prefix(40)).debugDescription); views: cpu, inverted, callers, source, timeline, \(SampleTypeView.table.map(\.name).joined(separator: ", ")), type, memory, heap, heap-alloc, heap-inuse, top, threads, provenance")
        }
    }

    /// The flame graph of sample type `index` of `profile`, in the type's unit.
    static func sampleTypeTree(_ profile: Profile, _ index: Int) -> ProfileViews.FlameTree {
        ProfileViews.flameTree(profile.aggregatedStacks(valueIndex: index, sorted: false), unit: profile.sampleTypes[index].unit)
    }

    /// The directory of job `id` when it holds its runs merged (`profile.pb.gz`, a repeat job's).
    /// A repeat job stopped before its last run by a server older than the merge of stopped
    /// jobs has none: its runs are merged when first asked for.
    static func mergedDirectory(_ store: JobStore, _ id: String) async throws -> String {
        let dir = try await store.directory(of: id)
        let job = try await store.job(id)
        if !FileManager.default.fileExists(atPath: dir + "/profile.pb.gz"), job.state == .done, job.options.runs > 1, job.runsDone >= 1 {
            await Task.detached { SprofProcessEngine.mergeRuns(jobDirectory: dir, runs: job.runsDone) }.value
        }
        guard FileManager.default.fileExists(atPath: dir + "/profile.pb.gz") else {
            throw ServeError(404, "job \(String(id.prefix(70))) has no merged profile of its runs: only a finished repeat job (repeat 2 or more) has one")
        }
        return dir
    }

    static func runDirectory(_ store: JobStore, _ context: BasicRequestContext) async throws -> String {
        let dir = try await store.directory(of: context.parameters.get("id") ?? "")
        let runText = context.parameters.get("run") ?? ""
        guard let run = Int(runText), run >= 1, run <= JobOptions.maxRepeat else {
            throw ServeError(400, "invalid run \(String(runText.prefix(20)).debugDescription): runs are numbered from 1")
        }
        return dir + "/runs/\(run)"
    }

    /// The job options that are numbers (the rest are strings and booleans).
    static let numericOptions = ["frequency", "period", "repeat"]

    static func decodeSpec(_ data: Data) throws -> JobSpec {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ServeError(400, "the body must be a JSON object: {\"command\": [\"prog\", \"arg\"], \"options\": {…}}")
        }
        for key in object.keys where key != "command" && key != "options" {
            throw ServeError(400, "unknown field \(String(key.prefix(40)).debugDescription): the body has \"command\" and \"options\"")
        }
        if let options = object["options"] as? [String: Any] {
            let known = Set(JobOptions.CodingKeys.allCases.map(\.rawValue))
            for key in options.keys.sorted() where !known.contains(key) {
                throw ServeError(400, "unknown option \(String(key.prefix(40)).debugDescription); options: \(known.sorted().joined(separator: ", "))")
            }
            // JSONDecoder reports `"period": -1` (or one beyond 64 bits) as invalid JSON, without the
            // field: say which. These are the options' only numbers.
            for key in Self.numericOptions {
                if let n = options[key] as? NSNumber, n.doubleValue.rounded() != n.doubleValue || n.doubleValue < 0 || n.doubleValue >= 0x1p63 {
                    throw ServeError(400, "options.\(key): must be a positive whole number below 2^63, not \(n)")
                }
            }
        }
        do {
            return try JSONDecoder().decode(JobSpec.self, from: data)
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            // Name the type the field wants: an option's, or the command's.
            let wanted = field.hasPrefix("command") ? "command is an array of strings"
                : Self.numericOptions.map({ "options." + $0 }).contains(field) ? "\(field) is a number, not a string"
                : "see the README for the options' types"
            throw ServeError(400, "\(field): wrong type (\(wanted))")
        } catch DecodingError.keyNotFound(let key, _) {
            throw ServeError(400, "missing \"\(key.stringValue)\": the body is {\"command\": [\"prog\", \"arg\"], \"options\": {…}}")
        } catch {
            throw ServeError(400, "invalid job: \(error)")
        }
    }

    /// Server-Sent Events: `event: state|progress|deleted` and the job as JSON per message.
    static func sse(_ stream: AsyncStream<JobEvent>) -> Response {
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            for await event in stream {
                let data = JSON.string(event.job)
                try await writer.write(ByteBuffer(string: "event: \(event.kind)\ndata: \(data)\n\n"))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// The query's parameters as a form encodes them (`application/x-www-form-urlencoded`): `+` is a
/// space, then percent escapes are decoded, so `%2B` stays a plus. Hummingbird's
/// `queryParameters` leaves `+` as is, and a client that encodes a space that way (curl's
/// `--data-urlencode`, Python's requests) asked for `copy<[u8;+32]>`, which no sample has.
struct FormQuery {
    let pairs: [(key: Substring, value: Substring)]

    init(_ query: String?) {
        guard let query, !query.isEmpty else {
            pairs = []
            return
        }
        func decode(_ s: Substring) -> Substring {
            let spaced = s.replacingOccurrences(of: "+", with: " ")
            return Substring(spaced.removingPercentEncoding ?? spaced)
        }
        pairs = query.split(separator: "&").map { part in
            guard let eq = part.firstIndex(of: "=") else { return (key: decode(part), value: "") }
            return (key: decode(part[..<eq]), value: decode(part[part.index(after: eq)...]))
        }
    }

    /// The first value of `key`.
    func get(_ key: String) -> Substring? { pairs.first { $0.key == key }?.value }
    /// Every value of `key`, in order.
    func getAll(_ key: String) -> [Substring] { pairs.filter { $0.key == key }.map(\.value) }
}
