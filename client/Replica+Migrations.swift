import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension Replica {
    /// The replica's migrations: its own bookkeeping tables, then one per schema version, each
    /// reinstalling the change-tracking triggers of the tables it touched.
    var migrator: DatabaseMigrator {
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
                    -- One shadow row per record: the stamps of its fields, and its outbox entry.
                    --   hlc, replica, user: the stamp of every field not in `fields`
                    --   fields:  JSON {field: [hlc, replica, user]} of fields stamped otherwise
                    --   pending: NULL when synced; else the HLC of the latest local write (the per-replica
                    --            sequence number of the outbox entry)
                    --   base:    NULL with pending set: a record created here, every field new;
                    --            else JSON {field: [hlc, replica, user]}: the fields to push and the stamp each
                    --            had before its first local edit
                    --   held:    JSON {field: [value, [hlc, replica, user]]}: local values not yet pushed that a
                    --            newer pulled value replaced; pushed so the server can log them
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
        registerSchemaMigrations(&migrator, schema: schema, prefix: "") { db, tables in
            for table in tables {
                try Replica.installTracking(db, table: table)
            }
        }
        return migrator
    }
}
