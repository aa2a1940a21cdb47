import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

/// A site laptop's local SQLite replica: the records, their field versions, the outbox and the pull cursor.
///
/// Every write, through this type or as raw SQL on ``writer``, is tracked by triggers that record it in
/// the outbox in the same transaction. Changes pulled from the server are applied without tracking.
///
/// ```swift
/// let replica = try Replica.open(path: "sitesync.sqlite", schema: TrialSchema.current)
/// try replica.initialize(site: "S01", user: "A. Rivera", serverURL: url, token: token)
/// let id = try replica.put("subjects", ["screening_no": .text("S01-001")])
/// ```
public struct Replica: Sendable {
    /// The database; raw SQL writes through it are tracked like any other.
    public let writer: any DatabaseWriter
    /// The tables this replica knows.
    public let schema: Schema
    let state: ReplicaState
    /// The codes of the tracked tables in the shadow rows.
    let tableCodes: TableCodes

    /// Opens (creating and migrating if needed) the replica stored at `path`, in WAL mode.
    public static func open(path: String, schema: Schema, wallClock: @escaping @Sendable () -> Int64 = HybridLogicalClock.systemMilliseconds) throws -> Replica {
        let state = ReplicaState(clock: HybridLogicalClock(wallClock: wallClock))
        return try withMigrationLock(path) {
            let existed = FileManager.default.fileExists(atPath: path)
            let pool = try DatabasePool(path: path, configuration: configuration(state))
            if !existed {
                // The file holds the server token: keep it readable by its owner only.
                try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            }
            return try Replica(writer: pool, schema: schema, state: state)
        }
    }

    /// Creates a replica in memory, for tests.
    public static func inMemory(schema: Schema, wallClock: @escaping @Sendable () -> Int64 = HybridLogicalClock.systemMilliseconds) throws -> Replica {
        let state = ReplicaState(clock: HybridLogicalClock(wallClock: wallClock))
        return try Replica(writer: DatabaseQueue(configuration: configuration(state)), schema: schema, state: state)
    }

    private init(writer: any DatabaseWriter, schema: Schema, state: ReplicaState) throws {
        self.writer = writer
        self.schema = schema
        self.state = state
        try Replica.migrator(schema: schema).migrate(writer)
        tableCodes = try writer.read { db in try TableCodes(db) }
        try writer.read { db in
            guard let meta = try Row.fetchOne(db, sql: "SELECT replica_id, site, user, server_url, token, hlc FROM _sitesync_meta") else { return }
            state.current = ReplicaIdentity(
                replicaID: meta["replica_id"], site: meta["site"], user: meta["user"],
                serverURL: URL(string: meta["server_url"])!, token: meta["token"]
            )
            // Every HLC this replica issued is either still pending or at most the persisted clock.
            let pending = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM _sitesync_outbox") ?? 0
            state.clock.receive(HLC(rawValue: max(meta["hlc"], pending)))
        }
    }

    /// Who this replica is, or nil before `initialize`.
    public var identity: ReplicaIdentity? { state.current }

    /// The replica's hybrid logical clock.
    public var clock: HybridLogicalClock { state.clock }

    private static func configuration(_ state: ReplicaState) -> Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // Called by the triggers on every tracked write: registered with SQLite directly.
            state.installTrackingFunctions(db)
            db.add(function: DatabaseFunction("sitesync_replica", argumentCount: 0, pure: false) { _ in
                guard let identity = state.current else { throw DatabaseError(message: ReplicaError.notInitialized.message) }
                return identity.replicaID
            })
            db.add(function: DatabaseFunction("sitesync_user", argumentCount: 0, pure: false) { _ in
                guard let identity = state.current else { throw DatabaseError(message: ReplicaError.notInitialized.message) }
                return identity.user
            })
        }
        return configuration
    }

    /// Gives the replica its identity: a new random replica id, its site, user, server and token.
    ///
    /// Calling it again keeps the replica id and records, and updates the user, server and token;
    /// the site of a replica cannot change.
    @discardableResult
    public func initialize(site: String, user: String, serverURL: URL, token: String) throws -> ReplicaIdentity {
        guard site == SiteID.all || SiteID.isValid(site) else {
            throw ReplicaError.invalidArgument("Invalid site \"\(site)\": \(SiteID.rule), or * for a reviewer.")
        }
        guard !user.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ReplicaError.invalidArgument("A user name is required: it is recorded on every change.")
        }
        guard let scheme = serverURL.scheme, ["http", "https"].contains(scheme), serverURL.host != nil else {
            throw ReplicaError.invalidArgument("The server must be an http:// or https:// URL; got \(serverURL.absoluteString).")
        }
        let identity = try writer.write { db -> ReplicaIdentity in
            if let existing = try Row.fetchOne(db, sql: "SELECT replica_id, site FROM _sitesync_meta") {
                let existingSite: String = existing["site"]
                guard existingSite == site else { throw ReplicaError.alreadyInitialized(site: existingSite) }
                try db.execute(
                    sql: "UPDATE _sitesync_meta SET user = ?, server_url = ?, token = ?",
                    arguments: [user, serverURL.absoluteString, token]
                )
                try installTracking(db)
                return ReplicaIdentity(replicaID: existing["replica_id"], site: site, user: user, serverURL: serverURL, token: token)
            }
            let identity = ReplicaIdentity(replicaID: ReplicaIdentity.newReplicaID(), site: site, user: user, serverURL: serverURL, token: token)
            try db.execute(
                sql: """
                    INSERT INTO _sitesync_meta (id, replica_id, site, user, server_url, token, hlc, cursor, created_at)
                    VALUES (1, ?, ?, ?, ?, ?, 0, '{}', ?)
                    """,
                arguments: [identity.replicaID, site, user, serverURL.absoluteString, token, Timestamp.now()]
            )
            try installTracking(db)
            return identity
        }
        state.current = identity
        return identity
    }

    /// Reinstalls the change-tracking triggers of every table, with the stored identity.
    private func installTracking(_ db: Database) throws {
        for table in schema.tables {
            try Replica.installTracking(db, table: table)
        }
    }

    /// The identity, or ``ReplicaError/notInitialized`` before `initialize`.
    public func requireIdentity() throws -> ReplicaIdentity {
        guard let identity = state.current else { throw ReplicaError.notInitialized }
        return identity
    }
}

/// ISO 8601 timestamps as stored and shown.
enum Timestamp {
    static func now() -> String { Date().formatted(.iso8601) }
}
