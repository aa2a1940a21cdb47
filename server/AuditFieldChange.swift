import SiteSyncCore

/// One field change of the audit trail, as `sitesync-server audit export` writes it.
public struct AuditFieldChange: Codable, Sendable, Equatable {
    /// When the server received it, ISO 8601.
    public var receivedAt: String
    /// The record's site.
    public var site: String
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
    /// `applied`, `superseded` or `unchanged`.
    public var outcome: String
    /// Who wrote it.
    public var user: String
    /// From which replica.
    public var replica: String
    /// The replica's sequence number of the change.
    public var seq: HLC
    /// The HLC of the field's write.
    public var hlc: HLC
    /// The version the writer had before, if any.
    public var base: Version?

    enum CodingKeys: String, CodingKey {
        case receivedAt = "received_at", site = "site_id", table, recordID = "record_id", field
        case oldValue = "old_value", newValue = "new_value", outcome, user, replica, seq, hlc, base
    }

    /// The CSV header, in the order of ``csvFields``.
    public static let csvHeader = ["received_at", "site_id", "table", "record_id", "field", "old_value", "new_value", "outcome", "user", "replica", "seq", "hlc", "base_hlc", "base_replica"]

    /// The fields as CSV cells; values as JSON fragments so types survive.
    public var csvFields: [String] {
        [
            receivedAt, site, table, recordID, field, oldValue.json, newValue.json, outcome, user, replica,
            String(seq.rawValue), String(hlc.rawValue), base.map { String($0.hlc.rawValue) } ?? "", base?.replica ?? "",
        ]
    }
}

/// What happened to a received field, by the letter stored in the audit trail.
enum AuditOutcome {
    static func name(_ letter: Character) -> String {
        switch FieldOutcome(rawValue: letter) {
        case .applied: "applied"
        case .superseded: "superseded"
        case .unchanged, nil: "unchanged"
        }
    }
}
