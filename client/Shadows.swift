import GRDB
import SiteSyncCore

/// SQL over the shadow rows (`_sitesync_shadows`), shared by the outbox, the pull and the history.
///
/// A shadow row stores its table as a code from `_sitesync_tables` and the replica and user of its
/// base stamp as an actor from `_sitesync_actors`; reads join the actor back, so that
/// ``FieldStamps/init(row:startingAt:)`` finds `hlc, replica, user, fields` as it always has.
enum ShadowSQL {
    /// The shadow rows (`s`) with their base stamp's actor (`a`).
    static let source = "_sitesync_shadows AS s JOIN _sitesync_actors AS a ON a.actor = s.actor"
    /// A shadow row's stamps, in the order ``FieldStamps/init(row:startingAt:)`` reads them.
    static let stamps = "s.hlc, a.replica, a.user, s.fields"
}

/// Which fields of a stored record hold the value the server has: every field of a record with
/// nothing pending; none of a record created here and not yet pushed; otherwise the fields not
/// edited since the last push (those in its `base`). A field edited since keeps the reason it was
/// given at its first edit, or needed none then.
struct SyncedFields {
    private let pending: Bool
    private let base: [String: Stamp?]?

    init(_ db: Database, code: Int64, id: String) throws {
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT pending, base FROM _sitesync_shadows WHERE tbl = ? AND id = ?"), arguments: [code, id]
        )
        pending = (row?[0] as Int64?) != nil
        base = try ShadowJSON.decode([String: Stamp?].self, row?[1])
    }

    func contains(_ field: String) -> Bool {
        guard pending else { return true }
        guard let base else { return false }
        return base[field] == nil
    }
}

/// The codes shadow rows store for table names: assigned when a table is first tracked, never changed.
struct TableCodes: Sendable {
    private var codes: [String: Int64] = [:]
    private var names: [Int64: String] = [:]

    /// Reads every assigned code.
    init(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT code, name FROM _sitesync_tables") {
            codes[row[1]] = row[0]
            names[row[0]] = row[1]
        }
    }

    /// The code of `table`, assigning the next one if it has none.
    static func assign(_ db: Database, table: String) throws -> Int64 {
        try db.execute(sql: "INSERT OR IGNORE INTO _sitesync_tables (name) VALUES (?)", arguments: [table])
        return try Int64.fetchOne(db, sql: "SELECT code FROM _sitesync_tables WHERE name = ?", arguments: [table])!
    }

    /// The code of `table`; every table of the replica's schema has one once it is migrated.
    func code(_ table: String) throws -> Int64 {
        guard let code = codes[table] else {
            throw DatabaseError(message: "the table \(table) is not tracked by this replica: its migrations did not install it")
        }
        return code
    }

    /// The table of `code`: nil for a code this replica never assigned.
    func name(_ code: Int64) -> String? { names[code] }
}

/// Interns the replica and user pairs stamped on shadow rows as the actor numbers the rows store.
///
/// Actors are never deleted or renumbered, so a number once read stays right for the whole session.
struct Actors {
    private struct Key: Hashable {
        var replica: String
        var user: String
    }

    private var known: [Key: Int64] = [:]

    /// The actor of `replica` and `user`, added if it is new.
    mutating func actor(_ db: Database, replica: String, user: String) throws -> Int64 {
        let key = Key(replica: replica, user: user)
        if let actor = known[key] { return actor }
        let actor = try Self.intern(db, replica: replica, user: user)
        known[key] = actor
        return actor
    }

    /// The actor of `replica` and `user`, added if it is new.
    static func intern(_ db: Database, replica: String, user: String) throws -> Int64 {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO _sitesync_actors (replica, user) VALUES (?, ?)")
            .execute(arguments: [replica, user])
        return try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT actor FROM _sitesync_actors WHERE replica = ? AND user = ?"),
            arguments: [replica, user]
        )!
    }
}
