import Foundation

/// An update for `GET /api/jobs/ID/events`: the job as it is now, and why it was sent.
public struct JobEvent: Sendable {
    /// `state` for a change of state, `progress` for new figures.
    public var kind: String
    /// The job after the change.
    public var job: Job
}

/// The jobs, on disk and in memory, and the queue that runs them one at a time.
///
/// Layout of `DIR/jobs/ID/`: `spec.json` (the request, never changed), `state.json` (the ``Job``),
/// `runs/N/` for run N (`profile.folded`,
/// `profile.svg`, `profile.pb.gz` when sprof writes it, `output.log` with the command's output and
/// sprof's messages). Every file is written atomically. On start, the list is read back; a job
/// found `running` was cut short by a stop or crash of the server and becomes `interrupted`.
public actor JobStore {
    /// The data directory.
    public nonisolated let dataDirectory: String
    private let engine: any JobEngine
    /// The engine's run in progress (see ``runJob(_:)``).
    private var runTask: Task<RunOutcome, Never>?
    private var jobs: [String: Job] = [:]
    private var queue: [String] = []
    private var runningID: String?
    private var deleting: Set<String> = []
    private var stopping: Set<String> = []
    private var subscribers: [String: [UUID: AsyncStream<JobEvent>.Continuation]] = [:]
    private var listSubscribers: [UUID: AsyncStream<JobEvent>.Continuation] = [:]
    private var worker: Task<Void, Never>?
    private var lastSavedMs: [String: Int64] = [:]
    private var shuttingDown = false

    /// Opens (creating) `dataDirectory` and reads its jobs back.
    /// - Throws: ``ServeError`` when the directory is not writable.
    public init(dataDirectory: String, engine: any JobEngine) throws {
        try DataFiles.checkWritable(dataDirectory)
        try DataFiles.makeDirectory(dataDirectory + "/jobs")
        self.dataDirectory = dataDirectory
        self.engine = engine
        var loaded: [String: Job] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory + "/jobs")) ?? []
        for name in names.sorted() where JobID.isValid(name) {
            let dir = "\(dataDirectory)/jobs/\(name)"
            guard var job = try? DataFiles.readJSON(Job.self, from: dir + "/state.json") else { continue }
            guard job.id == name else { continue }
            if job.state == .running {
                job.state = .interrupted
                job.error = "interrupted: the server stopped while this job was running"
                job.finishedMs = job.finishedMs ?? nowMs()
                try? DataFiles.writeJSON(job, to: dir + "/state.json")
            }
            if Self.adoptOrphanedRuns(&job, directory: dir) { try? DataFiles.writeJSON(job, to: dir + "/state.json") }
            loaded[name] = job
        }
        jobs = loaded
        queue = loaded.values.filter { $0.state == .queued }.sorted { ($0.createdMs, $0.id) < ($1.createdMs, $1.id) }.map(\.id)
    }

    /// Starts the worker that runs queued jobs (once).
    public func start() {
        guard worker == nil else { return }
        worker = Task { await self.work() }
    }

    /// How long ``shutdown()`` waits for the running job's profile to be written.
    static let shutdownWaitNs: UInt64 = 15_000_000_000

    /// Stops the server's side of things: the worker, the recording in progress (SIGINT to sprof,
    /// which still writes its profile, as Stop does) and every event stream. The running job's
    /// end is waited for (up to ``shutdownWaitNs``): it ends `done`, saying the server's stop
    /// stopped it, since its recording ended with the server and did not outlive it. A job still
    /// running then is marked `interrupted` (its profile is picked up later, see
    /// ``adoptOrphanedRuns(_:directory:)``); after a crash the next start does it.
    public func shutdown() async {
        shuttingDown = true
        worker?.cancel()
        worker = nil
        if let id = runningID {
            stopping.insert(id)
            engine.cancel()
            runTask?.cancel()
            let deadline = DispatchTime.now().uptimeNanoseconds + Self.shutdownWaitNs
            while runningID == id && DispatchTime.now().uptimeNanoseconds < deadline {
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
            if runningID == id {
                update(id) { j in
                    j.state = .interrupted
                    j.error = "interrupted: the server stopped while this job was running"
                    j.finishedMs = nowMs()
                }
            }
        }
        engine.cancel()
        runTask?.cancel()
        for group in subscribers.values { for c in group.values { c.finish() } }
        subscribers = [:]
        for c in listSubscribers.values { c.finish() }
        listSubscribers = [:]
    }

    /// All jobs, newest first.
    public func list() -> [Job] {
        for (id, job) in jobs where job.state == .interrupted { adopt(id, job) }
        return jobs.values.sorted { ($0.createdMs, $0.id) > ($1.createdMs, $1.id) }
    }

    /// One job.
    /// - Throws: ``ServeError`` 404 for an unknown id, 400 for an id that is not one.
    public func job(_ id: String) throws -> Job {
        guard JobID.isValid(id) else { throw ServeError(400, "invalid job id \(String(id.prefix(80)).debugDescription): ids are lowercase letters, digits and '-'") }
        guard let job = jobs[id] else { throw ServeError(404, "no job \(id): it does not exist or was deleted") }
        if job.state == .interrupted { adopt(id, job) }
        return jobs[id] ?? job
    }

    private func adopt(_ id: String, _ job: Job) {
        var j = job
        let dir = "\(dataDirectory)/jobs/\(id)"
        if Self.adoptOrphanedRuns(&j, directory: dir) {
            jobs[id] = j
            try? DataFiles.writeJSON(j, to: dir + "/state.json")
            publish(JobEvent(kind: "state", job: j))
        }
    }

    /// The note on a job whose recording outlived the server.
    static let adoptedNotice = "the recording outlived the server: its profile was picked up from the job directory"

    /// Counts the runs of an interrupted job whose profiles are on disk after all. A crash of the
    /// server does not end its `sprof run` (its own process group), which still writes a complete
    /// profile, atomically, maybe after the next server has started: so this is checked again
    /// whenever the job is read, until every run is accounted for.
    static func adoptOrphanedRuns(_ job: inout Job, directory: String) -> Bool {
        guard job.state == .interrupted, job.runsDone < job.options.runs else { return false }
        let fm = FileManager.default
        var n = job.runsDone
        while n < job.options.runs, ProfileFiles.kinds.contains(where: { fm.fileExists(atPath: "\(directory)/runs/\(n + 1)/profile\($0)") }) {
            n += 1
        }
        guard n > job.runsDone else { return false }
        job.runsDone = n
        job.samples = ProfileFiles.sampleCount(runDirectory: "\(directory)/runs/\(n)")
        if !job.notices.contains(adoptedNotice) { job.notices.append(adoptedNotice) }
        return true
    }

    /// Stops the running job `id` the way Ctrl-C stops `sprof run`: SIGINT, so that the profile
    /// recorded so far is written and kept, and the job ends `done` (later runs of a repeat job
    /// are not started).
    /// - Throws: ``ServeError`` 404 for an unknown job, 409 for a job that is not running.
    public func stop(_ id: String) throws -> Job {
        let job = try job(id)
        guard job.state == .running, runningID == id else {
            throw ServeError(409, "job \(id) is \(job.state.rawValue), not running: only a running job can be stopped (delete a queued one)")
        }
        stopping.insert(id)
        engine.cancel()
        runTask?.cancel()
        return job
    }

    /// The directory of job `id` (checked).
    public func directory(of id: String) throws -> String {
        _ = try job(id)
        return "\(dataDirectory)/jobs/\(id)"
    }

    /// Queues a job whose options were validated.
    public func create(command: [String], options: JobOptions, notices: [String] = []) throws -> Job {
        var id = JobID.make()
        while jobs[id] != nil { id = JobID.make() }
        let dir = "\(dataDirectory)/jobs/\(id)"
        var job = Job(id: id, command: command, options: options, createdMs: nowMs())
        job.notices = notices
        try DataFiles.makeDirectory(dir)
        try DataFiles.writeJSON(JobSpec(command: command, options: options), to: dir + "/spec.json")
        try DataFiles.writeJSON(job, to: dir + "/state.json")
        jobs[id] = job
        queue.append(id)
        publish(JobEvent(kind: "state", job: job))
        return job
    }

    /// Deletes a job and its directory; a running job is stopped first.
    public func delete(_ id: String) async throws {
        let job = try job(id)
        if job.state == .running || runningID == id {
            deleting.insert(id)
            engine.cancel()
            runTask?.cancel()
            while runningID == id { try? await Task.sleep(nanoseconds: 50_000_000) }
        }
        queue.removeAll { $0 == id }
        jobs[id] = nil
        deleting.remove(id)
        let dir = "\(dataDirectory)/jobs/\(id)"
        // Rename first, then remove: a crash in between leaves a hidden directory, not half a job.
        let trash = "\(dataDirectory)/jobs/.deleted-\(id)-\(UInt32.random(in: 0 ... .max))"
        if rename(dir, trash) == 0 {
            try? FileManager.default.removeItem(atPath: trash)
        } else {
            try? FileManager.default.removeItem(atPath: dir)
        }
        for c in subscribers[id]?.values ?? [:].values { c.finish() }
        subscribers[id] = nil
        var gone = job
        gone.state = .failed
        gone.error = "deleted"
        for c in listSubscribers.values { c.yield(JobEvent(kind: "deleted", job: gone)) }
    }

    /// Events for one job: its current state at once, then every change, ending after a final state.
    public func events(_ id: String) throws -> AsyncStream<JobEvent> {
        let job = try job(id)
        let key = UUID()
        let (stream, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .bufferingNewest(64))
        continuation.yield(JobEvent(kind: "state", job: job))
        if job.state.isFinal {
            continuation.finish()
            return stream
        }
        subscribers[id, default: [:]][key] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribe(id, key) } }
        return stream
    }

    /// Events for every job (the list page): changes only.
    public func allEvents() -> AsyncStream<JobEvent> {
        let key = UUID()
        let (stream, continuation) = AsyncStream<JobEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        listSubscribers[key] = continuation
        continuation.onTermination = { _ in Task { await self.unsubscribeList(key) } }
        return stream
    }

    private func unsubscribe(_ id: String, _ key: UUID) { subscribers[id]?[key] = nil }
    private func unsubscribeList(_ key: UUID) { listSubscribers[key] = nil }

    private func publish(_ event: JobEvent) {
        for c in subscribers[event.job.id]?.values ?? [:].values {
            c.yield(event)
            if event.kind == "state" && event.job.state.isFinal { c.finish() }
        }
        if event.kind == "state" && event.job.state.isFinal { subscribers[event.job.id] = nil }
        for c in listSubscribers.values { c.yield(event) }
    }

    private func update(_ id: String, kind: String = "state", _ change: (inout Job) -> Void) {
        guard var job = jobs[id] else { return }
        change(&job)
        jobs[id] = job
        // Progress is saved at most once a second; state changes always.
        let now = nowMs()
        if kind == "state" || now - (lastSavedMs[id] ?? 0) >= 1000 {
            lastSavedMs[id] = now
            try? DataFiles.writeJSON(job, to: "\(dataDirectory)/jobs/\(id)/state.json")
        }
        publish(JobEvent(kind: kind, job: job))
    }

    private func progress(_ id: String, _ p: JobProgress) {
        guard jobs[id]?.state == .running else { return }
        update(id, kind: "progress") { $0.progress = p }
    }

    // MARK: The queue

    private func work() async {
        while !Task.isCancelled && !shuttingDown {
            guard let id = queue.first else {
                try? await Task.sleep(nanoseconds: 100_000_000)
                continue
            }
            queue.removeFirst()
            await runJob(id)
        }
    }

    private func runJob(_ id: String) async {
        guard let job = jobs[id], job.state == .queued else { return }
        runningID = id
        defer { runningID = nil }
        let dir = "\(dataDirectory)/jobs/\(id)"
        update(id) { $0.state = .running; $0.startedMs = nowMs() }
        var last = RunOutcome(profileWritten: false, exitStatus: 1)
        for run in 1...job.options.runs {
            let runDir = "\(dir)/runs/\(run)"
            do { try DataFiles.makeDirectory(runDir) } catch {
                update(id) { $0.state = .failed; $0.error = "\(error)"; $0.finishedMs = nowMs() }
                return
            }
            // In a task of its own, cancelled by a delete, a stop or a shutdown: the cancellation
            // sticks to the task, so one that comes before the engine has started sprof still
            // stops it (engine.cancel() alone found no process then, and the job ran to its end:
            // a 600 s sleep held a delete up for 600 s).
            let engine = self.engine
            let task = Task { () async -> RunOutcome in
                await engine.run(command: job.command, options: job.options, directory: runDir) { [weak self] p in
                    var p = p
                    p.run = run
                    Task { await self?.progress(id, p) }
                }
            }
            runTask = task
            last = await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
            runTask = nil
            // A shutdown stops the run as Stop does, and waits to record how it ended.
            if deleting.contains(id) { return }
            let notices = last.notices
            if !notices.isEmpty {
                update(id) { j in for n in notices where !j.notices.contains(n) { j.notices.append(n) } }
            }
            if !last.profileWritten { break }
            let samples = last.samples ?? ProfileFiles.sampleCount(runDirectory: runDir)
            update(id) {
                $0.runsDone = run
                $0.exitStatus = last.exitStatus
                $0.samples = samples
                $0.lost = last.lost
            }
            if stopping.contains(id) { break }
        }
        let stopped = stopping.remove(id) != nil
        let finalOutcome = last
        // A repeat job's runs also become one profile with `run` labels, the kind `sprof run -r N`
        // writes, next to runs/ (jobs/ID/profile.pb.gz) for `sprof diff` and Compare's "all runs":
        // the runs recorded before a Stop too, as `sprof run -r N` merges those before its Ctrl-C.
        let runsDone = jobs[id]?.runsDone ?? 0
        // Stopped before its last run ended, the run recorded last was the one the Stop cut
        // (the Stop's SIGINT goes to the running sprof): not a run of its own, as on the CLI.
        let cut = stopped && runsDone < job.options.runs
        if finalOutcome.profileWritten, job.options.runs > 1, runsDone >= 1 {
            await Task.detached { SprofProcessEngine.mergeRuns(jobDirectory: dir, runs: runsDone, lastIsPartial: cut) }.value
        }
        update(id) { j in
            j.finishedMs = nowMs()
            if finalOutcome.profileWritten {
                j.state = .done
                if stopped {
                    let by = shuttingDown ? "stopped when the server stopped (SIGINT, as Stop does)" : "stopped with Stop (SIGINT)"
                    var note = "\(by) after \(j.runsDone) of \(j.options.runs) run\(j.options.runs == 1 ? "" : "s"): the profile holds what was recorded until then"
                    if j.options.runs > 1 && j.runsDone < j.options.runs {
                        note += "; all runs (\(j.runsDone) of \(j.options.runs) runs, stopped) are merged, as sprof run -r \(j.options.runs) merges them on Ctrl-C: run \(j.runsDone), cut short by the Stop, is in that profile without a run label, so that sprof diff's per-run shares leave it out"
                    }
                    j.notices.append(note)
                } else if finalOutcome.exitStatus != 0 {
                    j.notices.append("the command exited with status \(finalOutcome.exitStatus)")
                }
            } else {
                j.state = .failed
                switch finalOutcome.exitStatus {
                case 127: j.error = "\(j.command.first ?? ""): command not found"
                case 126: j.error = "\(j.command.first ?? ""): cannot be executed"
                default: j.error = finalOutcome.lastMessage ?? "sprof exited with status \(finalOutcome.exitStatus) without writing a profile"
                }
            }
        }
    }
}
