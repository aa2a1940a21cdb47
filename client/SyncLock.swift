import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Makes the syncs of one replica take turns: within a process, and across processes through an
/// advisory lock (`flock`) on a file beside the replica's (`replica.sqlite-sync.lock`).
///
/// Two syncs of one replica at once would send the same outbox batch twice and race on the pull
/// cursor. The server would apply each change once, but the acknowledgements and cursors of the two
/// would interleave; taking turns keeps every sync a plain sequence of push and pull. The
/// operating system releases the lock of a process that dies, so a crash never leaves it held.
final class SyncLock: Sendable {
    /// The lock file, or nil for a replica in memory, whose syncs only this process can run.
    let path: String?
    /// The turn of a replica in memory; also taken for a file, so that the waits of this process's
    /// syncs poll the file lock one at a time.
    let local: Mutex<Bool>

    init(databasePath: String) {
        path = databasePath.isEmpty || databasePath == ":memory:" || databasePath.hasPrefix("file::memory:") ? nil : databasePath + "-sync.lock"
        local = Mutex(false)
    }
}

extension ReplicaState {
    /// Runs `body` when no other sync of the replica runs, in this process or another; waits for
    /// its turn, checking every few milliseconds, and stops waiting when the task is cancelled.
    func exclusively<T>(_ body: () async throws -> T) async throws -> T {
        while true {
            try Task.checkCancellation()
            if let held = try syncLock.acquire() {
                defer { syncLock.release(held) }
                return try await body()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

extension SyncLock {
    /// The file descriptor holding the lock (-1 for a replica in memory), or nil when another sync
    /// holds it.
    func acquire() throws -> Int32? {
        let taken = local.withLock { busy -> Bool in
            if busy { return false }
            busy = true
            return true
        }
        guard taken else { return nil }
        guard let path else { return -1 }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let code = errno
            local.withLock { $0 = false }
            throw ReplicaError.invalidArgument("Cannot open the sync lock \(path): \(String(cString: strerror(code))).")
        }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return fd }
        close(fd)
        local.withLock { $0 = false }
        return nil
    }

    func release(_ fd: Int32) {
        if fd >= 0 {
            flock(fd, LOCK_UN)
            close(fd)
        }
        local.withLock { $0 = false }
    }
}
