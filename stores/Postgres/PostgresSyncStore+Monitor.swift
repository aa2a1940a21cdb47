import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore {
    public func checkReady() async throws {
        let applied = Set(try await appliedMigrations())
        guard migrations.allSatisfy({ applied.contains($0.name) }) else {
            throw StorageError(.failed, code: "migrations", message: "migrations pending")
        }
    }

    public func recordReport(
        _ report: ReplicaReport, replica: String, site: String, schemaVersion: Int, at time: String, serverMilliseconds: Int64
    ) async throws {
        _ = try await transaction { connection in
            try await connection.execute(
                """
                INSERT INTO replica_reports (site_id, replica_id, "user", build, schema_version, pending, clock_offset_ms, last_sync_at)
                VALUES (\(site), \(replica), \(report.user), \(report.build), \(Int64(schemaVersion)), \(Int64(report.pending)),
                    \(report.clock - serverMilliseconds), \(time))
                ON CONFLICT (site_id, replica_id) DO UPDATE SET
                    "user" = excluded."user", build = excluded.build, schema_version = excluded.schema_version, pending = excluded.pending,
                    clock_offset_ms = excluded.clock_offset_ms, last_sync_at = excluded.last_sync_at
                """
            )
        }
    }

    public func replicaFreshness(site: String?) async throws -> [ReplicaFreshness] {
        try await transaction(readOnly: true) { connection in
            let rows = try await connection.query(
                """
                SELECT t.replica_id, coalesce(t.site_id, '*'), t.created_at,
                    r."user", r.build, r.schema_version, r.pending, r.clock_offset_ms, r.last_sync_at
                FROM tokens t LEFT JOIN replica_reports r ON r.site_id = coalesce(t.site_id, '*') AND r.replica_id = t.replica_id
                WHERE t.replica_id IS NOT NULL AND t.revoked_at IS NULL AND (\(site)::text IS NULL OR t.site_id = \(site))
                ORDER BY 2, 1
                """
            )
            var laptops: [ReplicaFreshness] = []
            for try await (replica, site, enrolled, user, build, schema, pending, offset, lastSync) in rows.decode(
                (String, String, String, String?, String?, Int64?, Int64?, Int64?, String?).self
            ) {
                var report: ReplicaFreshness.Report?
                if let user, let build, let schema, let pending, let offset, let lastSync {
                    report = .init(
                        user: user, build: build, schemaVersion: Int(schema), pending: Int(pending), clockOffsetMilliseconds: offset, lastSyncAt: lastSync)
                }
                laptops.append(ReplicaFreshness(replica: replica, site: site, enrolledAt: enrolled, report: report))
            }
            return laptops
        }
    }

    public func siteIDs() async throws -> [String] {
        try await transaction(readOnly: true) { connection in
            var sites: [String] = []
            let rows = try await connection.query(
                "SELECT site_id FROM sites UNION SELECT site_id FROM tokens WHERE site_id IS NOT NULL ORDER BY 1"
            )
            for try await site in rows.decode(String.self) { sites.append(site) }
            return sites
        }
    }

    public func openConflictCounts() async throws -> [String: Int] {
        try await transaction(readOnly: true) { connection in
            var counts: [String: Int] = [:]
            let rows = try await connection.query(
                "SELECT site_id, count(*) FROM conflicts WHERE status = \(ConflictStatus.open.rawValue) AND _deleted IS NULL GROUP BY site_id"
            )
            for try await (site, count) in rows.decode((String, Int64).self) { counts[site] = Int(count) }
            return counts
        }
    }

    public func siteActivity(site: String, from firstDay: String) async throws -> SiteActivity {
        let tables = schema.tables
        return try await transaction(readOnly: true) { connection in
            var activity = SiteActivity(recordsByTable: [:], changesByDay: [:])
            for table in tables {
                let rows = try await connection.query(
                    "SELECT count(*) FROM \(unescaped: Self.quoted(table.name)) WHERE site_id = \(site) AND _deleted IS NULL"
                )
                for try await count in rows.decode(Int64.self) { activity.recordsByTable[table.name] = Int(count) }
            }
            let days = try await connection.query(
                "SELECT day, changes FROM site_days WHERE site_id = \(site) AND day >= \(firstDay)"
            )
            for try await (day, changes) in days.decode((String, Int64).self) { activity.changesByDay[day] = Int(changes) }
            return activity
        }
    }

    public func liveRecords(_ table: TableSchema, site: String, limit: Int) async throws -> [[String: FieldValue]] {
        try await transaction(readOnly: true) { connection in
            let columns = (["id"] + table.columnNames).map(Self.quoted).joined(separator: ", ")
            let rows = try await connection.query(
                """
                SELECT \(unescaped: columns) FROM \(unescaped: Self.quoted(table.name))
                WHERE site_id = \(site) AND _deleted IS NULL ORDER BY id LIMIT \(Int64(limit))
                """
            )
            var records: [[String: FieldValue]] = []
            for try await row in rows {
                var cells = RowCells(row)
                var record: [String: FieldValue] = ["id": .text(try cells.requiredText())]
                for column in table.columns { record[column.name] = try cells.value(column) }
                records.append(record)
            }
            return records
        }
    }

    public func createSession(hash: String, tokenHash: String, at time: String, expiresAt: String, keeping: Int) async throws {
        _ = try await transaction { connection in
            try await connection.execute("DELETE FROM monitor_sessions WHERE expires_at <= \(time)")
            // The token's row, locked: its sessions are counted one sign-in at a time.
            try await connection.execute("SELECT 1 FROM tokens WHERE hash = \(tokenHash) FOR UPDATE")
            try await connection.execute(
                "INSERT INTO monitor_sessions (hash, token_hash, created_at, expires_at) VALUES (\(hash), \(tokenHash), \(time), \(expiresAt))"
            )
            try await connection.execute(
                """
                DELETE FROM monitor_sessions WHERE token_hash = \(tokenHash) AND hash <> \(hash) AND hash NOT IN
                    (SELECT hash FROM monitor_sessions WHERE token_hash = \(tokenHash) AND hash <> \(hash)
                     ORDER BY created_at DESC, hash DESC LIMIT \(Int64(max(keeping - 1, 0))))
                """
            )
        }
    }

    public func sessionToken(hash: String, at time: String) async throws -> StoredToken? {
        try await transaction(readOnly: true) { connection in
            try await self.tokens(
                connection.query(
                    """
                    SELECT \(unescaped: StoredToken.columns(of: "t")) FROM monitor_sessions s JOIN tokens t ON t.hash = s.token_hash
                    WHERE s.hash = \(hash) AND s.expires_at > \(time)
                    """
                )
            ).first
        }
    }

    public func sessionPerson(hash: String, at time: String) async throws -> Account? {
        try await transaction(readOnly: true) { connection in
            try await Self.accounts(
                connection.query(
                    """
                    SELECT \(unescaped: Account.columns.split(separator: ", ").map { "a.\($0)" }.joined(separator: ", "))
                    FROM monitor_sessions s JOIN accounts a ON s.token_hash = 'person ' || a.username
                    WHERE s.hash = \(hash) AND s.expires_at > \(time)
                    """
                )
            ).first
        }
    }

    public func deleteSession(hash: String) async throws {
        _ = try await transaction { connection in
            try await connection.execute("DELETE FROM monitor_sessions WHERE hash = \(hash)")
        }
    }
}
