import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension ReplicaSync {
    /// The per-site cursor of the last pulled batch.
    package func cursor() async throws -> [String: Int64] {
        try await writer.read(Self.cursor)
    }

    /// The per-site cursor of the last pulled batch, read in `db`.
    static func cursor(_ db: Database) throws -> [String: Int64] {
        try ShadowJSON.decode([String: Int64].self, String.fetchOne(db, sql: "SELECT cursor FROM _sitesync_meta")) ?? [:]
    }

    /// Applies a pulled batch and its cursor in one transaction; returns how many records changed.
    ///
    /// Each field takes the pulled value when its version is greater than the local one. A local value
    /// not yet pushed that loses is held in the outbox, so it is still pushed and the server logs it.
    /// Applying the same batch twice changes nothing the second time. Applied writes are not tracked.
    @discardableResult
    package func apply(_ response: PullResponse) async throws -> Int {
        try await apply(response, completingSync: false).changed
    }

    /// What applying a page did.
    package struct AppliedPage: Sendable {
        /// The records that changed here.
        package var changed: Int
        /// When the sync was recorded as completed: what it still has to do.
        package var completion: SyncCompletion?
    }

    /// Applies a pulled batch (``apply(_:)``); with `completingSync`, the last page of a sync's pull,
    /// also counts what is left to push and, when nothing is, records that the sync completed
    /// (``recordSyncCompleted()``), in the same transaction: the sync learns whether it needs
    /// another round without another trip to the database.
    package func apply(_ response: PullResponse, completingSync: Bool) async throws -> AppliedPage {
        try state.checkServerClock(response.hlc)
        // The HLC receive rule: the clock passes every stamp received, so that an edit of a pulled
        // field is always stamped after the version it overwrites, even when the server's own
        // clock (a restarted instance, say) reads earlier than the stamps it serves.
        let latest =
            response.groups.lazy.flatMap(\.rows).map { row in
                row.stamps.overrides.values.reduce(row.stamps.base.version.hlc) { max($0, $1.version.hlc) }
            }.max() ?? .zero
        try state.checkPulledStamp(latest)
        return try await writer.write { db in
            defer { db.boundStatementCache() }
            let changed = try ClockSQL.untracked(db) {
                var changed = 0
                var actors = Actors()
                for group in response.groups {
                    // Tables and fields this build does not know are left to a newer build.
                    guard let table = try? schema.table(group.table) else { continue }
                    let plan = try GroupPlan(db, table: table, code: tableCodes.code(table.name), group: group)
                    var changedHere = 0
                    for row in group.rows where try applyRow(db, plan, row: row, actors: &actors) {
                        changedHere += 1
                    }
                    // The rows are written through the SQLite C API, which GRDB's observers do
                    // not see (``observe(_:includeDeleted:)``): they are told.
                    if changedHere > 0 { try db.notifyChanges(in: Table(table.name)) }
                    changed += changedHere
                }
                return changed
            }
            var cursor = try Self.cursor(db)
            cursor.merge(response.cursor, uniquingKeysWith: max)
            try db.execute(sql: "UPDATE _sitesync_meta SET cursor = ?", arguments: [ShadowJSON.encode(cursor)])
            state.clock.receive(latest)
            try recordServerReply(db, hlc: response.hlc)
            var applied = AppliedPage(changed: changed)
            guard completingSync else { return applied }
            // Records held back for a reason are not sent, so they need no other round.
            if try Self.sendableCount(db) == 0 { applied.completion = try recordSyncCompleted(db) }
            return applied
        }
    }

    /// How the fields of a pulled group map onto a local table, and the statements to apply them.
    private struct GroupPlan {
        let table: TableSchema
        /// The table's code in the shadow rows.
        let code: Int64
        /// The group's fields this build knows, with their position in the group.
        let known: [(offset: Int, element: String)]
        /// The column of each of `known`, which normalises its pulled values (``ColumnSchema/normalize(_:)``).
        let columns: [ColumnSchema]
        let insert: Statement
        let insertShadow: Statement
        /// The shadow rows of the group's records this replica holds already, by id.
        let shadows: [String: ShadowRow]

        init(_ db: Database, table: TableSchema, code: Int64, group: RecordGroup) throws {
            self.table = table
            self.code = code
            self.known = group.columns.enumerated().filter { table.column($0.element) != nil }
            self.columns = known.map { table.column($0.element)! }
            insert = try db.cachedStatement(sql: table.insertSQL(columns: known.map(\.element)))
            insertShadow = try db.cachedStatement(sql: "INSERT INTO _sitesync_shadows (tbl, id, hlc, actor, fields) VALUES (?, ?, ?, ?, ?)")
            // One lookup for the whole group: records new to this replica (a first sync: all) skip the point lookup.
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(ShadowRow.columns) FROM \(ShadowRow.source)
                    WHERE s.tbl = ? AND s.id IN (SELECT value FROM json_each(?))
                    """,
                arguments: [code, JSONWriter.array(of: group.rows.map(\.id))]
            )
            shadows = Dictionary(
                try rows.map { row in
                    let shadow = try ShadowRow(row)
                    return (shadow.id, shadow)
                }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Merges one pulled record; returns whether anything changed.
    private func applyRow(_ db: Database, _ plan: GroupPlan, row: RecordRow, actors: inout Actors) throws -> Bool {
        let table = plan.table
        let known = plan.known
        guard let shadow = plan.shadows[row.id] else {
            // Tracking is off: the insert trigger does not run, the shadow row records the pulled stamps.
            var stamps = row.stamps
            if !stamps.overrides.isEmpty {
                stamps.overrides = stamps.overrides.filter { table.column($0.key) != nil }
            }
            let actor = try actors.actor(db, replica: stamps.base.version.replica, user: stamps.base.user)
            try plan.insertShadow.execute { arguments in
                arguments.bind(plan.code)
                arguments.bind(row.id)
                arguments.bind(stamps.base.version.hlc.rawValue)
                arguments.bind(actor)
                arguments.bind(stamps.overridesJSON)
            }
            try plan.insert.execute { arguments in
                arguments.bind(row.id)
                for (index, (offset, _)) in known.enumerated() { arguments.bind(plan.columns[index].normalize(row.values[offset])) }
            }
            return true
        }

        var local = shadow.stamps
        let pending = shadow.pending != nil
        let base = try shadow.base()
        var held = try shadow.held()
        var updates: [(column: String, value: FieldValue)] = []
        var current: Row?
        for (position, (index, column)) in known.enumerated() {
            let remote = row.stamps[column]
            guard remote.version > local[column].version else { continue }
            let isPendingField = pending && (base == nil || base?[column] != nil)
            if isPendingField, held[column] == nil {
                if current == nil {
                    current = try Row.fetchOne(db, sql: "\(table.selectSQL) WHERE id = ?", arguments: [row.id])
                }
                let position = table.position(of: column)! + 1
                held[column] = HeldValue(value: current?.fieldValue(atIndex: position) ?? .null, stamp: local[column])
            }
            local[column] = remote
            updates.append((column, plan.columns[position].normalize(row.values[index])))
        }
        guard !updates.isEmpty else { return false }
        let assignments = updates.map { "\($0.column.quotedDatabaseIdentifier) = ?" }.joined(separator: ", ")
        // Cached: compiling an UPDATE of a tracked table compiles its triggers as well.
        try db.cachedStatement(sql: "UPDATE \(table.name.quotedDatabaseIdentifier) SET \(assignments) WHERE id = ?")
            .execute(arguments: StatementArguments(updates.map(\.value) + [row.id]))
        local.compact(fields: table.columnNames)
        try db.cachedStatement(sql: "UPDATE _sitesync_shadows SET hlc = ?, actor = ?, fields = ?, held = ? WHERE tbl = ? AND id = ?").execute(
            arguments: [
                local.base.version.hlc.rawValue, actors.actor(db, replica: local.base.version.replica, user: local.base.user),
                local.overridesJSON, held.isEmpty ? nil : ShadowJSON.encode(held), plan.code, row.id,
            ]
        )
        return true
    }
}
