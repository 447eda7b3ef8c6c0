import SprofCore
import SprofRecording
import SprofUnwind
import SprofSymbols
import SprofProfile

/// Threads of the profile as named when sampled, names read from /proc where no record gave one.
extension ProfileBuilder {
    func threadName(_ process: ProcessState, tid: Int32) -> String {
        if let name = process.threads[tid] { return name }
        guard namesThreadsFromProc else { return process.name }
        if let known = procThreadNames[tid] { return known }
        let name = readTextFile("/proc/\(process.pid)/task/\(tid)/comm").map { String($0.prefix { $0 != "\n" }) } ?? process.name
        procThreadNames[tid] = name
        return name
    }

    func threadIndex(_ process: ProcessState, tid: Int32) -> Int {
        if let hit = threadCache[tid], hit.pid == process.pid, hit.generation == process.generation { return hit.index }
        let key = ThreadKey(pid: process.pid, tid: tid, name: threadName(process, tid: tid), processName: process.name)
        let id: Int
        if let known = threadIDs[key] {
            id = known
        } else {
            id = threadList.count
            threadList.append(key)
            threadIDs[key] = id
        }
        threadCache[tid] = (process.pid, process.generation, id)
        return id
    }
}
