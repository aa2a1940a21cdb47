import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `body` (opening the database at `path` and migrating it) holding an exclusive lock across processes.
///
/// Two processes that open a new database at once (`sitesync-server serve &` then `token create`)
/// would otherwise race twice: on switching the new file to WAL mode, which fails at once with
/// "database is locked", and in GRDB's migrator, which reads which migrations were applied before
/// running them. The lock is `flock` on a sidecar file, `PATH-lock`, beside SQLite's own `-wal` and
/// `-shm`. It is never the database file itself: closing any descriptor of that file would release
/// the POSIX locks SQLite holds on it in this process.
public func withMigrationLock<T>(_ path: String, _ body: () throws -> T) throws -> T {
    let lockPath = path + "-lock"
    let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
        throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot open \(lockPath) to open \(path)."])
    }
    defer { close(descriptor) }
    while flock(descriptor, LOCK_EX) != 0 {
        guard errno == EINTR else {
            throw CocoaError(.fileLocking, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot lock \(lockPath) to open \(path)."])
        }
    }
    defer { flock(descriptor, LOCK_UN) }
    try createPrivately(path)
    return try body()
}

/// Creates the database file at `path`, empty and readable by its owner only (mode 0600), unless
/// it exists. SQLite then opens it as a new database and gives its `-wal` and `-shm` files the same
/// mode, so no byte of a replica (which holds a credential and patient data) or of the server's
/// database is ever readable by other users. A file that exists keeps its mode.
func createPrivately(_ path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    if descriptor >= 0 {
        close(descriptor)
    } else if errno != EEXIST {
        throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "Cannot create \(path)."])
    }
}
