/// The set of synced tables at one schema version, shared by replicas and the server.
///
/// Table and column definitions are append-only: a new version adds tables or columns tagged with
/// `since`, so every older version can be rebuilt exactly (``restricted(to:)``), and a replica on an
/// older schema keeps syncing the part it knows.
public struct Schema: Sendable {
    /// The schema version; it travels with every request.
    public var version: Int
    /// The tables, including the server-written ``TableSchema/conflicts`` table.
    public private(set) var tables: [TableSchema]
    private var index: [String: Int]

    /// Creates a schema from the application's tables; the conflict log is appended.
    public init(version: Int, tables: [TableSchema]) {
        self.version = version
        let all = tables + [TableSchema.conflicts]
        self.tables = all
        self.index = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.name, $0) })
    }

    /// The table named `name`.
    /// - Throws: ``ValidationError`` naming the known tables when there is none.
    public func table(_ name: String) throws(ValidationError) -> TableSchema {
        guard let position = index[name] else {
            throw ValidationError(table: name, "is not a known table; the tables are \(tables.map(\.name).joined(separator: ", "))")
        }
        return tables[position]
    }

    /// Whether a table named `name` exists.
    public func contains(table name: String) -> Bool { index[name] != nil }

    /// The schema as it was at `version` (the tables and columns that existed then).
    public func restricted(to version: Int) -> Schema {
        var copy = Schema(version: version, tables: [])
        copy.tables = tables.filter { $0.since <= version }.map { $0.restricted(to: version) }
        copy.index = Dictionary(uniqueKeysWithValues: copy.tables.enumerated().map { ($1.name, $0) })
        return copy
    }
}

extension TableSchema {
    /// The conflict log: one record per overwritten value, written by the server and synced to the
    /// replicas of its site and to reviewers.
    public static let conflicts = TableSchema(
        "conflicts",
        clientCreatable: false,
        summary: "Values that lost a last-writer-wins race, with both sides",
        columns: [
            ColumnSchema("table_name", .text(maxBytes: 64), required: true, writable: false, summary: "Table of the record"),
            ColumnSchema("record_id", .text(maxBytes: 64), required: true, writable: false, summary: "Id of the record"),
            ColumnSchema("field", .text(maxBytes: 64), required: true, writable: false, summary: "Field both writes changed"),
            ColumnSchema("winner_value", .text(), writable: false, summary: "Kept value, as JSON"),
            ColumnSchema("winner_hlc", .integer(), required: true, writable: false, summary: "HLC of the kept value"),
            ColumnSchema("winner_replica", .text(maxBytes: 64), required: true, writable: false, summary: "Replica that wrote the kept value"),
            ColumnSchema("winner_user", .text(maxBytes: 200), writable: false, summary: "User who wrote the kept value"),
            ColumnSchema("loser_value", .text(), writable: false, summary: "Overwritten value, as JSON"),
            ColumnSchema("loser_hlc", .integer(), required: true, writable: false, summary: "HLC of the overwritten value"),
            ColumnSchema("loser_replica", .text(maxBytes: 64), required: true, writable: false, summary: "Replica that wrote the overwritten value"),
            ColumnSchema("loser_user", .text(maxBytes: 200), writable: false, summary: "User who wrote the overwritten value"),
            ColumnSchema("detected_at", .text(maxBytes: 40), required: true, writable: false, summary: "When the server detected it (ISO 8601, UTC)"),
            ColumnSchema(
                "status", .choice(ConflictStatus.allCases.map(\.rawValue)), required: true, default: .text(ConflictStatus.open.rawValue),
                summary: "Review status"),
            ColumnSchema("decision", .choice(Conflict.Decision.allCases.map(\.rawValue)), summary: "Reviewer's decision"),
            ColumnSchema("reviewer", .text(maxBytes: 200), summary: "Who resolved it"),
            ColumnSchema("reason", .text(), summary: "Why, mandatory when resolved"),
            ColumnSchema("resolved_at", .text(maxBytes: 40), summary: "When it was resolved (ISO 8601, UTC)"),
        ],
        checks: [
            RecordCheck(
                "A resolved conflict has a decision, a reviewer, a reason and a time",
                fields: ["status", "decision", "reviewer", "reason", "resolved_at"]
            ) { record in
                guard record["status"] == .text(ConflictStatus.resolved.rawValue) else { return nil }
                for field in ["decision", "reviewer", "reason", "resolved_at"] {
                    guard case .text(let text)? = record[field], !text.allSatisfy(\.isWhitespace) else {
                        return (field, "is required when the conflict is resolved")
                    }
                }
                return nil
            }
        ]
    )
}
