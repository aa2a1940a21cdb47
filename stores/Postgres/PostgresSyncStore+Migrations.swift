import PostgresNIO
import SiteSyncCore

extension PostgresSyncStore {
    /// One named, append-only migration: once released, its statements never change.
    struct Migration {
        var name: String
        var statements: [String]
    }

    /// Applies the migrations the database has not recorded, in order, in one transaction under an
    /// advisory lock: several instances starting at once apply each migration once, and none
    /// serves before the database is at its version.
    public func migrate() async throws {
        try await transaction { connection in
            // One lock for every instance of every build: hashtext('sitesync-migrations').
            try await connection.execute("SELECT pg_advisory_xact_lock(hashtext('sitesync-migrations'))")
            try await connection.execute(
                "CREATE TABLE IF NOT EXISTS sitesync_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            var applied = Set<String>()
            for try await name in try await connection.query("SELECT name FROM sitesync_migrations").decode(String.self) {
                applied.insert(name)
            }
            for migration in self.migrations where !applied.contains(migration.name) {
                for statement in migration.statements {
                    try await connection.execute(PostgresQuery(unsafeSQL: statement))
                }
                try await connection.execute(
                    "INSERT INTO sitesync_migrations (name, applied_at) VALUES (\(migration.name), \(Self.now()))"
                )
            }
        }
    }

    /// The names of the migrations the database has applied, in the order they were.
    public func appliedMigrations() async throws -> [String] {
        try await transaction(readOnly: true) { connection in
            var names: [String] = []
            let rows = try await connection.query("SELECT name FROM sitesync_migrations ORDER BY applied_at, name")
            for try await name in rows.decode(String.self) { names.append(name) }
            return names
        }
    }

    /// Every migration of this build, in order: the server's own tables, then one per schema version.
    ///
    /// Every table whose rows belong to a site has `site_id`; `records` leads its pull index with
    /// it (docs/DEPLOYMENT.md says what distributing by site would change).
    var migrations: [Migration] {
        var migrations = [
            Migration(
                name: "server-v1",
                statements: [
                    """
                    CREATE TABLE tokens (
                        hash TEXT PRIMARY KEY,          -- SHA-256 hex of the token; the token itself is never stored
                        role TEXT NOT NULL,
                        site_id TEXT,
                        label TEXT,
                        created_at TEXT NOT NULL,
                        replica_id TEXT                 -- a replica's own credential names its replica
                    )
                    """,
                    "CREATE UNIQUE INDEX tokens_replica ON tokens (replica_id) WHERE replica_id IS NOT NULL",
                    // The head of each site's sequence: a push locks the heads of its sites (FOR UPDATE).
                    "CREATE TABLE sites (site_id TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
                    """
                    CREATE TABLE replicas (
                        replica_id TEXT PRIMARY KEY,
                        last_seq BIGINT NOT NULL,
                        last_applied BIGINT NOT NULL,
                        last_conflicts BIGINT NOT NULL,
                        "user" TEXT NOT NULL,
                        first_seen TEXT NOT NULL,
                        last_seen TEXT NOT NULL,
                        last_push TEXT
                    )
                    """,
                    """
                    CREATE TABLE records (
                        tbl TEXT NOT NULL,
                        id TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        seq BIGINT NOT NULL,
                        hlc BIGINT NOT NULL,
                        replica TEXT NOT NULL,
                        "user" TEXT NOT NULL,
                        fields TEXT,
                        PRIMARY KEY (tbl, id)
                    )
                    """,
                    "CREATE UNIQUE INDEX records_pull ON records (site_id, seq)",
                    """
                    CREATE TABLE audit (
                        id BIGSERIAL PRIMARY KEY,
                        received_at TEXT NOT NULL,
                        site_id TEXT NOT NULL,
                        tbl TEXT NOT NULL,
                        record_id TEXT NOT NULL,
                        replica TEXT NOT NULL,
                        "user" TEXT NOT NULL,
                        seq BIGINT NOT NULL,
                        fields TEXT NOT NULL,
                        new_values TEXT NOT NULL,
                        old_values TEXT,
                        hlcs TEXT,
                        bases TEXT,
                        outcomes TEXT NOT NULL,
                        reasons TEXT,
                        conflicts TEXT
                    )
                    """,
                    "CREATE INDEX audit_record ON audit (tbl, record_id, id)",
                    "CREATE INDEX audit_site ON audit (site_id, id)",
                ])
        ]
        for version in 1...max(1, schema.version) {
            var statements: [String] = []
            for table in schema.restricted(to: version).tables {
                if table.since == version {
                    let columns = table.columns.filter { $0.since == version }.map(Self.definition)
                    statements.append("CREATE TABLE \(Self.quoted(table.name)) (id TEXT PRIMARY KEY, \(columns.joined(separator: ", ")))")
                } else {
                    for column in table.columns where column.since == version {
                        statements.append("ALTER TABLE \(Self.quoted(table.name)) ADD COLUMN \(Self.definition(column))")
                    }
                }
            }
            if version == 1 {
                // Conflicts are listed oldest detection first.
                statements.append("CREATE INDEX conflicts_listing ON conflicts (detected_at, id)")
            }
            migrations.append(Migration(name: "schema-v\(version)", statements: statements))
        }
        // Primary keys lead with the site where the model allows, so that the tables can be
        // distributed by site (docs/DEPLOYMENT.md). An audit row's id is unique by construction, so
        // its key can take the site first. A record's id must be unique across sites, which only a
        // key without the site enforces, so `records` and the trial's tables keep theirs; the
        // conflict log's rows carry no site column (their site is their shadow row's in `records`).
        migrations.append(
            Migration(
                name: "server-v2-site-keys",
                statements: [
                    "ALTER TABLE audit DROP CONSTRAINT audit_pkey",
                    "DROP INDEX audit_site",
                    "ALTER TABLE audit ADD PRIMARY KEY (site_id, id)",
                    "CREATE INDEX audit_id ON audit (id)",
                ]))
        // When a token stops being accepted, when an operator revoked it, its last use (to the minute).
        migrations.append(
            Migration(
                name: "server-v3-token-lifecycle",
                statements: [
                    "ALTER TABLE tokens ADD COLUMN expires_at TEXT, ADD COLUMN revoked_at TEXT, ADD COLUMN last_used_at TEXT"
                ]))
        // Laptops' latest reports, record changes per site and day, monitoring page sessions
        // (docs/MONITORING.md); as the SQLite store's `server-v5-monitoring`.
        migrations.append(
            Migration(
                name: "server-v4-monitoring",
                statements: [
                    """
                    CREATE TABLE replica_reports (
                        site_id TEXT NOT NULL,
                        replica_id TEXT NOT NULL,
                        "user" TEXT NOT NULL,
                        build TEXT NOT NULL,
                        schema_version BIGINT NOT NULL,
                        pending BIGINT NOT NULL,
                        clock_offset_ms BIGINT NOT NULL,
                        last_sync_at TEXT NOT NULL,
                        PRIMARY KEY (site_id, replica_id)
                    )
                    """,
                    "CREATE TABLE site_days (site_id TEXT NOT NULL, day TEXT NOT NULL, changes BIGINT NOT NULL, PRIMARY KEY (site_id, day))",
                    "INSERT INTO site_days (site_id, day, changes) SELECT site_id, substr(received_at, 1, 10), count(*) FROM audit GROUP BY 1, 2",
                    "CREATE TABLE monitor_sessions (hash TEXT PRIMARY KEY, token_hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT NOT NULL)",
                ]))
        // The digest of the enrolment token that enrolled a replica's credential; as the SQLite
        // store's `server-v6-enrolled-by`.
        migrations.append(
            Migration(
                name: "server-v5-enrolled-by",
                statements: [
                    "ALTER TABLE tokens ADD COLUMN enrolled_by TEXT",
                    "CREATE INDEX tokens_enrolled_by ON tokens (enrolled_by)",
                ]))
        // People, and every change of their accounts; as the SQLite store's `server-v8-accounts`.
        // Accounts are never deleted; their events are never changed or deleted.
        migrations.append(
            Migration(
                name: "server-v6-accounts",
                statements: [
                    """
                    CREATE TABLE accounts (
                        username TEXT PRIMARY KEY,
                        full_name TEXT NOT NULL,
                        role TEXT NOT NULL,
                        sites TEXT NOT NULL,
                        state TEXT NOT NULL CHECK (state IN ('active', 'deactivated')),
                        password_hash TEXT NOT NULL,
                        created_at TEXT NOT NULL,
                        password_changed_at TEXT NOT NULL,
                        last_sign_in_at TEXT,
                        deactivation_reason TEXT
                    )
                    """,
                    """
                    CREATE TABLE account_events (
                        id BIGSERIAL PRIMARY KEY,
                        at TEXT NOT NULL,
                        username TEXT NOT NULL,
                        action TEXT NOT NULL,
                        by_operator TEXT NOT NULL,
                        full_name TEXT,
                        role TEXT,
                        sites TEXT,
                        reason TEXT
                    )
                    """,
                    """
                    CREATE FUNCTION sitesync_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        RAISE EXCEPTION 'the audit trail is append-only and accounts are never deleted: % of % refused', TG_OP, TG_TABLE_NAME
                            USING ERRCODE = 'insufficient_privilege';
                    END
                    $$
                    """,
                    """
                    CREATE TRIGGER account_events_append_only BEFORE UPDATE OR DELETE ON account_events
                    FOR EACH ROW EXECUTE FUNCTION sitesync_refuse_change()
                    """,
                    "CREATE TRIGGER account_events_no_truncate BEFORE TRUNCATE ON account_events FOR EACH STATEMENT EXECUTE FUNCTION sitesync_refuse_change()",
                    "CREATE TRIGGER accounts_never_deleted BEFORE DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION sitesync_refuse_change()",
                    "CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts FOR EACH STATEMENT EXECUTE FUNCTION sitesync_refuse_change()",
                ]))
        // The audit trail's hash chains; as the SQLite store's `server-v9-audit-chain`. The audit
        // rows are append-only for every role, the owner included: a trigger refuses UPDATE, DELETE
        // and TRUNCATE, and the privileges to run them are revoked (docs/SECURITY.md).
        migrations.append(
            Migration(
                name: "server-v7-audit-chain",
                statements: [
                    "ALTER TABLE audit ADD COLUMN hash TEXT",
                    "ALTER TABLE account_events ADD COLUMN hash TEXT",
                    "ALTER TABLE sites ADD COLUMN audit_head TEXT",
                    "CREATE TABLE audit_chains (tbl TEXT PRIMARY KEY, last_unchained BIGINT NOT NULL, head TEXT)",
                    "INSERT INTO audit_chains (tbl, last_unchained) SELECT 'audit', coalesce(max(id), 0) FROM audit",
                    "INSERT INTO audit_chains (tbl, last_unchained) SELECT 'account_events', coalesce(max(id), 0) FROM account_events",
                    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION sitesync_refuse_change()",
                    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION sitesync_refuse_change()",
                    "REVOKE UPDATE, DELETE, TRUNCATE ON audit, account_events FROM PUBLIC",
                    "REVOKE UPDATE, DELETE, TRUNCATE ON audit, account_events FROM CURRENT_USER",
                ]))
        // People's public signing keys; as the SQLite store's `server-v10-person-keys`.
        migrations.append(
            Migration(
                name: "server-v8-person-keys",
                statements: [
                    """
                    CREATE TABLE person_keys (
                        key_id TEXT PRIMARY KEY,
                        username TEXT NOT NULL,
                        replica_id TEXT NOT NULL,
                        public_key TEXT NOT NULL,
                        registered_at TEXT NOT NULL
                    )
                    """,
                    "CREATE INDEX person_keys_replica ON person_keys (replica_id)",
                    "CREATE TRIGGER person_keys_append_only BEFORE UPDATE OR DELETE ON person_keys FOR EACH ROW EXECUTE FUNCTION sitesync_refuse_change()",
                    "CREATE TRIGGER person_keys_no_truncate BEFORE TRUNCATE ON person_keys FOR EACH STATEMENT EXECUTE FUNCTION sitesync_refuse_change()",
                    "REVOKE UPDATE, DELETE, TRUNCATE ON person_keys FROM PUBLIC",
                    "REVOKE UPDATE, DELETE, TRUNCATE ON person_keys FROM CURRENT_USER",
                ]))
        // Each audit row's proven authors; as the SQLite store's `server-v11-audit-authors`.
        migrations.append(Migration(name: "server-v9-audit-authors", statements: ["ALTER TABLE audit ADD COLUMN authors TEXT"]))
        return migrations
    }

    /// A column's definition: its name, its PostgreSQL type and its default.
    static func definition(_ column: ColumnSchema) -> String {
        var sql = "\(quoted(column.name)) \(sqlType(column.type))"
        switch column.defaultValue {
        case .null: break
        case .integer(let value): sql += " DEFAULT \(value)"
        case .real(let value): sql += " DEFAULT \(value)"
        case .text(let value): sql += " DEFAULT '\(value.replacingOccurrences(of: "'", with: "''"))'"
        }
        return sql
    }

    package static func sqlType(_ type: ColumnType) -> String {
        switch type {
        case .text, .date, .choice: "TEXT"
        case .integer, .flag: "BIGINT"
        case .real: "DOUBLE PRECISION"
        }
    }

    /// An identifier quoted for PostgreSQL.
    package static func quoted(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
