import GRDB
import SiteSyncCore

/// A shadow row (`_sitesync_shadows`) with its base stamp's actor, read by column name.
///
/// A shadow row stores its table as a code from `_sitesync_tables` and the replica and user of its
/// base stamp as an actor from `_sitesync_actors`; reads join the actor back. Every read of whole
/// shadow rows selects ``columns`` (from ``source`` or a join to it) and decodes with ``init(_:)``;
/// the positions live here, in ``Column``, and nowhere else. The JSON
/// columns stay text until asked for, so a read that needs the stamps decodes no more.
struct ShadowRow {
    /// The columns a read selects, in this order.
    enum Column: Int, CaseIterable {
        case table, id, hlc, replica, user, fields, pending, base, held, reasons

        var expression: String {
            switch self {
            case .table: "s.tbl"
            case .id: "s.id"
            case .hlc: "s.hlc"
            case .replica: "a.replica"
            case .user: "a.user"
            case .fields: "s.fields"
            case .pending: "s.pending"
            case .base: "s.base"
            case .held: "s.held"
            case .reasons: "s.reasons"
            }
        }
    }

    /// The select list of a shadow row, aliases `s` (shadows) and `a` (actors).
    static let columns = Column.allCases.map(\.expression).joined(separator: ", ")
    /// The shadow rows (`s`) with their base stamp's actor (`a`).
    static let source = "_sitesync_shadows AS s JOIN _sitesync_actors AS a ON a.actor = s.actor"

    /// The table's code (``TableCodes``).
    var table: Int64
    var id: String
    var stamps: FieldStamps
    /// The outbox sequence number of the record's pending change; nil when nothing is pending.
    var pending: HLC?
    private var baseJSON: String?
    private var heldJSON: String?
    private var reasonsJSON: String?

    init(_ row: Row) throws {
        table = row[Column.table.rawValue]
        id = row[Column.id.rawValue]
        stamps = FieldStamps(
            base: Stamp(hlc: HLC(rawValue: row[Column.hlc.rawValue]), replica: row[Column.replica.rawValue], user: row[Column.user.rawValue]),
            overrides: try FieldStamps.overrides(fromJSON: row[Column.fields.rawValue])
        )
        pending = (row[Column.pending.rawValue] as Int64?).map(HLC.init(rawValue:))
        baseJSON = row[Column.base.rawValue]
        heldJSON = row[Column.held.rawValue]
        reasonsJSON = row[Column.reasons.rawValue]
    }

    /// What each field edited since the last push was based on; nil for a record created here and
    /// not pushed yet (every field is new).
    func base() throws -> [String: Stamp?]? { try ShadowJSON.decode([String: Stamp?].self, baseJSON) }

    /// The values held back for fields written during a push, by field.
    func held() throws -> [String: HeldValue] { try ShadowJSON.decode([String: HeldValue].self, heldJSON) ?? [:] }

    /// The reasons for change given, by field; nil when none was.
    func reasons() throws -> [String: String]? { try ShadowJSON.decode([String: String].self, reasonsJSON) }
}

/// Which fields of a stored record hold the value the server has: every field of a record with
/// nothing pending; none of a record created here and not yet pushed; otherwise the fields not
/// edited since the last push (those in its `base`). A field edited since keeps the reason it was
/// given at its first edit, or needed none then.
struct SyncedFields {
    private let pending: Bool
    private let base: [String: Stamp?]?

    init(_ db: Database, code: Int64, id: String) throws {
        // Two columns of the row, on the path of every edit: no actor to join, no stamps to decode.
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT pending, base FROM _sitesync_shadows WHERE tbl = ? AND id = ?"), arguments: [code, id]
        )
        pending = (row?["pending"] as Int64?) != nil
        base = try ShadowJSON.decode([String: Stamp?].self, row?["base"])
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
            let (code, name): (Int64, String) = (row["code"], row["name"])
            codes[name] = code
            names[code] = name
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
