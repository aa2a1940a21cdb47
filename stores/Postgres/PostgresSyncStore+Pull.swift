import PostgresNIO
import SiteSyncCore
import SiteSyncRules

extension PostgresSyncStore {
    /// Reads a pull page in one read-only transaction at repeatable read: every statement of it
    /// sees the same snapshot.
    public func pull(_ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int) async throws -> PullBatch {
        try await transaction(readOnly: true) { connection in
            // A page walks the (site_id, seq) index in order and stops at the limit. Right after a
            // bulk push, before autovacuum has analysed the table, the planner takes a site's new
            // rows for a handful, and sorts all of them instead: fifty times slower per page.
            try await connection.execute("SET LOCAL enable_sort = off")
            var storage = PullSteps(store: self, connection: connection)
            return try await PullTransaction.run(request, principal: principal, schema: schema, byteBudget: byteBudget, in: &storage)
        }
    }

    /// The statements of a pull page's steps, on the read transaction's connection.
    private struct PullSteps: AsyncPullStorage {
        let store: PostgresSyncStore
        let connection: PostgresTransaction

        func sites() async throws -> [String] {
            var sites: [String] = []
            for try await site in try await connection.query("SELECT site_id FROM sites ORDER BY site_id").decode(String.self) {
                sites.append(site)
            }
            return sites
        }

        func replicaState(_ replica: String) async throws -> StoredReplica? {
            try await PostgresSyncStore.replicaState(connection, replica, lock: false, logger: store.logger)
        }

        func records(site: String, after: Int64, limit: Int) async throws -> [PullTransaction.PulledRecord] {
            try await PostgresSyncStore.records(connection, site: site, after: after, limit: limit)
        }

        func values(_ tables: [(table: TableSchema, ids: [String])]) async throws -> [RecordKey: [FieldValue]] {
            try await PostgresSyncStore.values(connection, tables)
        }
    }

    /// The records of `site` after `after`, in sequence order, with their stamps: one statement.
    private static func records(_ connection: PostgresTransaction, site: String, after: Int64, limit: Int) async throws -> [PullTransaction.PulledRecord] {
        var records: [PullTransaction.PulledRecord] = []
        let shadows = try await connection.query(
            """
            SELECT tbl, id, seq, hlc, replica, "user", fields FROM records
            WHERE site_id = \(site) AND seq > \(after) ORDER BY seq LIMIT \(Int64(limit))
            """
        )
        for try await row in shadows {
            var cells = RowCells(row)
            let (table, id, seq) = (try cells.requiredText(), try cells.requiredText(), try cells.requiredInteger())
            let (hlc, replica, user, fields) = (try cells.requiredInteger(), try cells.requiredText(), try cells.requiredText(), try cells.text())
            let stamps = FieldStamps(base: Stamp(hlc: HLC(rawValue: hlc), replica: replica, user: user), overrides: try FieldStamps.overrides(fromJSON: fields))
            records.append(PullTransaction.PulledRecord(seq: seq, table: table, id: id, stamps: stamps, values: nil))
        }
        return records
    }

    /// The values of the records `ids` of each table: one statement per table.
    private static func values(_ connection: PostgresTransaction, _ tables: [(table: TableSchema, ids: [String])]) async throws -> [RecordKey: [FieldValue]] {
        var values: [RecordKey: [FieldValue]] = [:]
        for (table, ids) in tables {
            for try await row in try await connection.query(pageValues(table, ids: ids)) {
                var cells = RowCells(row)
                let id = try cells.requiredText()
                values[RecordKey(table: table.name, id: id)] = try table.columns.map { try cells.value($0) }
            }
        }
        return values
    }

    /// The id and the values of each record of `table` among `ids`.
    static func pageValues(_ table: TableSchema, ids: [String]) -> PostgresQuery {
        let columns = table.columnNames.map { "t.\(quoted($0))" }.joined(separator: ", ")
        return "SELECT k.id, \(unescaped: columns) FROM unnest(\(ids)) AS k(id) \(unescaped: rowByID(table, as: "t"))"
    }
}
