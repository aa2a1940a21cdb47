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
            var remaining = limit
            var more = false
            var cursor: [String: Int64] = [:]
            var groups: [String: RecordGroup] = [:]
            var order: [String] = []
            let scan = try db.cachedStatement(
                sql: "SELECT tbl, id, seq, hlc, replica, user, fields FROM records WHERE site_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            )
            for site in sites {
                let from = request.cursor[site] ?? 0
                cursor[site] = from
                let shadows = try Row.fetchAll(scan, arguments: [site, from, remaining + 1])
                if shadows.count > remaining { more = true }
                for shadow in shadows.prefix(remaining) {
                    cursor[site] = shadow["seq"]
                    let tableName: String = shadow["tbl"]
                    // Tables and fields the client's schema does not have yet are left out.
                    guard schema.contains(table: tableName), let table = try? schema.table(tableName) else { continue }
                    guard let data = try Row.fetchOne(
                        db.cachedStatement(sql: "\(selectSQL(table)) WHERE id = ?"), arguments: [shadow["id"] as String]
                    ) else { continue }
                    var stamps = try FieldStamps(row: shadow, startingAt: 3)
                    if !stamps.overrides.isEmpty {
                        stamps.overrides = stamps.overrides.filter { table.column($0.key) != nil }
                    }
                    let values = (1...table.columns.count).map { data.fieldValue(atIndex: $0) }
                    if groups[tableName] == nil {
                        groups[tableName] = RecordGroup(table: tableName, columns: table.columnNames, rows: [])
                        order.append(tableName)
                    }
                    groups[tableName]!.rows.append(RecordRow(id: shadow["id"], stamps: stamps, values: values))
                }
                remaining -= min(shadows.count, remaining)
                if remaining == 0 && more { break }
            }
            // Sites not reached in this page keep the cursor the client sent.
            for site in sites where cursor[site] == nil {
                cursor[site] = request.cursor[site] ?? 0
            }
            return PullBatch(groups: order.map { groups[$0]! }, cursor: cursor, more: more)
        }
    }

    private func selectSQL(_ table: TableSchema) -> String {
        let columns = (["id"] + table.columnNames).map(\.quotedDatabaseIdentifier).joined(separator: ", ")
        return "SELECT \(columns) FROM \(table.name.quotedDatabaseIdentifier)"
    }
}
