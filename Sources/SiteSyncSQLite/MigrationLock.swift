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
        throw CocoaError(
            .fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot open \(lockPath) to open \(path)."])
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

/// The lock that says a server is serving an SQLite database: `flock` on a sidecar file,
/// `PATH-serving`, shared by every server process that serves the file and held for as long as it
/// serves. A command that needs the file to itself (`store copy`) takes it exclusively, without
/// waiting: it cannot have it while any server serves the file, and no server starts while it holds
/// it. The lock goes with the process, however it ends.
public final class ServingLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }

    /// The sidecar file of the database at `path`.
    public static func lockPath(_ path: String) -> String { path + "-serving" }

    /// Takes the lock of the database at `path`, shared (a server) or exclusive (a command that needs
    /// the file alone), without waiting; nil when another process holds it the other way.
    public static func acquire(_ path: String, exclusive: Bool) throws -> ServingLock? {
        let lockPath = lockPath(path)
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CocoaError(
                .fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot open \(lockPath) to lock \(path)."])
        }
        while flock(descriptor, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            close(descriptor)
            if errno == EWOULDBLOCK { return nil }
            throw CocoaError(.fileLocking, userInfo: [NSFilePathErrorKey: lockPath, NSLocalizedDescriptionKey: "Cannot lock \(lockPath)."])
        }
        return ServingLock(descriptor: descriptor)
    }
}
