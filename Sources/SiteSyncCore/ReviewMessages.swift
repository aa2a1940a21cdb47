/// Paths and messages of the review endpoints (docs/PROTOCOL.md, "Review").
extension SyncProtocol {
    /// `GET /v1/conflicts`: conflicts in scope, filtered and paged.
    public static let conflictsPath = "/v1/conflicts"
    /// `GET /v1/records/TABLE/ID/history`: every change received for a record.
    public static func historyPath(table: String, id: String) -> String { "/v1/records/\(table)/\(id)/history" }
}

/// One page of conflicts, oldest detection first.
public struct ConflictPage: Codable, Sendable, Equatable {
    /// The conflicts.
    public var conflicts: [Conflict]
    /// Pass as `after` for the next page; nil on the last page.
    public var next: String?

    /// Creates a page.
    public init(conflicts: [Conflict], next: String?) {
        self.conflicts = conflicts
        self.next = next
    }
}

/// Which conflicts a listing shows.
public struct ConflictFilter: Sendable, Equatable {
    /// Open or resolved conflicts; nil for both.
    public var status: ConflictStatus?
    /// Only this site.
    public var site: String?
    /// Only this table.
    public var table: String?
    /// Page size (1 to 1000).
    public var limit: Int
    /// Continue after this page token.
    public var after: String?

    /// Creates a filter.
    public init(status: ConflictStatus? = .open, site: String? = nil, table: String? = nil, limit: Int = 200, after: String? = nil) {
        self.status = status
        self.site = site
        self.table = table
        self.limit = limit
        self.after = after
    }
}

/// A conflict with the current value of the contested field.
public struct ConflictDetail: Codable, Sendable, Equatable {
    /// The conflict.
    public var conflict: Conflict
    /// The field's value now, where it is known.
    public var current: FieldValue?

    /// Creates a detail.
    public init(conflict: Conflict, current: FieldValue?) {
        self.conflict = conflict
        self.current = current
    }
}

/// Every change received for one record, in the order the server received them, with resolutions.
public struct RecordHistory: Codable, Sendable, Equatable {
    /// `server` for the full trail; `replica` for what a laptop knows offline (each field's last write).
    public var source: String
    /// The table.
    public var table: String
    /// The record id.
    public var recordID: String
    /// The entries, oldest first.
    public var entries: [HistoryEntry]

    enum CodingKeys: String, CodingKey {
        case source, table, entries
        case recordID = "record_id"
    }

    /// Creates a history.
    public init(source: String, table: String, recordID: String, entries: [HistoryEntry]) {
        self.source = source
        self.table = table
        self.recordID = recordID
        self.entries = entries
    }
}

/// One entry of a record's history: a change received from a replica, or a conflict's resolution.
public struct HistoryEntry: Codable, Sendable, Equatable {
    /// `change` or `resolution`.
    public var kind: String
    /// When: the server's receipt (changes) or the reviewer's time (resolutions), ISO 8601.
    public var at: String
    /// Who made it.
    public var user: String
    /// From which replica.
    public var replica: String
    /// For changes: each field, its old and new value and what happened to it.
    public var changes: [FieldHistory]?
    /// For resolutions: the conflict, its field, the decision and the reason.
    public var conflict: String?
    public var field: String?
    public var decision: String?
    public var reason: String?

    /// A change entry.
    public static func change(at: String, user: String, replica: String, changes: [FieldHistory]) -> HistoryEntry {
        HistoryEntry(kind: "change", at: at, user: user, replica: replica, changes: changes)
    }

    /// A resolution entry.
    public static func resolution(at: String, user: String, replica: String, conflict: String, field: String, decision: String, reason: String) -> HistoryEntry
    {
        HistoryEntry(kind: "resolution", at: at, user: user, replica: replica, conflict: conflict, field: field, decision: decision, reason: reason)
    }

    init(
        kind: String, at: String, user: String, replica: String, changes: [FieldHistory]? = nil,
        conflict: String? = nil, field: String? = nil, decision: String? = nil, reason: String? = nil
    ) {
        self.kind = kind
        self.at = at
        self.user = user
        self.replica = replica
        self.changes = changes
        self.conflict = conflict
        self.field = field
        self.decision = decision
        self.reason = reason
    }
}

/// One field of a received change.
public struct FieldHistory: Codable, Sendable, Equatable {
    /// The field.
    public var field: String
    /// The value the server held before (null for a new record).
    public var old: FieldValue
    /// The value received.
    public var new: FieldValue
    /// The HLC of the write.
    public var hlc: HLC
    /// `applied` (the server took it), `superseded` (a concurrent later write won; logged) or
    /// `unchanged` (the server already held that value); in a laptop's own history, `pending` for a
    /// value not pushed yet.
    public var outcome: String
    /// Why: the reason for change given with the write (``ReasonForChange``), if any.
    public var reason: String?
    /// The conflict the write caused, when it met a concurrent write of another value.
    public var conflict: String?
    /// The username of the person whose signature covers the write (docs/AUTHORSHIP.md); nil
    /// when none does. The entry's `user` is then that person's full name.
    public var username: String?

    /// Creates a field entry.
    public init(
        field: String, old: FieldValue, new: FieldValue, hlc: HLC, outcome: String, reason: String? = nil, conflict: String? = nil,
        username: String? = nil
    ) {
        self.field = field
        self.old = old
        self.new = new
        self.hlc = hlc
        self.outcome = outcome
        self.reason = reason
        self.conflict = conflict
        self.username = username
    }
}
