import Foundation
import SiteSyncCore

/// One row of the audit trail, decoded: one record's change as the server received it.
///
/// Every store keeps the same columns (docs/AUDIT.md); this turns them into the history's entries
/// and the export's field changes, so both read alike whichever store holds them.
package struct AuditRow {
    package struct Change {
        package var field: String
        package var old: FieldValue
        package var new: FieldValue
        package var hlc: HLC
        package var base: Version?
        package var outcome: String
        /// Why: the reason for change given, or for a delete the delete's own reason.
        package var reason: String?
        /// The conflict the change caused.
        package var conflict: String?
        /// The username whose signature covers the change; nil when none does.
        package var username: String?
    }

    package var receivedAt: String
    package var site: String
    package var table: String
    package var recordID: String
    package var replica: String
    package var user: String
    package var seq: HLC
    package var fields: [String]
    package var newValues: [FieldValue]
    package var changes: [Change]

    /// Decodes a row from its stored columns (the JSON ones as text), each value in its column's
    /// type: JSON writes the real 68.0 as 68.
    package init(
        receivedAt: String, site: String, table: String, recordID: String, replica: String, user: String, seq: HLC,
        fields fieldsJSON: String, newValues newJSON: String, oldValues oldJSON: String?, hlcs hlcsJSON: String?, bases basesJSON: String?,
        outcomes: String?, reasons reasonsJSON: String?, conflicts conflictsJSON: String?, authors authorsJSON: String?, schema: Schema
    ) throws {
        let decoder = JSONDecoder()
        func decode<T: Decodable>(_ type: T.Type, _ text: String?) throws -> T? {
            guard let text else { return nil }
            return try decoder.decode(T.self, from: Data(text.utf8))
        }
        self.receivedAt = receivedAt
        self.site = site
        self.table = table
        self.recordID = recordID
        self.replica = replica
        self.user = user
        self.seq = seq
        fields = try decode([String].self, fieldsJSON) ?? []
        let columns = fields.map { (try? schema.table(table))?.column($0) }
        func typed(_ values: [FieldValue]?) -> [FieldValue]? {
            values.map { values in values.enumerated().map { index, value in index < columns.count ? columns[index]?.normalize(value) ?? value : value } }
        }
        newValues = typed(try decode([FieldValue].self, newJSON)) ?? []
        let old = typed(try decode([FieldValue].self, oldJSON))
        let hlcs = try decode([HLC].self, hlcsJSON)
        let bases = try decode([Version?].self, basesJSON)
        let outcomes = Array(outcomes ?? "")
        let reasons = try decode([String?].self, reasonsJSON)
        let conflicts = try decode([String?].self, conflictsJSON)
        let authors = AuditAuthors(json: authorsJSON, count: fields.count)
        var changes: [Change] = []
        for (index, field) in fields.enumerated() where index < newValues.count {
            changes.append(
                Change(
                    field: field,
                    old: old?[index] ?? .null,
                    new: newValues[index],
                    hlc: hlcs?[index] ?? seq,
                    base: bases?[index] ?? nil,
                    outcome: index < outcomes.count ? AuditOutcome.name(outcomes[index]) : "unchanged",
                    reason: Self.element(reasons, index) ?? (field == TableSchema.deletedColumn ? newValues[index].displayText : nil),
                    conflict: Self.element(conflicts, index),
                    username: Self.element(authors?.fields, index)
                ))
        }
        self.changes = changes
    }

    private static func element(_ array: [String?]?, _ index: Int) -> String? {
        guard let array, index < array.count else { return nil }
        return array[index]
    }

    /// The row as the export's lines, one per field.
    package var fieldChanges: [AuditFieldChange] {
        changes.map { change in
            AuditFieldChange(
                receivedAt: receivedAt, site: site, replica: replica, user: user, username: change.username, table: table, recordID: recordID,
                field: change.field,
                oldValue: change.old, newValue: change.new, reason: change.reason, outcome: change.outcome, conflict: change.conflict,
                seq: seq, hlc: change.hlc, base: change.base
            )
        }
    }

    /// A record's history from its audit rows and those of its conflicts, in the order received.
    ///
    /// - Parameter fieldsByConflict: the field of each of the record's conflicts, by conflict id.
    package static func history(of table: String, _ rows: [AuditRow], fieldsByConflict: [String: String]) -> [HistoryEntry] {
        var entries: [HistoryEntry] = []
        for audit in rows {
            let values = Dictionary(uniqueKeysWithValues: zip(audit.fields, audit.newValues))
            if audit.table == TableSchema.conflicts.name, values["status"] == .text("resolved"), case .text(let decision)? = values["decision"] {
                entries.append(
                    .resolution(
                        at: values["resolved_at"]?.displayText ?? audit.receivedAt,
                        user: values["reviewer"]?.displayText ?? audit.user,
                        replica: audit.replica,
                        conflict: audit.recordID,
                        field: fieldsByConflict[audit.recordID] ?? "",
                        decision: decision,
                        reason: values["reason"]?.displayText ?? ""
                    ))
            } else if audit.table == table {
                // A record's own changes; for a conflict record, also the ones that are no
                // complete resolution (a conflict about its resolution, decided again).
                entries.append(
                    .change(
                        at: audit.receivedAt, user: audit.user, replica: audit.replica,
                        changes: audit.changes.map {
                            FieldHistory(
                                field: $0.field, old: $0.old, new: $0.new, hlc: $0.hlc, outcome: $0.outcome, reason: $0.reason, conflict: $0.conflict,
                                username: $0.username)
                        }
                    ))
            }
        }
        return entries
    }
}

/// The proven authors of an audit row's fields (docs/AUTHORSHIP.md), stored in `audit.authors` as
/// `{"by":[USERNAME or null, …],"deactivated":[USERNAME, …]}`: per field, the person whose
/// signature covers it (null: none), or `"by":USERNAME` when one person's covers every field; and,
/// when there are any, the authors whose account was deactivated when the server received the
/// change (accepted, since their laptop could not know, and flagged).
package struct AuditAuthors: Sendable, Equatable {
    package var fields: [String?]
    package var deactivated: [String]

    package init(fields: [String?], deactivated: [String] = []) {
        (self.fields, self.deactivated) = (fields, deactivated)
    }

    /// The stored text: `by` is one username when one person's signature covers every field.
    package var json: String {
        let by =
            if let first = fields.first, let author = first, fields.allSatisfy({ $0 == author }) {
                JSONWriter.array(of: [author]).dropFirst().dropLast()
            } else {
                Substring(JSONWriter.array(ofOptional: fields))
            }
        return #"{"by":"# + by + (deactivated.isEmpty ? "" : #","deactivated":"# + JSONWriter.array(of: deactivated)) + "}"
    }

    /// The authors the stored text `json` holds, for a row of `count` fields; nil for none.
    package init?(json: String?, count: Int) {
        struct Stored: Decodable {
            enum By: Decodable {
                case everyField(String)
                case perField([String?])

                init(from decoder: any Decoder) throws {
                    let container = try decoder.singleValueContainer()
                    if let one = try? container.decode(String.self) {
                        self = .everyField(one)
                    } else {
                        self = .perField(try container.decode([String?].self))
                    }
                }
            }
            var by: By
            var deactivated: [String]?
        }
        guard let json, let stored = try? JSONDecoder().decode(Stored.self, from: Data(json.utf8)) else { return nil }
        switch stored.by {
        case .everyField(let author): self.init(fields: Array(repeating: author, count: count), deactivated: stored.deactivated ?? [])
        case .perField(let authors): self.init(fields: authors, deactivated: stored.deactivated ?? [])
        }
    }

    /// Of `authors` (one per field of `row`, nil where none is proven), the latest field's: who
    /// the row's change is shown as.
    package static func latest(_ authors: [String?]?, of row: ChangeRow) -> String? {
        guard let authors else { return nil }
        var latest: (hlc: HLC, author: String)?
        for (offset, author) in authors.enumerated() {
            guard let author else { continue }
            let hlc = row.hlc(at: offset)
            if latest.map({ hlc >= $0.hlc }) ?? true { latest = (hlc, author) }
        }
        return latest?.author
    }
}
