import Foundation
import GRDB
import Logging
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite

/// The embedded store: one SQLite database in WAL mode, through GRDB.
///
/// SQLite has a single writer, so every push transaction is serialised, and per-site sequence
/// numbers are assigned in commit order: a pull never misses a change committed while it reads.
///
/// ```swift
/// let store = try SQLiteSyncStore(path: "sitesync-server.sqlite", schema: TrialSchema.current)
/// ```
public struct SQLiteSyncStore: SyncStore {
    /// The database.
    public let writer: any DatabaseWriter
    let schema: Schema

    /// Opens (creating and migrating if needed) the database at `path`.
    public init(path: String, schema: Schema) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        self = try withMigrationLock(path) {
            try SQLiteSyncStore(writer: DatabasePool(path: path, configuration: configuration), schema: schema)
        }
    }

    /// Uses an existing database (an in-memory `DatabaseQueue` in tests) and migrates it.
    public init(writer: any DatabaseWriter, schema: Schema) throws {
        self.writer = writer
        self.schema = schema
        try migrator.migrate(writer)
    }

    /// Runs `body` in a read transaction; the database's errors become ``StorageError``s.
    func reading<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.read(body)
        } catch let error as DatabaseError {
            throw StorageError(error)
        }
    }

    /// Runs `body` in a write transaction; the database's errors become ``StorageError``s.
    func writing<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.write(body)
        } catch let error as DatabaseError {
            throw StorageError(error)
        }
    }

    public func token(hash: String) async throws -> StoredToken? {
        try await reading { db in try Row.fetchOne(db, sql: "SELECT \(StoredToken.columns) FROM tokens WHERE hash = ?", arguments: [hash]).flatMap(Self.token) }
    }

    public func createToken(hash: String, role: Role, site: String?, label: String?, expiresAt: String?) async throws {
        try await writing { db in
            try db.execute(
                sql: "INSERT INTO tokens (hash, role, site_id, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [hash, role.rawValue, site, label, Date().formatted(.iso8601), expiresAt]
            )
        }
    }

    public func tokens() async throws -> [StoredToken] {
        try await reading { db in
            try Row.fetchAll(db, sql: "SELECT \(StoredToken.columns) FROM tokens ORDER BY created_at, hash").compactMap(Self.token)
        }
    }

    public func revokeTokens(hashes: [String], at time: String) async throws -> Int {
        try await writing { db in
            try db.execute(
                sql: "UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL AND hash IN (SELECT value FROM json_each(?))",
                arguments: [time, String(decoding: try JSONEncoder().encode(hashes), as: UTF8.self)]
            )
            return db.changesCount
        }
    }

    public func recordTokenUse(hash: String, at time: String) async throws {
        try await writing { db in try db.execute(sql: "UPDATE tokens SET last_used_at = ? WHERE hash = ?", arguments: [time, hash]) }
    }

    static func token(_ row: Row) -> StoredToken? {
        Role(rawValue: row["role"]).map {
            StoredToken(
                hash: row["hash"], role: $0, site: row["site_id"], replica: row["replica_id"], label: row["label"], createdAt: row["created_at"],
                expiresAt: row["expires_at"], revokedAt: row["revoked_at"], lastUsedAt: row["last_used_at"]
            )
        }
    }

    public func enrolReplica(
        _ replica: String, tokenHash: String, principal: Principal, label: String, enrolledBy: String, limit: Int
    ) async throws -> Enrolment {
        try await writing { db in
            // Registered already: with this credential, a retry whose answer was lost; with another,
            // another laptop or a copy of this one's file.
            if let owner = try Row.fetchOne(db, sql: "SELECT replica_id FROM tokens WHERE hash = ?", arguments: [tokenHash]) {
                guard owner["replica_id"] as String? == replica else { return .taken }
            } else {
                let enrolled = try Int.fetchOne(db, sql: "SELECT count(*) FROM tokens WHERE enrolled_by = ?", arguments: [enrolledBy]) ?? 0
                guard enrolled < limit else { return .limitReached(enrolled) }
                try db.execute(
                    sql: """
                        INSERT INTO tokens (hash, role, site_id, label, created_at, replica_id, enrolled_by) VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT DO NOTHING
                        """,
                    arguments: [tokenHash, principal.role.rawValue, principal.site, label, Date().formatted(.iso8601), replica, enrolledBy]
                )
                // Another credential holds the replica id already.
                guard db.changesCount == 1 else { return .taken }
            }
            return .enrolled(acked: HLC(rawValue: try Int64.fetchOne(db, sql: "SELECT last_seq FROM replicas WHERE replica_id = ?", arguments: [replica]) ?? 0))
        }
    }
}

extension StorageError {
    /// SQLite's result code and message; a busy database is worth another try.
    init(_ error: DatabaseError) {
        let busy = error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
        self.init(busy ? .unavailable : .failed, code: "\(error.resultCode)", message: error.message ?? "")
    }
}

extension SQLiteSyncStore {
    var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("server-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE tokens (
                        hash TEXT PRIMARY KEY NOT NULL,   -- SHA-256 hex of the token; the token itself is never stored
                        role TEXT NOT NULL,
                        site_id TEXT,
                        label TEXT,
                        created_at TEXT NOT NULL
                    );
                    -- Per-site sequence counter: the commit-serialised section that orders changes for pulls.
                    CREATE TABLE sites (
                        site_id TEXT PRIMARY KEY NOT NULL,
                        seq INTEGER NOT NULL
                    );
                    -- The last sequence number applied per replica, written with the data it covers.
                    CREATE TABLE replicas (
                        replica_id TEXT PRIMARY KEY NOT NULL,
                        last_seq INTEGER NOT NULL,
                        last_applied INTEGER NOT NULL,   -- the answer to the last push, repeated to a retry
                        last_conflicts INTEGER NOT NULL,
                        user TEXT NOT NULL,
                        first_seen TEXT NOT NULL,
                        last_seen TEXT NOT NULL
                    );
                    -- One shadow row per record: its site, its place in the site's sequence and its field stamps
                    -- (hlc, replica, user for every field not in `fields`; `fields` JSON for the others).
                    CREATE TABLE records (
                        tbl TEXT NOT NULL,
                        id TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        seq INTEGER NOT NULL,
                        hlc INTEGER NOT NULL,
                        replica TEXT NOT NULL,
                        user TEXT NOT NULL,
                        fields TEXT,
                        PRIMARY KEY (tbl, id)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX records_pull ON records (site_id, seq);
                    -- Every change received, applied or not: who, when, from which replica, old and new values.
                    CREATE TABLE audit (
                        id INTEGER PRIMARY KEY,
                        received_at TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        tbl TEXT NOT NULL,
                        record_id TEXT NOT NULL,
                        replica TEXT NOT NULL,
                        user TEXT NOT NULL,
                        seq INTEGER NOT NULL,      -- the replica's sequence number of the change
                        fields TEXT NOT NULL,      -- JSON array of field names
                        new_values TEXT NOT NULL,  -- JSON array, one per field
                        old_values TEXT,           -- JSON array of the values held before; NULL when the record was created
                        hlcs TEXT,                 -- JSON array of each field's HLC when they differ from seq
                        bases TEXT,                -- JSON array of each field's base [hlc, replica] or null
                        outcomes TEXT NOT NULL     -- one letter per field: a applied, s superseded, e unchanged
                    );
                    CREATE INDEX audit_record ON audit (tbl, record_id, id);
                    CREATE INDEX audit_site ON audit (site_id, id);
                    """
            )
        }
        migrator.registerMigration("server-v2-replica-identity") { db in
            try db.execute(
                sql: """
                    -- A replica's own credential names its replica; enrolment tokens name none.
                    ALTER TABLE tokens ADD COLUMN replica_id TEXT;
                    CREATE UNIQUE INDEX tokens_replica ON tokens (replica_id) WHERE replica_id IS NOT NULL;
                    -- The fingerprint of the last push that applied anything, which only the replica
                    -- that sent it can name again (PushRequest.sent).
                    ALTER TABLE replicas ADD COLUMN last_push TEXT;
                    """
            )
        }
        migrator.registerMigration("server-v3-reasons") { db in
            try db.execute(
                sql: """
                    -- Per field: the reason for change the replica gave (JSON array, NULL when none),
                    -- and the conflict the change caused (JSON array of conflict ids, NULL when none).
                    ALTER TABLE audit ADD COLUMN reasons TEXT;
                    ALTER TABLE audit ADD COLUMN conflicts TEXT;
                    """
            )
        }
        migrator.registerMigration("server-v4-token-lifecycle") { db in
            try db.execute(
                sql: """
                    -- ISO 8601 times, UTC: when a token stops being accepted, when an operator revoked
                    -- it, and its last use (to the minute).
                    ALTER TABLE tokens ADD COLUMN expires_at TEXT;
                    ALTER TABLE tokens ADD COLUMN revoked_at TEXT;
                    ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
                    """
            )
        }
        registerSchemaMigrations(&migrator, schema: schema, prefix: "")
        migrator.registerMigration("server-v5-monitoring") { db in
            try db.execute(sql: Self.monitoringTablesSQL)
        }
        migrator.registerMigration("server-v6-enrolled-by") { db in
            // The digest of the enrolment token that enrolled a replica's credential: enrolments
            // per token are bounded (ServerConfiguration.maximumEnrolmentsPerToken).
            try db.execute(sql: "ALTER TABLE tokens ADD COLUMN enrolled_by TEXT; CREATE INDEX tokens_enrolled_by ON tokens (enrolled_by)")
        }
        migrator.registerMigration("server-v7-conflict-listing") { db in
            // Conflicts are listed oldest detection first, then by id, on every store.
            try db.execute(sql: "CREATE INDEX conflicts_listing ON conflicts (detected_at, id)")
        }
        migrator.registerMigration("server-v8-accounts") { db in
            try db.execute(
                sql: """
                    -- People (sitesync-server user …). Never deleted: a username is never reused.
                    CREATE TABLE accounts (
                        username TEXT PRIMARY KEY NOT NULL,
                        full_name TEXT NOT NULL,
                        role TEXT NOT NULL,
                        sites TEXT NOT NULL,               -- JSON array of site ids; ["*"] for every site
                        state TEXT NOT NULL CHECK (state IN ('active', 'deactivated')),
                        password_hash TEXT NOT NULL,       -- scrypt ($scrypt$ln=…); never the password
                        created_at TEXT NOT NULL,
                        password_changed_at TEXT NOT NULL,
                        last_sign_in_at TEXT,
                        deactivation_reason TEXT
                    ) WITHOUT ROWID;
                    CREATE TRIGGER accounts_never_deleted BEFORE DELETE ON accounts BEGIN
                        SELECT RAISE(ABORT, 'accounts are never deleted (a username is never reused): deactivate it instead');
                    END;
                    -- Every change of an account, in the order made; part of the audit trail, append-only.
                    CREATE TABLE account_events (
                        id INTEGER PRIMARY KEY,
                        at TEXT NOT NULL,
                        username TEXT NOT NULL,
                        action TEXT NOT NULL,
                        by_operator TEXT NOT NULL,
                        full_name TEXT,
                        role TEXT,
                        sites TEXT,
                        reason TEXT
                    );
                    CREATE TRIGGER account_events_append_only_update BEFORE UPDATE ON account_events BEGIN
                        SELECT RAISE(ABORT, 'the audit trail is append-only: account_events rows are never changed');
                    END;
                    CREATE TRIGGER account_events_append_only_delete BEFORE DELETE ON account_events BEGIN
                        SELECT RAISE(ABORT, 'the audit trail is append-only: account_events rows are never deleted');
                    END;
                    """
            )
        }
        migrator.registerMigration("server-v9-audit-chain") { db in
            try db.execute(
                sql: """
                    -- The audit trail's hash chains (AuditChain): each row's hash, each site's head, and where
                    -- the chains began: rows written before (by a build before accounts) have no hash.
                    ALTER TABLE audit ADD COLUMN hash TEXT;
                    ALTER TABLE account_events ADD COLUMN hash TEXT;
                    ALTER TABLE sites ADD COLUMN audit_head TEXT;
                    CREATE TABLE audit_chains (
                        tbl TEXT PRIMARY KEY NOT NULL,      -- audit (its heads are in sites.audit_head) or account_events
                        last_unchained INTEGER NOT NULL,    -- rows up to this id predate the chain
                        head TEXT                           -- account_events: the hash of its last row
                    ) WITHOUT ROWID;
                    INSERT INTO audit_chains (tbl, last_unchained) SELECT 'audit', coalesce(max(id), 0) FROM audit;
                    INSERT INTO audit_chains (tbl, last_unchained) SELECT 'account_events', coalesce(max(id), 0) FROM account_events;
                    -- Append-only, whoever holds the file.
                    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit BEGIN
                        SELECT RAISE(ABORT, 'the audit trail is append-only: audit rows are never changed');
                    END;
                    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit BEGIN
                        SELECT RAISE(ABORT, 'the audit trail is append-only: audit rows are never deleted');
                    END;
                    """
            )
        }
        migrator.registerMigration("server-v10-person-keys") { db in
            try db.execute(
                sql: """
                    -- People's public signing keys, one per person and laptop, registered at the first sign-in
                    -- there; never deleted (the audit trail's signatures are checked against them).
                    CREATE TABLE person_keys (
                        key_id TEXT PRIMARY KEY NOT NULL,
                        username TEXT NOT NULL,
                        replica_id TEXT NOT NULL,
                        public_key TEXT NOT NULL,
                        registered_at TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX person_keys_replica ON person_keys (replica_id);
                    CREATE TRIGGER person_keys_never_changed BEFORE UPDATE ON person_keys BEGIN
                        SELECT RAISE(ABORT, 'signing keys are never changed');
                    END;
                    CREATE TRIGGER person_keys_never_deleted BEFORE DELETE ON person_keys BEGIN
                        SELECT RAISE(ABORT, 'signing keys are never deleted');
                    END;
                    """
            )
        }
        migrator.registerMigration("server-v11-audit-authors") { db in
            // Per field, the person whose signature covers it (docs/AUTHORSHIP.md); NULL before authorship.
            try db.execute(sql: "ALTER TABLE audit ADD COLUMN authors TEXT")
        }
        return migrator
    }
}
