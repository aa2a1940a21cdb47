import Foundation
import GRDB
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite

extension SQLiteSyncStore {
    /// The tables of the monitoring page and `sitesync-server replicas list`, as migration
    /// `server-v5-monitoring` creates them; the counts of `site_days` start from the audit trail.
    static let monitoringTablesSQL = """
        -- Each laptop's latest report (ReplicaReport), written when a pull reaches the end of what waits.
        CREATE TABLE replica_reports (
            site_id TEXT NOT NULL,             -- the replica's site; '*' when a reviewer token enrolled it
            replica_id TEXT NOT NULL,
            user TEXT NOT NULL,
            build TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            pending INTEGER NOT NULL,
            clock_offset_ms INTEGER NOT NULL,  -- the laptop's clock minus the server's
            last_sync_at TEXT NOT NULL,
            PRIMARY KEY (site_id, replica_id)
        ) WITHOUT ROWID;
        -- Record changes received per site and day (UTC), counted with the audit rows they match.
        CREATE TABLE site_days (
            site_id TEXT NOT NULL,
            day TEXT NOT NULL,
            changes INTEGER NOT NULL,
            PRIMARY KEY (site_id, day)
        ) WITHOUT ROWID;
        INSERT INTO site_days (site_id, day, changes) SELECT site_id, substr(received_at, 1, 10), count(*) FROM audit GROUP BY 1, 2;
        -- Monitoring page sessions: the SHA-256 digest of the session cookie, never the cookie.
        CREATE TABLE monitor_sessions (
            hash TEXT PRIMARY KEY NOT NULL,
            token_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        );
        """

    public func checkReady() async throws {
        let migrator = self.migrator
        let complete = try await reading { db in try migrator.hasCompletedMigrations(db) }
        guard complete else { throw StorageError(.failed, code: "migrations", message: "migrations pending") }
    }

    public func recordReport(
        _ report: ReplicaReport, replica: String, site: String, schemaVersion: Int, at time: String, serverMilliseconds: Int64
    ) async throws {
        try await writing { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO replica_reports (site_id, replica_id, user, build, schema_version, pending, clock_offset_ms, last_sync_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (site_id, replica_id) DO UPDATE SET
                        user = excluded.user, build = excluded.build, schema_version = excluded.schema_version, pending = excluded.pending,
                        clock_offset_ms = excluded.clock_offset_ms, last_sync_at = excluded.last_sync_at
                    """
            ).execute(arguments: [
                site, replica, report.user, report.build, schemaVersion, report.pending, report.clock - serverMilliseconds, time,
            ])
        }
    }

    public func replicaFreshness(site: String?) async throws -> [ReplicaFreshness] {
        try await reading { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT t.replica_id, coalesce(t.site_id, '\(SiteID.all)') AS site, t.created_at,
                        r.user, r.build, r.schema_version, r.pending, r.clock_offset_ms, r.last_sync_at
                    FROM tokens t LEFT JOIN replica_reports r ON r.site_id = coalesce(t.site_id, '\(SiteID.all)') AND r.replica_id = t.replica_id
                    WHERE t.replica_id IS NOT NULL AND t.revoked_at IS NULL AND (? IS NULL OR t.site_id = ?)
                    ORDER BY 2, 1
                    """,
                arguments: [site, site]
            ).map { row in
                ReplicaFreshness(
                    replica: row["replica_id"], site: row["site"], enrolledAt: row["created_at"],
                    report: (row["last_sync_at"] as String?).map { lastSync in
                        .init(
                            user: row["user"], build: row["build"], schemaVersion: row["schema_version"], pending: row["pending"],
                            clockOffsetMilliseconds: row["clock_offset_ms"], lastSyncAt: lastSync)
                    }
                )
            }
        }
    }

    public func siteIDs() async throws -> [String] {
        try await reading { db in
            try String.fetchAll(db, sql: "SELECT site_id FROM sites UNION SELECT site_id FROM tokens WHERE site_id IS NOT NULL ORDER BY 1")
        }
    }

    public func openConflictCounts() async throws -> [String: Int] {
        try await reading { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT site_id, count(*) AS open FROM conflicts WHERE status = ? AND _deleted IS NULL GROUP BY site_id",
                arguments: [ConflictStatus.open.rawValue])
            {
                counts[row["site_id"]] = row["open"]
            }
            return counts
        }
    }

    public func siteActivity(site: String, from firstDay: String) async throws -> SiteActivity {
        let tables = schema.tables
        return try await reading { db in
            var activity = SiteActivity(recordsByTable: [:], changesByDay: [:])
            for table in tables {
                activity.recordsByTable[table.name] =
                    try Int.fetchOne(
                        db, sql: "SELECT count(*) FROM \(table.name.quotedDatabaseIdentifier) WHERE site_id = ? AND _deleted IS NULL", arguments: [site]
                    ) ?? 0
            }
            for row in try Row.fetchAll(db, sql: "SELECT day, changes FROM site_days WHERE site_id = ? AND day >= ?", arguments: [site, firstDay]) {
                activity.changesByDay[row["day"]] = row["changes"]
            }
            return activity
        }
    }

    public func liveRecords(_ table: TableSchema, site: String, limit: Int) async throws -> [[String: FieldValue]] {
        try await reading { db in
            try Row.fetchAll(db, sql: "\(table.selectSQL) WHERE site_id = ? AND _deleted IS NULL ORDER BY id LIMIT ?", arguments: [site, limit]).map { row in
                var record: [String: FieldValue] = ["id": row.fieldValue(atIndex: 0)]
                for (offset, column) in table.columns.enumerated() { record[column.name] = row.fieldValue(atIndex: offset + 1) }
                return record
            }
        }
    }

    public func createSession(hash: String, tokenHash: String, at time: String, expiresAt: String, keeping: Int) async throws {
        try await writing { db in
            try db.execute(sql: "DELETE FROM monitor_sessions WHERE expires_at <= ?", arguments: [time])
            try db.execute(
                sql: "INSERT INTO monitor_sessions (hash, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [hash, tokenHash, time, expiresAt]
            )
            try db.execute(
                sql: """
                    DELETE FROM monitor_sessions WHERE token_hash = ? AND hash <> ? AND hash NOT IN
                        (SELECT hash FROM monitor_sessions WHERE token_hash = ? AND hash <> ? ORDER BY created_at DESC, hash DESC LIMIT ?)
                    """,
                arguments: [tokenHash, hash, tokenHash, hash, max(keeping - 1, 0)]
            )
        }
    }

    public func sessionToken(hash: String, at time: String) async throws -> StoredToken? {
        try await reading { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT \(StoredToken.columns(of: "t"))
                    FROM monitor_sessions s JOIN tokens t ON t.hash = s.token_hash WHERE s.hash = ? AND s.expires_at > ?
                    """,
                arguments: [hash, time]
            ).flatMap(Self.token)
        }
    }

    public func sessionPerson(hash: String, at time: String) async throws -> Account? {
        try await reading { db in
            try Row.fetchOne(
                db,
                sql: """
                    SELECT \(Account.columns.split(separator: ", ").map { "a.\($0)" }.joined(separator: ", "))
                    FROM monitor_sessions s JOIN accounts a ON s.token_hash = 'person ' || a.username WHERE s.hash = ? AND s.expires_at > ?
                    """,
                arguments: [hash, time]
            ).flatMap(Self.account)
        }
    }

    public func deleteSession(hash: String) async throws {
        try await writing { db in try db.execute(sql: "DELETE FROM monitor_sessions WHERE hash = ?", arguments: [hash]) }
    }
}
