import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension SQLiteSyncStore {
    public func pull(_ request: PullRequest, principal: Principal, schema: Schema) async throws -> PullBatch {
        let limit = min(max(request.limit, 1), SyncProtocol.maximumPullLimit)
        // One read transaction: a consistent snapshot of every site's sequence.
        return try await writer.read { db in
            let sites: [String]
            switch principal.role {
            case .site: sites = principal.site.map { [$0] } ?? []
            case .reviewer: sites = try String.fetchAll(db, sql: "SELECT site_id FROM sites ORDER BY site_id")
            case .admin: throw ServerError.forbidden("An admin token manages tokens; it cannot sync records.")
            }
            // A replica pulls only once its pushes are answered: if the server applied more under its
            // id than it knows of, another copy of its file pushed them.
            if let replica = principal.replica, let acked = request.acked,
                let last = try Int64.fetchOne(db, sql: "SELECT last_seq FROM replicas WHERE replica_id = ?", arguments: [replica]),
                last > acked.rawValue
            {
                throw ServerError.replicaDiverged
            }
            var remaining = limit
            var more = false
            var cursor: [String: Int64] = [:]
            var groups: [String: RecordGroup] = [:]
            var order: [String] = []
            // Records whose every field the pulling replica wrote are skipped: it holds them already.
            let scan = try db.cachedStatement(
                sql: """
                    SELECT tbl, id, seq, hlc, replica, user, fields FROM records
                    WHERE site_id = ? AND seq > ? AND NOT (replica = ? AND fields IS NULL)
                    ORDER BY seq LIMIT ?
                    """
            )
            let latest = try db.cachedStatement(sql: "SELECT seq FROM sites WHERE site_id = ?")
            for site in sites {
                let from = request.cursor[site] ?? 0
                cursor[site] = from
                let shadows = try Row.fetchAll(scan, arguments: [site, from, request.replica ?? "", remaining + 1])
                let page = shadows.prefix(remaining)
                if shadows.count > remaining {
                    more = true
                    cursor[site] = page.last?["seq"] ?? from
                } else {
                    // Everything of this site fits: the cursor moves past the skipped records too.
                    cursor[site] = max(from, try Int64.fetchOne(latest, arguments: [site]) ?? 0)
                }
                // The records' values: one query per table for the whole page, not one per record.
                var idsByTable: [String: [String]] = [:]
                for shadow in page { idsByTable[shadow[0], default: []].append(shadow[1]) }
                var valuesByTable: [String: (table: TableSchema, values: [String: [FieldValue]])] = [:]
                for (tableName, ids) in idsByTable {
                    // Tables and fields the client's schema does not have yet are left out.
                    guard let table = try? schema.table(tableName) else { continue }
                    var values: [String: [FieldValue]] = [:]
                    values.reserveCapacity(ids.count)
                    let rows = try Row.fetchCursor(
                        db.cachedStatement(sql: "\(table.selectSQL) WHERE id IN (SELECT value FROM json_each(?))"),
                        arguments: [JSONWriter.array(of: ids)]
                    )
                    while let row = try rows.next() {
                        values[row[0]] = (1...table.columns.count).map { row.fieldValue(atIndex: $0) }
                    }
                    valuesByTable[tableName] = (table, values)
                }
                for shadow in page {
                    let tableName: String = shadow[0]
                    let id: String = shadow[1]
                    guard let (table, byID) = valuesByTable[tableName], let values = byID[id] else { continue }
                    var stamps = try FieldStamps(row: shadow, startingAt: 3)
                    if !stamps.overrides.isEmpty {
                        stamps.overrides = stamps.overrides.filter { table.column($0.key) != nil }
                    }
                    if groups[tableName] == nil {
                        groups[tableName] = RecordGroup(table: tableName, columns: table.columnNames, rows: [])
                        order.append(tableName)
                    }
                    groups[tableName]!.rows.append(RecordRow(id: id, stamps: stamps, values: values))
                }
                remaining -= page.count
                if remaining == 0 && more { break }
            }
            // Sites not reached in this page keep the cursor the client sent.
            for site in sites where cursor[site] == nil {
                cursor[site] = request.cursor[site] ?? 0
            }
            return PullBatch(groups: order.map { groups[$0]! }, cursor: cursor, more: more)
        }
    }
}
