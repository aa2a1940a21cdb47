/// A request for the records changed after a cursor: `POST /v1/pull`, protocol v1.
public struct PullRequest: Codable, Sendable, Equatable {
    /// The last per-site sequence number the replica has applied, per site; absent sites start at 0.
    public var cursor: [String: Int64]
    /// The most records to return.
    public var limit: Int
    /// The pulling replica: records whose every field it wrote itself are skipped, since it holds
    /// them already (its own version of a field is never older than its own write).
    public var replica: String?
    /// The greatest sequence number the server acknowledged to the pulling replica, when known. A
    /// replica pulls only after its pushes were answered, so a server that has applied more under
    /// its id knows that another copy of the replica's file pushed them (`409 replica_diverged`).
    public var acked: HLC?
    /// Seconds the server may hold the request when nothing is new: it answers as soon as a push
    /// commits records the pull reads, or with an empty page when the wait ends. The server waits
    /// at most its own maximum (30 s by default); nil or 0 answers at once.
    public var wait: Int?
    /// What the laptop reports about itself (``ReplicaReport``); the server records the latest
    /// when the pull reaches the end of what waits.
    public var report: ReplicaReport?

    /// The most seconds a pull may ask to wait (``wait``); the server waits at most its own maximum.
    public static let maximumWait = 3600

    /// Creates a pull.
    public init(cursor: [String: Int64], limit: Int, replica: String? = nil, acked: HLC? = nil, wait: Int? = nil, report: ReplicaReport? = nil) {
        self.cursor = cursor
        self.limit = limit
        self.replica = replica
        self.acked = acked
        self.wait = wait
        self.report = report
    }
}

extension PullRequest {
    /// The request as the query of `GET /v1/pull`: `cursor=S01:1200,S02:0&limit=2000&replica=…`.
    ///
    /// Site ids are letters, digits, `-` and `_`, so the cursor needs no escaping.
    public var queryItems: [(name: String, value: String)] {
        var items = [(name: "limit", value: String(limit))]
        if !cursor.isEmpty {
            items.append((name: "cursor", value: cursor.keys.sorted().map { "\($0):\(cursor[$0]!)" }.joined(separator: ",")))
        }
        if let replica { items.append((name: "replica", value: replica)) }
        if let acked { items.append((name: "acked", value: String(acked.rawValue))) }
        if let wait { items.append((name: "wait", value: String(wait))) }
        if let report { items += report.queryItems }
        return items
    }

    /// Reads a request from the query of `GET /v1/pull`; `value` returns a parameter's value.
    public init(query value: (String) -> String?) throws(QueryError) {
        guard let limitText = value("limit") else { throw QueryError(message: "limit is required") }
        guard let limit = Int(limitText) else { throw QueryError(message: "limit must be a whole number; got \"\(TextRules.brief(limitText, maxBytes: 32))\"") }
        var cursor: [String: Int64] = [:]
        if let text = value("cursor"), !text.isEmpty {
            for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
                let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
                guard parts.count == 2, SiteID.isValid(String(parts[0])), let seq = Int64(parts[1]), seq >= 0, cursor[String(parts[0])] == nil else {
                    throw QueryError(
                        message:
                            "cursor must list SITE:SEQUENCE pairs separated by commas, each site once; got \"\(TextRules.brief(String(entry), maxBytes: 64))\"")
                }
                cursor[String(parts[0])] = seq
            }
        }
        if let replica = value("replica"), !ReplicaID.isValid(replica) {
            throw QueryError(message: "replica must be a replica id: \(ReplicaID.rule)")
        }
        var acked: HLC?
        if let text = value("acked") {
            guard let raw = Int64(text), raw >= 0 else { throw QueryError(message: "acked must be a sequence number (a whole number, 0 or more)") }
            acked = HLC(rawValue: raw)
        }
        var wait: Int?
        if let text = value("wait") {
            guard let seconds = Int(text), (0...Self.maximumWait).contains(seconds) else {
                throw QueryError(
                    message: "wait must be a whole number of seconds from 0 to \(Self.maximumWait); got \"\(TextRules.brief(text, maxBytes: 32))\"")
            }
            wait = seconds
        }
        self.init(cursor: cursor, limit: limit, replica: value("replica"), acked: acked, wait: wait, report: try ReplicaReport(query: value))
    }
}

/// A request query that does not say what the endpoint needs.
public struct QueryError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, as a sentence.
    public var message: String
    public var description: String { message }
}

/// The records changed after the cursor, in per-site sequence order.
public struct PullResponse: Codable, Sendable, Equatable {
    /// The records, grouped by table.
    public var groups: [RecordGroup]
    /// The cursor to send next: the sequence number of the last row returned, per site.
    public var cursor: [String: Int64]
    /// Whether more records wait after this batch.
    public var more: Bool
    /// The server's clock, which the replica advances past.
    public var hlc: HLC

    /// Creates a pull response.
    public init(groups: [RecordGroup], cursor: [String: Int64], more: Bool, hlc: HLC) {
        self.groups = groups
        self.cursor = cursor
        self.more = more
        self.hlc = hlc
    }

    /// Number of records in the batch.
    public var recordCount: Int { groups.reduce(0) { $0 + $1.rows.count } }
}

/// Current state of records of one table: every field with its stamp.
public struct RecordGroup: Codable, Sendable, Equatable {
    /// The table.
    public var table: String
    /// The fields, in the order of each row's values.
    public var columns: [String]
    /// The records.
    public var rows: [RecordRow]

    /// Creates a group.
    public init(table: String, columns: [String], rows: [RecordRow]) {
        self.table = table
        self.columns = columns
        self.rows = rows
    }

    enum CodingKeys: String, CodingKey {
        case table = "t"
        case columns = "c"
        case rows = "r"
    }
}

/// One record as the server holds it: `[id, hlc, replica, user, overrides, value…]`.
public struct RecordRow: Sendable, Equatable {
    /// The record id.
    public var id: String
    /// The stamp of every field.
    public var stamps: FieldStamps
    /// The values, one per field of the group.
    public var values: [FieldValue]

    /// Creates a row.
    public init(id: String, stamps: FieldStamps, values: [FieldValue]) {
        self.id = id
        self.stamps = stamps
        self.values = values
    }
}

extension RecordRow: Codable {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        id = try container.decode(String.self)
        let base = Stamp(
            hlc: try container.decode(HLC.self),
            replica: try container.decode(String.self),
            user: try container.decode(String.self)
        )
        let overrides = try container.decodeNil() ? [:] : try container.decode([String: Stamp].self)
        stamps = FieldStamps(base: base, overrides: overrides)
        var values: [FieldValue] = []
        if let count = container.count { values.reserveCapacity(max(0, count - 5)) }
        while !container.isAtEnd {
            values.append(try container.decode(FieldValue.self))
        }
        self.values = values
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(id)
        try container.encode(stamps.base.version.hlc)
        try container.encode(stamps.base.version.replica)
        try container.encode(stamps.base.user)
        if stamps.overrides.isEmpty {
            try container.encodeNil()
        } else {
            try container.encode(stamps.overrides)
        }
        for value in values { try container.encode(value) }
    }
}
