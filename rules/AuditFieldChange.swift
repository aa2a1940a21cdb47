import Foundation
import SiteSyncCore

/// One field change of the audit trail, as `sitesync-server audit export` writes it: what an
/// inspector asks of a change (docs/AUDIT.md): which record and field, the value before and after,
/// who, where, when and why, and the conflict it caused.
public struct AuditFieldChange: Codable, Sendable, Equatable {
    /// When the server received it, ISO 8601 UTC.
    public var receivedAt: String
    /// When the laptop made it, ISO 8601 UTC: the wall-clock time of the field's HLC.
    public var changedAt: String
    /// The record's site.
    public var site: String
    /// From which replica (laptop).
    public var replica: String
    /// Who made it: the full name of the person whose signature covers it (docs/AUTHORSHIP.md),
    /// or, for a change no signature covers, the label of the replica it came from.
    public var user: String
    /// The username of the person whose signature covers it; nil when none does.
    public var username: String?
    /// The table.
    public var table: String
    /// The record id.
    public var recordID: String
    /// The field.
    public var field: String
    /// The value the server held before; null for a new record.
    public var oldValue: FieldValue
    /// The value received.
    public var newValue: FieldValue
    /// Why: the reason for change given with the write, `conflict resolution: …` for a reviewer's
    /// decision, the delete's reason for a delete; nil when none was needed or given.
    public var reason: String?
    /// `applied`, `superseded` or `unchanged`.
    public var outcome: String
    /// The conflict the change caused (it overwrote a concurrent value, or lost to one); nil when none.
    public var conflict: String?
    /// The replica's sequence number of the change.
    public var seq: HLC
    /// The HLC of the field's write.
    public var hlc: HLC
    /// The version the writer had before, if any.
    public var base: Version?

    /// Creates a field change.
    public init(
        receivedAt: String, site: String, replica: String, user: String, username: String?, table: String, recordID: String, field: String,
        oldValue: FieldValue, newValue: FieldValue, reason: String?, outcome: String, conflict: String?, seq: HLC, hlc: HLC, base: Version?
    ) {
        self.receivedAt = receivedAt
        self.changedAt = Self.isoTime(hlc)
        self.site = site
        self.replica = replica
        self.user = user
        self.username = username
        self.table = table
        self.recordID = recordID
        self.field = field
        self.oldValue = oldValue
        self.newValue = newValue
        self.reason = reason
        self.outcome = outcome
        self.conflict = conflict
        self.seq = seq
        self.hlc = hlc
        self.base = base
    }

    package enum CodingKeys: String, CodingKey {
        case receivedAt = "received_at", changedAt = "changed_at", site = "site_id", replica, user, username, table, recordID = "record_id", field
        case oldValue = "old_value", newValue = "new_value", reason, outcome, conflict = "conflict_id", seq, hlc, base
    }

    /// Every member is written, absent ones as `null`, so that each JSON line has the same keys.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(receivedAt, forKey: .receivedAt)
        try container.encode(changedAt, forKey: .changedAt)
        try container.encode(site, forKey: .site)
        try container.encode(replica, forKey: .replica)
        try container.encode(user, forKey: .user)
        try container.encode(username, forKey: .username)
        try container.encode(table, forKey: .table)
        try container.encode(recordID, forKey: .recordID)
        try container.encode(field, forKey: .field)
        try container.encode(oldValue, forKey: .oldValue)
        try container.encode(newValue, forKey: .newValue)
        try container.encode(reason, forKey: .reason)
        try container.encode(outcome, forKey: .outcome)
        try container.encode(conflict, forKey: .conflict)
        try container.encode(seq, forKey: .seq)
        try container.encode(hlc, forKey: .hlc)
        try container.encode(base, forKey: .base)
    }

    /// The CSV header, in the order of ``csvFields``.
    public static let csvHeader = [
        "received_at", "changed_at", "site_id", "replica", "user", "username", "table", "record_id", "field", "old_value", "new_value",
        "reason", "outcome", "conflict_id", "seq", "hlc", "base_hlc", "base_replica",
    ]

    /// The fields as CSV cells; values as JSON fragments so types survive.
    public var csvFields: [String] {
        [
            receivedAt, changedAt, site, replica, user, username ?? "", table, recordID, field, oldValue.json, newValue.json,
            reason ?? "", outcome, conflict ?? "", String(seq.rawValue), String(hlc.rawValue),
            base.map { String($0.hlc.rawValue) } ?? "", base?.replica ?? "",
        ]
    }

    /// The wall-clock time of an HLC, ISO 8601 UTC with milliseconds, such as `2026-11-30T10:15:02.071Z`.
    ///
    /// The milliseconds are written from the integer, not through a `Double` of seconds, which
    /// cannot hold most of them exactly and would show the time one millisecond early.
    package static func isoTime(_ hlc: HLC) -> String {
        let (seconds, milliseconds) = hlc.milliseconds.quotientAndRemainder(dividingBy: 1000)
        let time = Date(timeIntervalSince1970: TimeInterval(seconds)).formatted(.iso8601)
        let fraction = String(milliseconds)
        return time.dropLast() + "." + String(repeating: "0", count: 3 - fraction.count) + fraction + "Z"
    }
}

/// Which field changes `sitesync-server audit export` writes.
public struct AuditFilter: Sendable, Equatable {
    /// Only this site.
    public var site: String?
    /// Only changes received at or after this ISO 8601 date or time.
    public var since: String?
    /// Only this table.
    public var table: String?
    /// Only this record.
    public var record: String?

    /// Creates a filter; nil members do not filter.
    public init(site: String? = nil, since: String? = nil, table: String? = nil, record: String? = nil) {
        self.site = site
        self.since = since
        self.table = table
        self.record = record
    }
}

/// What happened to a received field, by the letter stored in the audit trail.
package enum AuditOutcome {
    package static func name(_ letter: Character) -> String {
        switch FieldOutcome(rawValue: letter) {
        case .applied: "applied"
        case .superseded: "superseded"
        case .unchanged, nil: "unchanged"
        }
    }
}
