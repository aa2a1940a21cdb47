import Foundation
import GRDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Migrates the database at `path`, holding an exclusive lock across processes.
///
/// GRDB's migrator reads which migrations were applied before running them, so two processes that
/// open a new database at once (`sitesync-server serve &` then `token create`) could both run the
/// same migration. The lock is `flock` on a sidecar file, `PATH-lock`, beside SQLite's own `-wal`
/// and `-shm`. It is never the database file itself: closing any descriptor of that file would
/// release the POSIX locks SQLite holds on it in this process.
public func migrate(_ migrator: DatabaseMigrator, _ writer: any DatabaseWriter, lockingFileAt path: String) throws {
    let lockPath = path + "-lock"
    let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else {
        throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot open \(lockPath) to migrate \(path)."])
    }
    defer { close(descriptor) }
    while flock(descriptor, LOCK_EX) != 0 {
        guard errno == EINTR else {
            throw CocoaError(.fileLocking, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot lock \(lockPath) to migrate \(path)."])
        }
    }
    defer { flock(descriptor, LOCK_UN) }
    try migrator.migrate(writer)
}
