import GRDB
import SiteSyncCore

extension Replica {
    /// Installs the triggers that track local writes of `table` into the outbox, in the writer's transaction.
    ///
    /// - An insert creates the shadow row: every field stamped with one fresh HLC, pending. It needs no
    ///   tracking check: a pulled record's shadow row is written before its data row, so the
    ///   trigger's insert is ignored, and a local insert never finds one (records are never deleted).
    /// - An update of a field re-stamps that field, marks the record pending with the new HLC, and
    ///   records the field's previous stamp as its base unless an earlier unpushed edit already did.
    /// - Deleting a row and changing an id or a site are refused: deletes are soft, with a reason.
    /// - Creating records of a table the server alone creates, or changing a field the server owns, is refused.
    ///
    /// Triggers skip their work while the sync engine applies pulled changes (`sitesync_tracking()` is 0).
    /// The replica id and user are written into the triggers as literals once the replica has an
    /// identity (`initialize` reinstalls them), which saves two function calls per tracked write;
    /// before that the triggers call `sitesync_replica()`, which refuses the write.
    static func installTracking(_ db: Database, table: TableSchema) throws {
        let name = table.name
        let stamp = try StampSQL(db)
        let quoted = name.quotedDatabaseIdentifier
        let literal = "'\(name)'"
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
                    CREATE TRIGGER \(trigger("ai")) AFTER INSERT ON \(quoted) BEGIN
                        INSERT OR IGNORE INTO _sitesync_records (tbl, id, hlc, replica, user, pending)
                        SELECT \(literal), NEW.id, s.h, \(stamp.replica), \(stamp.user), s.h
                        FROM (SELECT sitesync_tick() AS h) AS s;
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
                        \(restampSQL(table: name, field: column.name, id: "NEW.id", stamp: stamp));
                    END;
                    """
            )
        }
    }

    /// The statement that records a local write of `field` in the record's shadow row: a fresh stamp,
    /// the record pending at the new HLC, and the field's previous stamp kept as its base unless an
    /// earlier unpushed edit already recorded one (or the record was created here and never pushed).
    static func restampSQL(table: String, field: String, id: String, stamp: StampSQL) -> String {
        let path = "'$.\(field)'"
        return """
            UPDATE _sitesync_records SET
                base = CASE
                    WHEN pending IS NOT NULL AND base IS NULL THEN NULL
                    WHEN json_type(base, \(path)) IS NOT NULL THEN base
                    ELSE json_set(coalesce(base, '{}'), \(path),
                                  json(coalesce(json_extract(fields, \(path)), json_array(hlc, replica, user))))
                END,
                fields = json_set(coalesce(fields, '{}'), \(path), json_array(s.h, \(stamp.replica), \(stamp.user))),
                held = CASE WHEN held IS NULL THEN NULL ELSE nullif(json_remove(held, \(path)), '{}') END,
                pending = s.h
            FROM (SELECT sitesync_tick() AS h) AS s
            WHERE tbl = '\(table)' AND id = \(id)
            """
    }
}

/// The SQL that gives a local write its replica id and user inside a trigger.
struct StampSQL {
    let replica: String
    let user: String

    /// Literals of the stored identity, quoted by SQLite itself; the refusing functions before `init`.
    init(_ db: Database) throws {
        if let identity = try Row.fetchOne(db, sql: "SELECT quote(replica_id), quote(user) FROM _sitesync_meta") {
            replica = identity[0]
            user = identity[1]
        } else {
            replica = "sitesync_replica()"
            user = "sitesync_user()"
        }
    }
}
