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
            var transaction = PullTransaction(request, principal: principal, schema: schema, byteBudget: byteBudget)
            var step = try transaction.next(nil)
            while true {
                switch step {
                case .readSites:
                    var sites: [String] = []
                    for try await site in try await connection.query("SELECT site_id FROM sites ORDER BY site_id").decode(String.self) {
                        sites.append(site)
                    }
                    step = try transaction.next(.sites(sites))
                case .readReplica(let replica):
                    step = try transaction.next(.replica(try await Self.replicaState(connection, replica, lock: false, logger: self.logger)))
                case .readPage(let site, let after, let limit, let skipping):
                    step = try transaction.next(
                        .page(try await self.page(connection, site: site, after: after, limit: limit, skipping: skipping, schema: schema)))
                case .finished(let batch):
                    return batch
                }
            }
        }
    }

    /// The records of `site` after `after`, in sequence order, with their values in `schema`'s
    /// columns: one statement for the page, one per table for the values.
    private func page(
        _ connection: PostgresTransaction, site: String, after: Int64, limit: Int, skipping: String?, schema: Schema
    ) async throws -> [PullTransaction.PulledRecord] {
        var records: [PullTransaction.PulledRecord] = []
        var idsByTable: [String: [String]] = [:]
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
            // Records whose every field the pulling replica wrote are skipped: it holds them already.
            if !(stamps.overrides.isEmpty && replica == skipping) { idsByTable[table, default: []].append(id) }
            records.append(PullTransaction.PulledRecord(seq: seq, table: table, id: id, stamps: stamps, values: nil))
        }
        var values: [RecordKey: [FieldValue]] = [:]
        for (tableName, ids) in idsByTable {
            // Tables the client's schema does not have yet are left out.
            guard let table = try? schema.table(tableName) else { continue }
            for try await row in try await connection.query(Self.pageValues(table, ids: ids)) {
                var cells = RowCells(row)
                let id = try cells.requiredText()
                values[RecordKey(table: tableName, id: id)] = try table.columns.map { try cells.value($0) }
            }
        }
        for index in records.indices {
            records[index].values = values[RecordKey(table: records[index].table, id: records[index].id)]
        }
        return records
    }

    /// The id and the values of each record of `table` among `ids`.
    static func pageValues(_ table: TableSchema, ids: [String]) -> PostgresQuery {
        let columns = table.columnNames.map { "t.\(quoted($0))" }.joined(separator: ", ")
        return "SELECT k.id, \(unescaped: columns) FROM unnest(\(ids)) AS k(id) \(unescaped: rowByID(table, as: "t"))"
    }
}
