import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

/// A site laptop's local SQLite replica: the records, their field versions, the outbox and the pull cursor.
///
/// Every write, through this type, as raw SQL on ``writer``, or from any other SQLite client (the
/// `sqlite3` shell, Python's `sqlite3` module), is tracked by plain-SQL triggers that record it in the
/// outbox in the same transaction. Changes pulled from the server are applied without tracking.
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
    ///
    /// - Parameters:
    ///   - path: the replica's file; created with mode 0600 when missing, since it holds patient data
    ///     and the laptop's credential.
    ///   - schema: the tables the replica holds, `TrialSchema.current` for the trial.
    ///   - wallClock: the laptop's wall clock in milliseconds since 1970; nil for the system's. One of
    ///     the caller's (a test's or a simulation's) stamps the writes made through this type; raw
    ///     SQL and other processes stamp theirs with the system's.
    ///   - maximumClockSkew: how far ahead of `wallClock` a server's reply may be; a reply further
    ///     ahead is refused (``SyncError/clockAhead(aheadBy:limit:)``) and nothing of it recorded.
    public static func open(
        path: String,
        schema: Schema,
        wallClock: (@Sendable () -> Int64)? = nil,
        maximumClockSkew: Duration = SyncProtocol.defaultMaximumClockSkew
    ) throws -> Replica {
        let state = ReplicaState(wallClock: wallClock, maximumClockSkew: maximumClockSkew, path: path)
        // A new file is created with mode 0600 first: it holds the server credential and patient data.
        return try withMigrationLock(path) {
            try Replica(writer: DatabasePool(path: path, configuration: configuration), schema: schema, state: state)
        }
    }

    /// Creates a replica in memory, for tests.
    public static func inMemory(
        schema: Schema,
        wallClock: (@Sendable () -> Int64)? = nil,
        maximumClockSkew: Duration = SyncProtocol.defaultMaximumClockSkew
    ) throws -> Replica {
        let state = ReplicaState(wallClock: wallClock, maximumClockSkew: maximumClockSkew, path: "")
        return try Replica(writer: DatabaseQueue(configuration: configuration), schema: schema, state: state)
    }

    /// A copy of this replica in memory, with its records, identity, outbox and clock, for tests
    /// and previews: setting up a replica creates a hundred triggers, copying one only its pages.
    ///
    /// The copy has this replica's id and credential, so it must never sync alongside the original:
    /// the server would refuse the second one to diverge (`replica_diverged`).
    public func inMemoryCopy(
        wallClock: (@Sendable () -> Int64)? = nil,
        maximumClockSkew: Duration = SyncProtocol.defaultMaximumClockSkew
    ) throws -> Replica {
        let state = ReplicaState(wallClock: wallClock, maximumClockSkew: maximumClockSkew, path: "")
        let copy = try DatabaseQueue(configuration: Replica.configuration)
        try writer.backup(to: copy)
        return try Replica(writer: copy, schema: schema, state: state)
    }

    private init(writer: any DatabaseWriter, schema: Schema, state: ReplicaState) throws {
        self.writer = writer
        self.schema = schema
        self.state = state
        try Replica.migrator(schema: schema).migrate(writer)
        tableCodes = try writer.read { db in try TableCodes(db) }
        try writer.read { db in
            // Every HLC this replica issued or received is at most the stored clock.
            state.clock.receive(try ClockSQL.read(db))
            guard let meta = try Row.fetchOne(db, sql: "SELECT replica_id, site, user, server_url, token, enrolled, ca_certificate FROM _sitesync_meta")
            else { return }
            var identity = ReplicaIdentity(
                replicaID: meta["replica_id"], site: meta["site"], user: meta["user"],
                serverURL: URL(string: meta["server_url"])!, token: meta["token"], isEnrolled: meta["enrolled"]
            )
            identity.certificateAuthority = meta["ca_certificate"]
            state.current = identity
        }
    }

    /// Who this replica is, or nil before `initialize`.
    public var identity: ReplicaIdentity? { state.current }

    /// The replica's hybrid logical clock as stored: the greatest timestamp it issued, had
    /// acknowledged or received. Every tracked write, from any process, advances it.
    public var clock: HLC {
        get throws { try writer.read(ClockSQL.read) }
    }

    /// How the library's connections wait for another writer (another process included): up to 10 s.
    private static var configuration: Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        return configuration
    }

    /// Gives the replica its identity: a new random replica id, its site, user, server and enrolment
    /// token. Nothing is sent: the server registers the id at the replica's enrolment
    /// (``SyncEngine/enrol()``, also run by the first sync), and issues the credential it then syncs with.
    ///
    /// Calling it again keeps the replica id and records, and updates the user, server and enrolment
    /// token; a replica moved to another server enrols there again. The site of a replica cannot change.
    ///
    /// - Parameters:
    ///   - site: the site whose records the laptop keeps, `S01` say; `*` for a reviewer's laptop.
    ///   - user: who enters data on this laptop, stamped on every change and shown in the audit trail.
    ///   - serverURL: the sync server, `http://` or `https://`.
    ///   - token: the site's enrolment token, from `sitesync-server token create`.
    ///   - replicaID: the id of a new replica; nil (the default) draws a random one. Tools and
    ///     tests that replay a history choose it; an id another laptop holds is refused at enrolment.
    /// - Throws: ``ReplicaError`` naming a bad argument, or a site other than the replica's.
    @discardableResult
    public func initialize(site: String, user: String, serverURL: URL, token: String, replicaID: String? = nil) throws -> ReplicaIdentity {
        if let replicaID, !ReplicaID.isValid(replicaID) {
            throw ReplicaError.invalidArgument("Invalid replica id \"\(TextRules.brief(replicaID, maxBytes: 64))\": \(ReplicaID.rule).")
        }
        guard site == SiteID.all || SiteID.isValid(site) else {
            throw ReplicaError.invalidArgument("Invalid site \"\(site)\": \(SiteID.rule), or * for a reviewer.")
        }
        if let problem = UserName.problem(user) { throw ReplicaError.invalidArgument(problem) }
        guard let scheme = serverURL.scheme, ["http", "https"].contains(scheme), serverURL.host != nil else {
            throw ReplicaError.invalidArgument("The server must be an http:// or https:// URL; got \(serverURL.absoluteString).")
        }
        let identity = try writer.write { db -> ReplicaIdentity in
            if let existing = try Row.fetchOne(db, sql: "SELECT replica_id, site, server_url, token, enrolled FROM _sitesync_meta") {
                let existingSite: String = existing["site"]
                guard existingSite == site else { throw ReplicaError.alreadyInitialized(site: existingSite) }
                // The replica's own credential stays valid on the server that issued it.
                let enrolled = existing["enrolled"] && existing["server_url"] == serverURL.absoluteString
                let credential: String = enrolled ? existing["token"] : token
                try db.execute(
                    sql: """
                        UPDATE _sitesync_meta SET user = ?, server_url = ?, token = ?, enrolment_token = NULL, enrolled = ?,
                            credential = CASE WHEN ? THEN credential END
                        """,
                    arguments: [user, serverURL.absoluteString, credential, enrolled, enrolled]
                )
                try installTracking(db)
                var identity = ReplicaIdentity(
                    replicaID: existing["replica_id"], site: site, user: user, serverURL: serverURL, token: credential, isEnrolled: enrolled
                )
                identity.certificateAuthority = state.current?.certificateAuthority
                return identity
            }
            let identity = ReplicaIdentity(replicaID: replicaID ?? ReplicaID.generate(), site: site, user: user, serverURL: serverURL, token: token)
            try db.execute(
                sql: """
                    INSERT INTO _sitesync_meta (id, replica_id, site, user, server_url, token, cursor, created_at)
                    VALUES (1, ?, ?, ?, ?, ?, '{}', ?)
                    """,
                arguments: [identity.replicaID, site, user, serverURL.absoluteString, token, state.clock.now]
            )
            try installTracking(db)
            return identity
        }
        state.current = identity
        return identity
    }

    /// Trusts only the certificate authorities in `pem` (PEM certificates) for the server's
    /// HTTPS certificate, instead of the system's: for a server whose certificate a private CA
    /// signed. Nil goes back to the system's authorities.
    ///
    /// - Throws: ``ReplicaError/invalidArgument(_:)`` when `pem` holds no PEM certificate.
    public func trustCertificateAuthority(_ pem: String?) throws {
        var identity = try requireIdentity()
        if let pem { try HTTPTransport.checkCertificateAuthority(pem) }
        try writer.write { db in try db.execute(sql: "UPDATE _sitesync_meta SET ca_certificate = ?", arguments: [pem]) }
        identity.certificateAuthority = pem
        state.current = identity
    }

    /// Reinstalls the change-tracking triggers of every table, with the stored identity.
    func installTracking(_ db: Database) throws {
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
