import GRDB
import SiteSyncCore

extension Replica {
    /// Installs the triggers that track local writes of `table` into the outbox, in the writer's transaction.
    ///
    /// - An insert appends the record to the outbox at a fresh HLC and creates its shadow row: every
    ///   field stamped with that HLC, pending. A record is never replaced (`INSERT OR REPLACE` of an
    ///   existing id): SQLite would drop the old row without its delete trigger, and the record's
    ///   stamps would be lost, so the insert refuses it.
    /// - An update of a field re-stamps that field, moves the record to the end of the outbox at the
    ///   new HLC, and records the field's previous stamp as its base unless an earlier unpushed edit
    ///   already did. An update of a live record stamps `_deleted` too (see ``restampSQL(table:field:id:stamp:live:)``).
    /// - Deleting a row and changing an id or a site are refused: deletes are soft, with a reason.
    /// - Creating records of a table the server alone creates, or changing a field the server owns, is refused.
    ///
    /// Triggers skip their work while the sync engine applies pulled changes (`sitesync_tracking()` is 0).
    /// The table's code, and the replica's actor, id and user are written into the triggers as
    /// literals once the replica has an identity (`initialize` reinstalls them), which saves lookups
    /// and function calls on every tracked write; before that the triggers call `sitesync_replica()`,
    /// which refuses the write.
    static func installTracking(_ db: Database, table: TableSchema) throws {
        let name = table.name
        let stamp = try StampSQL(db)
        let quoted = name.quotedDatabaseIdentifier
        let code = try TableCodes.assign(db, table: name)
        for suffix in ["ai", "bd", "bu_id", "bu_site"] + table.columns.map({ "au_\($0.name)" }) {
            try db.execute(sql: "DROP TRIGGER IF EXISTS \("_sitesync_\(name)_\(suffix)".quotedDatabaseIdentifier)")
        }
        func trigger(_ suffix: String) -> String { "_sitesync_\(name)_\(suffix)".quotedDatabaseIdentifier }

        try db.execute(
            sql: """
                CREATE TRIGGER \(trigger("bd")) BEFORE DELETE ON \(quoted) BEGIN
                    SELECT RAISE(ABORT, 'records of \(name) are never deleted: set _deleted to the reason instead (sitesync delete)');
                END;
                CREATE TRIGGER \(trigger("bu_id")) BEFORE UPDATE OF id ON \(quoted) WHEN NEW.id IS NOT OLD.id BEGIN
                    SELECT RAISE(ABORT, 'the id of a record of \(name) cannot change');
                END;
                CREATE TRIGGER \(trigger("bu_site")) BEFORE UPDATE OF site_id ON \(quoted)
                WHEN NEW.site_id IS NOT OLD.site_id AND sitesync_tracking() BEGIN
                    SELECT RAISE(ABORT, 'a record of \(name) cannot move to another site');
                END;
                """
        )
        let refusal = "SELECT RAISE(ABORT, '\(name) records are created by the server only');"
        try db.execute(
            sql: table.clientCreatable
                ? """
                    CREATE TRIGGER \(trigger("ai")) AFTER INSERT ON \(quoted) WHEN sitesync_tracking() BEGIN
                        INSERT INTO _sitesync_outbox (seq, tbl, id) VALUES (sitesync_tick(), \(code), NEW.id);
                        INSERT INTO _sitesync_shadows (tbl, id, hlc, actor, pending)
                        VALUES (\(code), NEW.id, last_insert_rowid(), \(stamp.actor), last_insert_rowid())
                        ON CONFLICT (tbl, id) DO UPDATE SET hlc = RAISE(ABORT,
                            'records of \(name) are never replaced: update the fields that change instead');
                    END;
                    """
                : "CREATE TRIGGER \(trigger("ai")) BEFORE INSERT ON \(quoted) WHEN sitesync_tracking() BEGIN \(refusal) END;"
        )
        for column in table.columns where !column.writable {
            try db.execute(
                sql: """
                    CREATE TRIGGER \(trigger("au_\(column.name)")) BEFORE UPDATE OF \(column.name.quotedDatabaseIdentifier) ON \(quoted)
                    WHEN NEW.\(column.name.quotedDatabaseIdentifier) IS NOT OLD.\(column.name.quotedDatabaseIdentifier) AND sitesync_tracking() BEGIN
                        SELECT RAISE(ABORT, 'the field \(column.name) of \(name) is written by the server only');
                    END;
                    """
            )
        }
        for column in table.columns where column.writable {
            let field = column.name.quotedDatabaseIdentifier
            try db.execute(
                sql: """
                    CREATE TRIGGER \(trigger("au_\(column.name)")) AFTER UPDATE OF \(field) ON \(quoted)
                    WHEN NEW.\(field) IS NOT OLD.\(field) AND sitesync_tracking() BEGIN
                        \(restampSQL(
                            table: code, field: column.name, id: "NEW.id", stamp: stamp,
                            live: livenessSQL(table, field: column.name, deleted: "NEW.\(TableSchema.deletedColumn.quotedDatabaseIdentifier)")
                        ));
                    END;
                    """
            )
        }
    }

    /// The statements that record a local write of `field` of the record `id` (an SQL expression):
    /// an outbox entry at a fresh HLC in place of the record's previous one, the field stamped with
    /// that HLC, and the field's previous stamp kept as its base unless an earlier unpushed edit
    /// already recorded one (or the record was created here and never pushed).
    ///
    /// When `live` (an SQL condition, nil for `_deleted` itself and for tables whose deletes are
    /// the server's) holds, the write also stamps `_deleted` (null) with the same HLC and keeps its
    /// base: an edit of a live record asserts that the record is live at the edit's time, whatever
    /// older write of `_deleted` waits in the outbox. A concurrent delete then meets the edit on
    /// `_deleted`, where last-writer-wins decides and logs it (docs/PROTOCOL.md, "Delete versus edit").
    ///
    /// The new entry's sequence number is read back with `last_insert_rowid()`, so one tick serves
    /// both the entry and the stamp.
    static func restampSQL(table code: Int64, field: String, id: String, stamp: StampSQL, live: String?) -> String {
        let path = "'$.\(field)'"
        let deleted = "'$.\(TableSchema.deletedColumn)'"
        let now = "json_array(last_insert_rowid(), \(stamp.replica), \(stamp.user))"
        // The base of `path` added to the JSON object `json`, unless it already has one.
        func keepBase(_ json: String, _ path: String) -> String {
            """
            CASE WHEN json_type(\(json), \(path)) IS NOT NULL THEN \(json)
            ELSE json_set(coalesce(\(json), '{}'), \(path), json(coalesce(
                json_extract(fields, \(path)),
                (SELECT json_array(_sitesync_shadows.hlc, a.replica, a.user) FROM _sitesync_actors AS a
                 WHERE a.actor = _sitesync_shadows.actor)))) END
            """
        }
        let fieldBase = keepBase("base", path)
        let stamped = "json_set(coalesce(fields, '{}'), \(path), \(now))"
        let (base, fields) =
            if let live {
                // Not while a pulled value replaced an unpushed `_deleted`: the held value is what gets
                // pushed, and the stamp must stay the one the server will hold.
                (
                    "CASE WHEN \(live) AND json_type(held, \(deleted)) IS NULL THEN \(keepBase(fieldBase, deleted)) ELSE \(fieldBase) END",
                    "CASE WHEN \(live) AND json_type(held, \(deleted)) IS NULL THEN json_set(\(stamped), \(deleted), \(now)) ELSE \(stamped) END"
                )
            } else {
                (fieldBase, stamped)
            }
        return """
            INSERT INTO _sitesync_outbox (seq, tbl, id) VALUES (sitesync_tick(), \(code), \(id));
            DELETE FROM _sitesync_outbox WHERE seq = (SELECT pending FROM _sitesync_shadows WHERE tbl = \(code) AND id = \(id));
            UPDATE _sitesync_shadows SET
                base = CASE WHEN pending IS NOT NULL AND base IS NULL THEN NULL ELSE \(base) END,
                fields = \(fields),
                held = CASE WHEN held IS NULL THEN NULL ELSE nullif(json_remove(held, \(path)), '{}') END,
                pending = last_insert_rowid()
            WHERE tbl = \(code) AND id = \(id)
            """
    }

    /// The SQL condition under which a write of `field` of `table` asserts the record live, given
    /// how the statement reads the record's `_deleted` (`NEW."_deleted"` in a trigger); nil when it never does.
    static func livenessSQL(_ table: TableSchema, field: String, deleted: String) -> String? {
        guard field != TableSchema.deletedColumn, table.isWritable(TableSchema.deletedColumn) else { return nil }
        return "\(deleted) IS NULL"
    }
}

/// The SQL that gives a local write its actor, replica id and user inside a trigger.
struct StampSQL {
    let actor: String
    let replica: String
    let user: String

    /// Literals of the stored identity, quoted by SQLite itself, and its actor (added if new); the
    /// refusing functions before `init`.
    init(_ db: Database) throws {
        if let identity = try Row.fetchOne(db, sql: "SELECT replica_id, user, quote(replica_id), quote(user) FROM _sitesync_meta") {
            actor = String(try Actors.intern(db, replica: identity[0], user: identity[1]))
            replica = identity[2]
            user = identity[3]
        } else {
            actor = "sitesync_replica()"
            replica = "sitesync_replica()"
            user = "sitesync_user()"
        }
    }
}
