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
    /// The triggers are plain SQL and call no function of the library's, so every SQLite client
    /// (the `sqlite3` shell, Python's `sqlite3` module, another program) writes with the same
    /// tracking, in its own transaction: each tracked write stamps itself with the next tick of
    /// the clock (``ClockSQL/next``). They skip their work while the sync engine
    /// applies pulled changes (``ClockSQL/isTracking``). The table's code, and the replica's actor,
    /// id and user are written into the triggers as literals once the replica has an identity
    /// (`initialize` reinstalls them), which saves lookups on every tracked write; before that the
    /// triggers refuse the write.
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
                WHEN NEW.site_id IS NOT OLD.site_id AND \(ClockSQL.isTracking) BEGIN
                    SELECT RAISE(ABORT, 'a record of \(name) cannot move to another site');
                END;
                """
        )
        let refusal = "SELECT RAISE(ABORT, '\(name) records are created by the server only');"
        try db.execute(
            sql: table.clientCreatable
                ? """
                CREATE TRIGGER \(trigger("ai")) AFTER INSERT ON \(quoted) WHEN \(ClockSQL.isTracking) BEGIN
                    INSERT INTO _sitesync_outbox (seq, tbl, id) VALUES (\(ClockSQL.next), \(code), NEW.id);
                    INSERT INTO _sitesync_shadows (tbl, id, hlc, actor, pending)
                    VALUES (\(code), NEW.id, last_insert_rowid(), \(stamp.actor), last_insert_rowid())
                    ON CONFLICT (tbl, id) DO UPDATE SET hlc = RAISE(ABORT,
                        'records of \(name) are never replaced: update the fields that change instead');
                END;
                """
                : "CREATE TRIGGER \(trigger("ai")) BEFORE INSERT ON \(quoted) WHEN \(ClockSQL.isTracking) BEGIN \(refusal) END;"
        )
        for column in table.columns where !column.writable {
            try db.execute(
                sql: """
                    CREATE TRIGGER \(trigger("au_\(column.name)")) BEFORE UPDATE OF \(column.name.quotedDatabaseIdentifier) ON \(quoted)
                    WHEN NEW.\(column.name.quotedDatabaseIdentifier) IS NOT OLD.\(column.name.quotedDatabaseIdentifier) AND \(ClockSQL.isTracking) BEGIN
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
                    WHEN NEW.\(field) IS NOT OLD.\(field) AND \(ClockSQL.isTracking) BEGIN
                        \(restampSQL(
                            table: code, field: column.name, id: "NEW.id", stamp: stamp,
                            live: livenessSQL(table, field: column.name, deleted: "NEW.\(TableSchema.deletedColumn.quotedDatabaseIdentifier)"),
                            unexplained: table.requiresReason && column.name != TableSchema.siteColumn ? "OLD.\(field) IS NOT NULL" : nil
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
    /// When `unexplained` (an SQL condition: the write replaces a value, in a table that asks a
    /// reason for that) holds, the field's value was synced and has no reason yet, and the write
    /// does not come through the library (which asks the person: ``ClockSQL/asksReason``), the
    /// field's reason for change becomes ``ReasonForChange/writtenOutsideLibrary``.
    ///
    /// The new entry's sequence number is read back with `last_insert_rowid()`, so one tick serves
    /// both the entry and the stamp.
    static func restampSQL(table code: Int64, field: String, id: String, stamp: StampSQL, live: String?, unexplained: String? = nil) -> String {
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
            INSERT INTO _sitesync_outbox (seq, tbl, id) VALUES (\(ClockSQL.next), \(code), \(id));
            DELETE FROM _sitesync_outbox WHERE seq = (SELECT pending FROM _sitesync_shadows WHERE tbl = \(code) AND id = \(id));
            UPDATE _sitesync_shadows SET
                base = CASE WHEN pending IS NOT NULL AND base IS NULL THEN NULL ELSE \(base) END,
                fields = \(fields),
                held = CASE WHEN held IS NULL THEN NULL ELSE nullif(json_remove(held, \(path)), '{}') END,
                \(unexplained.map { """
                    reasons = CASE WHEN \($0) AND NOT (pending IS NOT NULL AND base IS NULL)
                        AND json_type(reasons, \(path)) IS NULL AND NOT \(ClockSQL.asksReason)
                        THEN json_set(coalesce(reasons, '{}'), \(path), '\(ReasonForChange.writtenOutsideLibrary)') ELSE reasons END,
                    """ } ?? "")
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

    /// Literals of the stored identity, quoted by SQLite itself, and its actor (added if new);
    /// before `init`, an expression that refuses the write.
    init(_ db: Database) throws {
        if let identity = try Row.fetchOne(
            db, sql: "SELECT replica_id, user, quote(replica_id) AS replica_literal, quote(user) AS user_literal FROM _sitesync_meta")
        {
            actor = String(try Actors.intern(db, replica: identity["replica_id"], user: identity["user"]))
            replica = identity["replica_literal"]
            user = identity["user_literal"]
        } else {
            let refusal = "RAISE(ABORT, '\(ReplicaError.notInitialized.message.replacingOccurrences(of: "'", with: "''"))')"
            (actor, replica, user) = (refusal, refusal, refusal)
        }
    }
}

/// The replica's clock and tracking switch as SQL, in the one-row table `_sitesync_clock`, so that
/// the triggers need nothing from the process that writes:
///
/// - `hlc`: with the outbox's last sequence number, the hybrid logical clock: the greater of the
///   two is the greatest timestamp this replica issued, had acknowledged, or received
///   (``read(_:)``). A tracked write stamps itself, and appends its outbox entry, at the next tick
///   past both (``next``), as ``HybridLogicalClock/tick()`` does; so the clock row is written only
///   when an acknowledgement is about to empty the outbox (``keepPastOutbox(_:)``) or a server
///   reply moves it, and not once per write.
/// - `wall`: NULL, and the triggers read the system's wall clock through SQLite (`julianday('now')`,
///   fixed for the statement); set only inside a transaction of the library's own when its replica
///   was opened with a wall clock of the caller's (tests, simulations), and cleared before it commits.
/// - `tracking`: 1; 0 only inside the transaction that applies pulled changes, which sets it back
///   before it commits. Another connection never sees it 0.
/// - `asks_reason`: 0; 1 only inside a write transaction of the library's, which asks the person
///   for a reason for change wherever one is needed and records it itself, and clears it before it
///   commits. Other writers get ``ReasonForChange/writtenOutsideLibrary`` for a synced value they change.
enum ClockSQL {
    /// The next tick, as an SQL expression: past the outbox's last entry and the clock row, and at
    /// least the wall clock (milliseconds since 1970, shifted past the counter). Saturates at the
    /// greatest HLC rather than overflow, as ``HybridLogicalClock/tick()`` does. `max(seq)` of the
    /// outbox is one seek to the end of its B-tree.
    static let next = """
        max(
            min(coalesce((SELECT max(seq) FROM _sitesync_outbox), 0), 9223372036854775806) + 1,
            (SELECT max(
                min(hlc, 9223372036854775806) + 1,
                coalesce(wall, CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER)) << \(HLC.counterBits)
            ) FROM _sitesync_clock))
        """
    /// The condition under which the triggers track a write.
    static let isTracking = "(SELECT tracking FROM _sitesync_clock)"
    /// Whether the write comes through the library, which records the person's reasons for change.
    static let asksReason = "(SELECT asks_reason FROM _sitesync_clock)"

    /// Creates the clock row, at `start`.
    static func create(_ db: Database, start: String) throws {
        try db.execute(
            sql: """
                CREATE TABLE _sitesync_clock (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    hlc INTEGER NOT NULL,
                    wall INTEGER,
                    tracking INTEGER NOT NULL DEFAULT 1 CHECK (tracking IN (0, 1)),
                    asks_reason INTEGER NOT NULL DEFAULT 0 CHECK (asks_reason IN (0, 1))
                );
                INSERT INTO _sitesync_clock (id, hlc) VALUES (1, \(start));
                """
        )
    }

    /// The clock: the greater of the clock row and the outbox's last entry.
    static func read(_ db: Database) throws -> HLC {
        HLC(rawValue: try Int64.fetchOne(db, sql: "SELECT max(hlc, coalesce((SELECT max(seq) FROM _sitesync_outbox), 0)) FROM _sitesync_clock") ?? 0)
    }

    /// Moves the clock row past the outbox's last entry, before entries are removed from it.
    static func keepPastOutbox(_ db: Database) throws {
        try db.execute(sql: "UPDATE _sitesync_clock SET hlc = max(hlc, coalesce((SELECT max(seq) FROM _sitesync_outbox), 0))")
    }

    /// Advances the stored clock to `hlc` unless it is past it already.
    static func advance(_ db: Database, to hlc: HLC) throws {
        try db.execute(sql: "UPDATE _sitesync_clock SET hlc = max(hlc, ?)", arguments: [hlc.rawValue])
    }

    /// Runs `body` with tracking off, inside the caller's transaction.
    static func untracked<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        try db.execute(sql: "UPDATE _sitesync_clock SET tracking = 0")
        let result: T
        do {
            result = try body()
        } catch {
            try? db.execute(sql: "UPDATE _sitesync_clock SET tracking = 1")
            throw error
        }
        try db.execute(sql: "UPDATE _sitesync_clock SET tracking = 1")
        return result
    }
}

extension Replica {
    /// Runs `body`, the library's own tracked writes, in a write transaction in which the triggers
    /// leave reasons for change to the library (``ClockSQL/asksReason``) and read the replica's wall
    /// clock: the system's, as every other writer does, unless the replica was opened with one of its own.
    /// When a person is signed in, the transaction ends by signing what it wrote (``signTransaction(_:after:signer:)``).
    func trackedWrite<T>(_ body: (Database) throws -> T) throws -> T {
        let signer = try transactionSigner()
        return try writer.write { db in
            try db.cachedStatement(sql: "UPDATE _sitesync_clock SET asks_reason = 1, wall = ?")
                .execute(arguments: [state.hasOwnWallClock ? state.clock.wallMilliseconds : nil])
            let start = signer == nil ? HLC.zero : try ClockSQL.read(db)
            let result = try body(db)
            if let signer { try signTransaction(db, after: start, signer: signer) }
            try db.cachedStatement(sql: "UPDATE _sitesync_clock SET asks_reason = 0, wall = NULL").execute()
            return result
        }
    }
}
