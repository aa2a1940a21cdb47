import Foundation

/// One entry of the conflict log: a field two writes changed concurrently, the kept and the overwritten side.
///
/// This is the `--json` shape of `sitesync conflicts list` and of the server's conflict endpoints.
public struct Conflict: Codable, Sendable, Equatable {
    /// One side of the conflict.
    public struct Side: Codable, Sendable, Equatable {
        /// The value that side wrote.
        public var value: FieldValue
        /// Its HLC.
        public var hlc: HLC
        /// The replica that wrote it.
        public var replica: String
        /// The user recorded on that replica.
        public var user: String?

        /// Creates a side.
        public init(value: FieldValue, hlc: HLC, replica: String, user: String?) {
            self.value = value
            self.hlc = hlc
            self.replica = replica
            self.user = user
        }

        /// The side's version.
        public var version: Version { Version(hlc: hlc, replica: replica) }
    }

    /// What a reviewer decided.
    public enum Decision: String, Codable, Sendable, CaseIterable {
        /// The kept value stands (written again, so it wins everywhere).
        case keepWinner = "keep_winner"
        /// The overwritten value is restored.
        case takeLoser = "take_loser"
        /// Another value, given by the reviewer.
        case value
    }

    /// How a conflict was resolved.
    public struct Resolution: Codable, Sendable, Equatable {
        /// The decision.
        public var decision: Decision
        /// Who resolved it.
        public var reviewer: String
        /// Why; mandatory.
        public var reason: String
        /// When, ISO 8601.
        public var resolvedAt: String

        /// Creates a resolution.
        public init(decision: Decision, reviewer: String, reason: String, resolvedAt: String) {
            self.decision = decision
            self.reviewer = reviewer
            self.reason = reason
            self.resolvedAt = resolvedAt
        }

        enum CodingKeys: String, CodingKey {
            case decision, reviewer, reason
            case resolvedAt = "resolved_at"
        }
    }

    /// The conflict record's id.
    public var id: String
    /// The site of the record.
    public var site: String
    /// The table of the record.
    public var table: String
    /// The record's id.
    public var recordID: String
    /// The field both writes changed.
    public var field: String
    /// The value kept (the greater version).
    public var winner: Side
    /// The value overwritten.
    public var loser: Side
    /// Whether it waits for review.
    public var status: ConflictStatus
    /// When the server detected it, ISO 8601.
    public var detectedAt: String
    /// The resolution, once resolved.
    public var resolution: Resolution?

    enum CodingKeys: String, CodingKey {
        case id, site = "site_id", table, recordID = "record_id", field, winner, loser, status
        case detectedAt = "detected_at"
        case resolution
    }

    /// Whether the conflict is still open.
    public var isOpen: Bool { status == .open }

    /// Creates a conflict.
    public init(
        id: String, site: String, table: String, recordID: String, field: String, winner: Side, loser: Side, status: ConflictStatus, detectedAt: String,
        resolution: Resolution? = nil
    ) {
        self.id = id
        self.site = site
        self.table = table
        self.recordID = recordID
        self.field = field
        self.winner = winner
        self.loser = loser
        self.status = status
        self.detectedAt = detectedAt
        self.resolution = resolution
    }

    /// Reads a conflict from the fields of a `conflicts` record.
    /// The conflict with both sides in the type of their column, when `schema` knows it: a side is
    /// stored as JSON, where the real 68.0 reads back as the integer 68.
    public func normalized(in schema: Schema) -> Conflict {
        guard let column = (try? schema.table(table))?.column(field) else { return self }
        var copy = self
        copy.winner.value = column.normalize(winner.value)
        copy.loser.value = column.normalize(loser.value)
        return copy
    }

    public init(id: String, fields: [String: FieldValue]) throws {
        func text(_ name: String) -> String? {
            if case .text(let value)? = fields[name] { value } else { nil }
        }
        func integer(_ name: String) -> Int64 {
            if case .integer(let value)? = fields[name] { value } else { 0 }
        }
        func side(_ prefix: String) throws -> Side {
            Side(
                value: try FieldValue(json: text("\(prefix)_value")),
                hlc: HLC(rawValue: integer("\(prefix)_hlc")),
                replica: text("\(prefix)_replica") ?? "",
                user: text("\(prefix)_user")
            )
        }
        self.init(
            id: id,
            site: text(TableSchema.siteColumn) ?? "",
            table: text("table_name") ?? "",
            recordID: text("record_id") ?? "",
            field: text("field") ?? "",
            winner: try side("winner"),
            loser: try side("loser"),
            status: text("status").flatMap(ConflictStatus.init(rawValue:)) ?? .open,
            detectedAt: text("detected_at") ?? "",
            resolution: text("decision").flatMap(Decision.init(rawValue:)).map { decision in
                Resolution(decision: decision, reviewer: text("reviewer") ?? "", reason: text("reason") ?? "", resolvedAt: text("resolved_at") ?? "")
            }
        )
    }
}

extension FieldValue {
    private static let fragmentEncoder = JSONEncoder()

    /// The value as a JSON fragment (`null`, `3`, `"text"`), as the conflict log stores values.
    public var json: String {
        // Encoding a scalar cannot fail.
        String(decoding: try! Self.fragmentEncoder.encode(self), as: UTF8.self)
    }

    /// Reads a value stored as a JSON fragment; nil text is null.
    public init(json: String?) throws {
        guard let json else {
            self = .null
            return
        }
        self = try JSONDecoder().decode(FieldValue.self, from: Data(json.utf8))
    }
}

/// Whether a conflict waits for review: the `status` field of the conflict log's records.
public enum ConflictStatus: String, Codable, Sendable, CaseIterable {
    /// Detected, not yet decided.
    case open
    /// A reviewer decided it (``Conflict/resolution``).
    case resolved
}
