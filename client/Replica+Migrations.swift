import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension Replica {
    /// The replica's migrations: its own bookkeeping tables, then one per schema version, each
    /// reinstalling the change-tracking triggers of the tables it touched.
    static func migrator(schema: Schema) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("sitesync-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE _sitesync_meta (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        replica_id TEXT NOT NULL,
                        site TEXT NOT NULL,
                        user TEXT NOT NULL,
                        server_url TEXT NOT NULL,
                        token TEXT NOT NULL,
                        hlc INTEGER NOT NULL,          -- clock persisted past every acknowledged or received HLC
                        cursor TEXT NOT NULL,          -- JSON: last per-site sequence number pulled
                        last_sync TEXT,
                        clock_offset_ms INTEGER,       -- server clock minus this laptop's, at the last reply
                        created_at TEXT NOT NULL
                    );
                    -- The first layout of the shadow rows, with the outbox as their partial index;
                    -- sitesync-v2-compact-shadows replaces both and describes the columns.
                    CREATE TABLE _sitesync_records (
                        tbl TEXT NOT NULL,
                        id TEXT NOT NULL,
                        hlc INTEGER NOT NULL,
                        replica TEXT NOT NULL,
                        user TEXT NOT NULL,
                        fields TEXT,
                        pending INTEGER,
                        base TEXT,
                        held TEXT,
                        PRIMARY KEY (tbl, id)
                    ) WITHOUT ROWID;
                    CREATE UNIQUE INDEX _sitesync_outbox ON _sitesync_records (pending) WHERE pending IS NOT NULL;
                    """
            )
        }
        // Registered before the schema migrations, so that a new replica installs its tracking on
        // this layout directly; a replica made before it runs it last, and it reinstalls the
        // tracking of the tables that replica has.
        migrator.registerMigration("sitesync-v2-compact-shadows") { db in
            try Replica.compactShadows(db, schema: schema)
        }
        migrator.registerMigration("sitesync-v3-identity") { db in
            try Replica.bindIdentity(db, schema: schema)
        }
        migrator.registerMigration("sitesync-v4-reasons") { db in
            // JSON {field: reason}: the reason for change given for each pending field, pushed with it.
            try db.execute(sql: "ALTER TABLE _sitesync_shadows ADD COLUMN reasons TEXT")
        }
        migrator.registerMigration("sitesync-v5-certificate-authority") { db in
            // PEM: the private certificate authority trusted for the server's HTTPS certificate.
            try db.execute(sql: "ALTER TABLE _sitesync_meta ADD COLUMN ca_certificate TEXT")
        }
        migrator.registerMigration("sitesync-v6-sql-clock") { db in
            try Replica.moveClockToSQL(db, schema: schema)
        }
        registerSchemaMigrations(&migrator, schema: schema, prefix: "") { db, tables in
            for table in tables {
                try Replica.installTracking(db, table: table)
            }
        }
        migrator.registerMigration("sitesync-v7-forget-enrolment-token") { db in
            // A file keeps no secret that enrols a laptop: an enrolled replica holds only its own
            // credential, which the server can revoke; a rejoin takes a new enrolment token.
            try db.execute(sql: "UPDATE _sitesync_meta SET enrolment_token = NULL")
        }
        migrator.registerMigration("sitesync-v8-people") { db in
            try db.execute(sql: PeopleSQL.tables)
        }
        migrator.registerMigration("sitesync-v9-signatures") { db in
            try db.execute(sql: SignatureSQL.table)
        }
        return migrator
    }

    /// Moves the shadow rows to the compact layout of `sitesync-v2`, with the same stamps and the
    /// same outbox, and reinstalls the change tracking of every table the replica has.
    ///
    /// A tracked insert writes one shadow row and one outbox entry, and that is most of the cost of
    /// tracking. The first layout keyed the rows by the table's name, stored each row's replica id
    /// and user as text, and kept the outbox as a partial index of the shadow rows. Here the table is
    /// a small integer from `_sitesync_tables` and the replica and user one integer from
    /// `_sitesync_actors`, which makes the rows and the keys compared on every insert about half as
    /// long; and the outbox is a table keyed by sequence number, to which an insert appends.
    static func compactShadows(_ db: Database, schema: Schema) throws {
        try db.execute(
            sql: """
                -- Every table that has tracked records, by a small code.
                CREATE TABLE _sitesync_tables (
                    code INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE
                );
                -- Every replica and user pair a record was stamped with.
                CREATE TABLE _sitesync_actors (
                    actor INTEGER PRIMARY KEY,
                    replica TEXT NOT NULL,
                    user TEXT NOT NULL,
                    UNIQUE (replica, user)
                );
                -- One shadow row per record: the stamps of its fields, and what is left to push.
                --   tbl:     the record's table (_sitesync_tables.code)
                --   hlc, actor: the stamp of every field not in `fields` (actor: _sitesync_actors.actor)
                --   fields:  JSON {field: [hlc, replica, user]} of fields stamped otherwise
                --   pending: NULL when synced; else the HLC of the latest local write, the sequence
                --            number of the record's entry in _sitesync_outbox
                --   base:    NULL with pending set: a record created here, every field new;
                --            else JSON {field: [hlc, replica, user]}: the fields to push and the stamp each
                --            had before its first local edit
                --   held:    JSON {field: [value, [hlc, replica, user]]}: local values not yet pushed that a
                --            newer pulled value replaced; pushed so the server can log them
                CREATE TABLE _sitesync_shadows (
                    tbl INTEGER NOT NULL,
                    id TEXT NOT NULL,
                    hlc INTEGER NOT NULL,
                    actor INTEGER NOT NULL,
                    fields TEXT,
                    pending INTEGER,
                    base TEXT,
                    held TEXT,
                    PRIMARY KEY (tbl, id)
                ) WITHOUT ROWID;
                INSERT INTO _sitesync_tables (name) SELECT DISTINCT tbl FROM _sitesync_records ORDER BY tbl;
                INSERT INTO _sitesync_actors (replica, user)
                    SELECT DISTINCT replica, user FROM _sitesync_records ORDER BY replica, user;
                INSERT INTO _sitesync_shadows (tbl, id, hlc, actor, fields, pending, base, held)
                    SELECT t.code, r.id, r.hlc, a.actor, r.fields, r.pending, r.base, r.held
                    FROM _sitesync_records AS r
                    JOIN _sitesync_tables AS t ON t.name = r.tbl
                    JOIN _sitesync_actors AS a ON a.replica = r.replica AND a.user = r.user;
                DROP TABLE _sitesync_records;
                -- The outbox: one entry per pending record, in the order of its latest local write.
                --   seq: the record's `pending`, its per-replica sequence number
                CREATE TABLE _sitesync_outbox (
                    seq INTEGER PRIMARY KEY,
                    tbl INTEGER NOT NULL,
                    id TEXT NOT NULL
                );
                INSERT INTO _sitesync_outbox (seq, tbl, id)
                    SELECT pending, tbl, id FROM _sitesync_shadows WHERE pending IS NOT NULL;
                """
        )
        // The tables of the schema versions this replica was migrated to; none in a new replica.
        if let version = try appliedSchemaVersion(db, schema: schema, prefix: "") {
            for table in schema.restricted(to: version).tables {
                try installTracking(db, table: table)
            }
        }
    }

    /// Adds what a replica needs to prove its identity and to detect a copy of its file, and
    /// carries pending edits over to the rule that an edit of a live record stamps `_deleted`.
    ///
    /// - `enrolled`: 1 once the server has registered the replica id with the replica's own
    ///   `credential` (generated here before the first enrolment request, so that a retry sends the
    ///   same one), which then replaces the enrolment token in `token`. (`enrolment_token` kept
    ///   that token for `sitesync init --rejoin` until `sitesync-v7-forget-enrolment-token`; it is
    ///   always NULL now.)
    /// - `acked`: the greatest sequence number the server acknowledged; NULL while unknown (a
    ///   replica from before this migration, until its next push).
    /// - `unconfirmed`: JSON array of the digests of pushes sent since the last answer received;
    ///   the server accepts a push that follows its last one only from the replica that sent it.
    ///
    /// Pending edits of live records made under the earlier triggers stamp `_deleted` here, as the
    /// new triggers would have, at the record's latest write (the push stamped it so until now).
    static func bindIdentity(_ db: Database, schema: Schema) throws {
        try db.execute(
            sql: """
                ALTER TABLE _sitesync_meta ADD COLUMN enrolled INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE _sitesync_meta ADD COLUMN credential TEXT;
                ALTER TABLE _sitesync_meta ADD COLUMN enrolment_token TEXT;
                ALTER TABLE _sitesync_meta ADD COLUMN acked INTEGER;
                ALTER TABLE _sitesync_meta ADD COLUMN unconfirmed TEXT NOT NULL DEFAULT '[]';
                UPDATE _sitesync_meta SET enrolment_token = token;
                """
        )
        guard let version = try appliedSchemaVersion(db, schema: schema, prefix: "") else { return }
        let stamp = try StampSQL(db)
        for table in schema.restricted(to: version).tables {
            if table.isWritable(TableSchema.deletedColumn),
                let code = try Int64.fetchOne(
                    db, sql: "SELECT code FROM _sitesync_tables WHERE name = ?", arguments: [table.name]
                )
            {
                let deleted = "'$.\(TableSchema.deletedColumn)'"
                try db.execute(
                    sql: """
                        UPDATE _sitesync_shadows SET
                            base = json_set(base, \(deleted), json(coalesce(
                                json_extract(fields, \(deleted)),
                                (SELECT json_array(_sitesync_shadows.hlc, a.replica, a.user) FROM _sitesync_actors AS a
                                 WHERE a.actor = _sitesync_shadows.actor)))),
                            fields = json_set(coalesce(fields, '{}'), \(deleted), json_array(pending, \(stamp.replica), \(stamp.user)))
                        WHERE tbl = ? AND pending IS NOT NULL AND base IS NOT NULL
                          AND json_type(base, \(deleted)) IS NULL AND json_type(held, \(deleted)) IS NULL
                          AND id IN (SELECT id FROM \(table.name.quotedDatabaseIdentifier) WHERE \(TableSchema.deletedColumn.quotedDatabaseIdentifier) IS NULL)
                        """,
                    arguments: [code]
                )
            }
            try installTracking(db, table: table)
        }
    }

    /// Moves the clock out of the process into the file (``ClockSQL``), so that the tracking
    /// triggers are plain SQL that any SQLite client can run, and reinstalls them.
    ///
    /// The clock starts where the library's would have on opening this file: past the persisted
    /// clock and every pending change.
    static func moveClockToSQL(_ db: Database, schema: Schema) throws {
        try ClockSQL.create(
            db,
            start: """
                max(coalesce((SELECT hlc FROM _sitesync_meta), 0), coalesce((SELECT max(seq) FROM _sitesync_outbox), 0))
                """)
        try db.execute(sql: "ALTER TABLE _sitesync_meta DROP COLUMN hlc")
        if let version = try appliedSchemaVersion(db, schema: schema, prefix: "") {
            for table in schema.restricted(to: version).tables {
                try installTracking(db, table: table)
            }
        }
    }
}
