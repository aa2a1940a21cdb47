import Foundation
import SiteSyncCore

/// A push that passed the checks needing no stored state, with its values normalised.
public struct CheckedPush: Sendable {
    /// The pushing replica.
    public var replica: String
    /// The groups, resolved against the client's schema.
    package var groups: [PushValidation.CheckedGroup]
    /// When the server received it, ISO 8601.
    public var receivedAt: String
    /// The sequence number the replica says the server acknowledged last, when it knows it.
    package var acked: HLC?
    /// The fingerprints of the replica's pushes still unanswered, this one included.
    package var sent: [String]
    /// This push's ``PushRequest/fingerprint``, kept with the replica's state when it applies anything.
    package var fingerprint: String
    /// Per group, per row: each field's proven author (``AuthorshipCheck``), nil entries for a
    /// field no signature covers; nil for a row none of whose fields is signed; empty for a push
    /// without signatures.
    package var authors: [[[String?]?]] = []
    /// What each proven author may write.
    package var authorRights: [String: AuthorRights] = [:]
    /// The proven authors whose account is deactivated.
    package var deactivatedAuthors: Set<String> = []

    /// The proven authors of row `row` of group `group`, one per field; nil when none is proven.
    package func authors(group: Int, row: Int) -> [String?]? {
        group < authors.count && row < authors[group].count ? authors[group][row] : nil
    }

    /// The names the fields of row `row` of group `group` are stamped with: each proven author's
    /// full name, and the group's user for a field no signature covers; nil when none is proven.
    package func stampedUsers(group: Int, row: Int) -> [String?]? {
        authors(group: group, row: row)?.map { $0.map { authorRights[$0]?.fullName ?? $0 } }
    }

    /// The sites whose records the push writes, when every row names its site; nil when a row
    /// leaves it to the stored record.
    package var sites: Set<String>? {
        var sites = Set<String>()
        for group in groups {
            for site in group.sites {
                guard let site else { return nil }
                sites.insert(site)
            }
        }
        return sites
    }
}

/// Checks of a push that need no stored state, run before any store is touched.
///
/// The store then checks what needs the stored record (required fields of a new record, the site
/// of an existing one) inside its transaction, so a refused push writes nothing.
package enum PushValidation {
    private struct RecordKey: Hashable {
        var table: String
        var id: String
    }

    /// A pushed group resolved against the schema.
    package struct CheckedGroup: Sendable {
        package var group: ChangeGroup
        package var table: TableSchema
        /// Per row: the values normalised by the schema, in the order of the group's fields.
        package var values: [[FieldValue]]
        /// Per row: the site the row names, when the group writes `site_id`.
        package var sites: [String?]
        /// Per row: its reasons for change, trimmed, one per field; nil when the row gives none.
        package var reasons: [[String?]?]
    }

    package static func check(
        _ request: PushRequest,
        principal: Principal,
        schema: Schema,
        serverMilliseconds: Int64,
        maximumSkewMilliseconds: Int64,
        receivedAt: String
    ) throws -> CheckedPush {
        guard principal.canSync else { throw principal.cannotSync }
        guard ReplicaID.isValid(request.replica) else {
            throw SyncRefusal.validation("The push names an invalid replica: \(ReplicaID.rule).")
        }
        try principal.requireReplica(request.replica)
        let sent = request.sent ?? []
        guard sent.count <= 256, sent.allSatisfy({ $0.utf8.count <= 64 }) else {
            throw SyncRefusal.validation("A push lists at most 256 unanswered pushes in \"sent\", each a fingerprint of at most 64 characters.")
        }
        let records = request.groups.reduce(0) { $0 + $1.rows.count }
        guard records <= SyncProtocol.maximumPushRecords else {
            throw SyncRefusal.validation(
                "A push carries at most \(SyncProtocol.maximumPushRecords) records; this one carries \(records). Send them in smaller batches.")
        }
        var latest = HLC.zero
        var seen = Set<RecordKey>()
        var checked: [CheckedGroup] = []
        checked.reserveCapacity(request.groups.count)
        for group in request.groups {
            let table: TableSchema
            do {
                table = try schema.table(group.table)
            } catch {
                throw SyncRefusal.validation(error)
            }
            if let field = group.columns.first(where: { table.column($0) != nil && !table.isWritable($0) }) {
                throw SyncRefusal.forbidden("The field \(field) of \(table.name) is written by the server only.")
            }
            guard Set(group.columns).count == group.columns.count, !group.columns.isEmpty else {
                throw SyncRefusal.validation("A group of \(table.name) must name each field once.")
            }
            if let problem = UserName.problem(group.user) {
                throw SyncRefusal.validation("A group of \(table.name) names an invalid user. \(problem)")
            }
            let positions: [Int]
            do {
                positions = try table.positions(of: group.columns)
            } catch {
                throw SyncRefusal.validation(error)
            }
            let sitePosition = group.columns.firstIndex(of: TableSchema.siteColumn)
            var rows: [[FieldValue]] = []
            var sites: [String?] = []
            var reasons: [[String?]?] = []
            rows.reserveCapacity(group.rows.count)
            sites.reserveCapacity(group.rows.count)
            reasons.reserveCapacity(group.rows.count)
            for row in group.rows {
                guard row.values.count == group.columns.count,
                    row.hlcs.map({ $0.count == group.columns.count }) ?? true,
                    row.bases.map({ $0.count == group.columns.count }) ?? true,
                    row.reasons.map({ $0.count == group.columns.count }) ?? true
                else {
                    throw SyncRefusal.validation("Record \(row.id) of \(table.name) has \(row.values.count) values for \(group.columns.count) fields.")
                }
                guard seen.insert(RecordKey(table: table.name, id: row.id)).inserted else {
                    throw SyncRefusal.validation("Record \(row.id) of \(table.name) appears twice in one push.")
                }
                let normalized: [FieldValue]
                do {
                    try table.validate(id: row.id)
                    normalized = try table.validate(row.values, at: positions)
                } catch {
                    throw SyncRefusal.validation(error)
                }
                var site: String?
                if let sitePosition, case .text(let named) = normalized[sitePosition] {
                    guard principal.canAccess(site: named) else {
                        throw SyncRefusal.forbidden("This token may not write records of site \(named); nothing was written.")
                    }
                    site = named
                }
                rows.append(normalized)
                sites.append(site)
                reasons.append(try row.reasons.map { try trimmed($0, row: row, table: table, columns: group.columns) })
                guard row.seq > .zero else {
                    throw SyncRefusal.validation("Record \(row.id) of \(table.name) has a sequence number below 1.")
                }
                for index in group.columns.indices {
                    let hlc = row.hlc(at: index)
                    guard hlc <= row.seq else {
                        throw SyncRefusal.validation("Record \(row.id) of \(table.name) has a field stamped after its sequence number.")
                    }
                }
                latest = max(latest, row.seq)
            }
            checked.append(CheckedGroup(group: group, table: table, values: rows, sites: sites, reasons: reasons))
        }
        let ahead = latest.milliseconds - serverMilliseconds
        if ahead > maximumSkewMilliseconds {
            throw SyncRefusal.clockSkew(aheadBy: ahead, limit: maximumSkewMilliseconds)
        }
        return CheckedPush(
            replica: request.replica, groups: checked, receivedAt: receivedAt, acked: request.acked, sent: sent, fingerprint: request.fingerprint
        )
    }

    /// A row's reasons for change, checked and trimmed.
    private static func trimmed(_ reasons: [String?], row: ChangeRow, table: TableSchema, columns: [String]) throws -> [String?] {
        var trimmed: [String?] = []
        trimmed.reserveCapacity(reasons.count)
        for (index, reason) in reasons.enumerated() {
            guard let reason else {
                trimmed.append(nil)
                continue
            }
            switch ReasonForChange.checked(reason) {
            case .success(let text): trimmed.append(text)
            case .failure(let problem):
                throw SyncRefusal.validation("\(table.name).\(columns[index]): record \(row.id): \(problem.message)")
            }
        }
        return trimmed
    }
}
