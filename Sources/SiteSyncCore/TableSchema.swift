/// A synced table: its columns and rules, shared by the replica and the server so both validate alike.
///
/// Every synced table has a text primary key `id` (a UUID generated on the replica), a `site_id` that
/// decides who may see the record, and `_deleted`, which holds the reason of a soft delete (null while
/// the record is live). Those two are ordinary fields for sync: versioned, merged and logged.
public struct TableSchema: Sendable {
    /// The SQL and wire name of the table.
    public var name: String
    /// The schema version that added the table.
    public var since: Int
    /// Whether replicas may create records; the server alone creates conflict records.
    public var clientCreatable: Bool
    /// Whether changing a synced value of the table needs a reason for change (``ReasonForChange``).
    /// The trial's tables require one; the conflict log, whose resolutions carry their own reason, does not.
    public var requiresReason: Bool
    /// Rules over several fields of a record, checked after each write.
    public var checks: [RecordCheck]
    /// Rules against other records, checked by the replica at write time where it holds them.
    public var crossChecks: [CrossRecordCheck]
    /// Fields the replica fills in from the others a write gives (a grading scale from a category);
    /// they are pushed like any written field, so the server never derives anything itself.
    public var derive: (@Sendable (_ written: [String: FieldValue]) -> [String: FieldValue])?
    /// A one-line description.
    public var summary: String
    /// Every column but `id`, in storage order: `site_id`, the table's own columns, `_deleted`.
    public private(set) var columns: [ColumnSchema] {
        didSet { reindex() }
    }
    /// The column names in storage order.
    public private(set) var columnNames: [String] = []
    private var index: [String: Int] = [:]

    /// The name of the column holding the site a record belongs to.
    public static let siteColumn = "site_id"
    /// The name of the column holding the reason of a soft delete.
    public static let deletedColumn = "_deleted"

    /// Creates a table from its own columns; `site_id` and `_deleted` are added around them.
    public init(
        _ name: String,
        since: Int = 1,
        clientCreatable: Bool = true,
        requiresReason: Bool = false,
        summary: String = "",
        columns: [ColumnSchema],
        checks: [RecordCheck] = [],
        crossChecks: [CrossRecordCheck] = [],
        derive: (@Sendable (_ written: [String: FieldValue]) -> [String: FieldValue])? = nil
    ) {
        self.name = name
        self.since = since
        self.clientCreatable = clientCreatable
        self.requiresReason = requiresReason
        self.summary = summary
        self.checks = checks
        self.crossChecks = crossChecks
        self.derive = derive
        let all =
            [ColumnSchema(Self.siteColumn, .text(maxBytes: 32), required: true, since: since, writable: clientCreatable, summary: "Site the record belongs to")]
            + columns
            + [
                ColumnSchema(
                    Self.deletedColumn, .text(maxBytes: 2000), since: since, writable: clientCreatable, summary: "Reason of the soft delete; empty while live")
            ]
        self.columns = all
        reindex()
    }

    private mutating func reindex() {
        columnNames = columns.map(\.name)
        index = Dictionary(uniqueKeysWithValues: columnNames.enumerated().map { ($1, $0) })
    }

    /// The position of `name` among ``columns``.
    public func position(of name: String) -> Int? { index[name] }

    /// The column named `name`, if the table has it.
    public func column(_ name: String) -> ColumnSchema? {
        index[name].map { columns[$0] }
    }

    /// The table as a replica on schema `version` knows it.
    public func restricted(to version: Int) -> TableSchema {
        var copy = self
        copy.columns = columns.filter { $0.since <= version }
        return copy
    }

    /// Checks the record id a replica generated.
    public func validate(id: String) throws(ValidationError) {
        guard !id.isEmpty, id.utf8.count <= 64, id.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value != 0x7F }) else {
            throw ValidationError(table: name, field: "id", "must be 1 to 64 printable characters without spaces", got: "\"\(id)\"")
        }
    }

    /// Checks a write and returns its values normalised.
    ///
    /// - Parameters:
    ///   - changes: the fields written and their new values.
    ///   - creating: whether the write creates the record; then required fields must be present
    ///     (or have a default) and defaults are added for the fields not named.
    /// - Throws: ``ValidationError`` listing every field that breaks a rule, or an unknown field.
    public func validate(_ changes: [String: FieldValue], creating: Bool) throws(ValidationError) -> [String: FieldValue] {
        var problems: [ValidationError.Problem] = []
        var normalized: [String: FieldValue] = [:]
        normalized.reserveCapacity(creating ? columns.count : changes.count)
        for (field, value) in changes {
            guard let column = column(field) else {
                problems.append(.init(table: name, field: field, message: "is not a field of \(name); its fields are \(columnNames.joined(separator: ", "))"))
                continue
            }
            do {
                normalized[field] = try column.validate(value, table: name)
            } catch {
                problems += error.problems
            }
        }
        if creating {
            for column in columns where changes[column.name] == nil {
                if column.required && column.defaultValue.isNull {
                    problems.append(.init(table: name, field: column.name, message: "is required for a new record"))
                } else if !column.defaultValue.isNull {
                    normalized[column.name] = column.defaultValue
                }
            }
        }
        if let problem = siteProblem(normalized[Self.siteColumn]) { problems.append(problem) }
        guard problems.isEmpty else {
            throw ValidationError(problems: problems.sorted { (index[$0.field ?? ""] ?? .max) < (index[$1.field ?? ""] ?? .max) })
        }
        return normalized
    }

    /// The positions among ``columns`` of the fields a write names, in order.
    /// - Throws: ``ValidationError`` naming every field the table does not have.
    public func positions(of fields: [String]) throws(ValidationError) -> [Int] {
        var positions: [Int] = []
        var problems: [ValidationError.Problem] = []
        for field in fields {
            if let position = index[field] {
                positions.append(position)
            } else {
                problems.append(.init(table: name, field: field, message: "is not a field of \(name); its fields are \(columnNames.joined(separator: ", "))"))
            }
        }
        guard problems.isEmpty else { throw ValidationError(problems: problems) }
        return positions
    }

    /// Checks a write given as values of the columns at `positions` (see ``positions(of:)``) and
    /// returns them normalised: ``validate(_:creating:)`` without building a dictionary per record.
    public func validate(_ values: [FieldValue], at positions: [Int]) throws(ValidationError) -> [FieldValue] {
        precondition(values.count == positions.count, "one value per position")
        var normalized = values
        var problems: [(position: Int, problem: ValidationError.Problem)] = []
        for (offset, position) in positions.enumerated() {
            do {
                normalized[offset] = try columns[position].validate(values[offset], table: name)
            } catch {
                problems += error.problems.map { (position, $0) }
            }
            if columns[position].name == Self.siteColumn, let problem = siteProblem(normalized[offset]) { problems.append((position, problem)) }
        }
        guard problems.isEmpty else {
            throw ValidationError(problems: problems.sorted { $0.position < $1.position }.map(\.problem))
        }
        return normalized
    }

    /// The problem with a record's site id, if any.
    private func siteProblem(_ value: FieldValue?) -> ValidationError.Problem? {
        guard case .text(let site)? = value, !SiteID.isValid(site) else { return nil }
        return .init(table: name, field: Self.siteColumn, message: SiteID.rule, got: "\"\(site)\"")
    }
}

extension TableSchema {
    /// Checks the whole record as it stands after a write against the table's ``checks``.
    ///
    /// - Parameter record: every field of the record, by name (`id` included).
    /// - Parameter written: only the rules whose fields all lie in this set; nil for every rule.
    public func validateRecord(_ record: [String: FieldValue], written: Set<String>? = nil) throws(ValidationError) {
        let problems = checks.filter { written.map($0.fields.isSubset) ?? true }.compactMap { $0.check(record) }
            .map { ValidationError.Problem(table: name, field: $0.field, message: $0.message) }
        guard problems.isEmpty else { throw ValidationError(problems: problems) }
    }

    /// Whether a replica may write `field`.
    public func isWritable(_ field: String) -> Bool { column(field)?.writable ?? false }
}

/// A rule over several fields of a record, such as "a resolved conflict has a reason".
///
/// The replica checks every rule on every write. The server checks a rule only when a pushed row
/// carries all of its ``fields`` (or creates the record): a record merged from concurrent edits,
/// each valid where it was made, must not make a replica's queue unpushable.
public struct RecordCheck: Sendable {
    /// What the rule says, for documentation.
    public var summary: String
    /// The fields the rule reads.
    public var fields: Set<String>
    /// Returns the field and a message when `record` breaks the rule: the rule, then `; got ` and
    /// the record's values that break it, which the laptop shows and the server leaves out.
    public var check: @Sendable (_ record: [String: FieldValue]) -> (field: String?, message: String)?

    /// Creates a rule over `fields`.
    public init(
        _ summary: String,
        fields: Set<String>,
        check: @escaping @Sendable (_ record: [String: FieldValue]) -> (field: String?, message: String)?
    ) {
        self.summary = summary
        self.fields = fields
        self.check = check
    }
}

/// A rule between a record and others it names (an adverse event and its subject's consent).
///
/// Only the replica checks these, at write time and where it holds the other record: records may
/// arrive at the server in any order, so the server never refuses a push for them.
public struct CrossRecordCheck: Sendable {
    /// Fetches a record's fields by table and id; nil when this replica does not hold it.
    public typealias Lookup = (_ table: String, _ id: String) throws -> [String: FieldValue]?

    /// What the rule says, for documentation.
    public var summary: String
    /// Returns the field and a message when `record` breaks the rule.
    public var check: @Sendable (_ record: [String: FieldValue], _ lookup: Lookup) throws -> (field: String?, message: String)?

    /// Creates a rule.
    public init(_ summary: String, check: @escaping @Sendable (_ record: [String: FieldValue], _ lookup: Lookup) throws -> (field: String?, message: String)?) {
        self.summary = summary
        self.check = check
    }
}

/// Site identifiers, such as `S01`.
public enum SiteID {
    /// The scope of a reviewer: every site.
    public static let all = "*"

    /// The rule a site id follows, as a sentence fragment.
    public static let rule = "a site id is 1 to 32 letters, digits, '-' or '_'"

    /// Whether `site` is a valid site id (the `*` scope is not one).
    public static func isValid(_ site: String) -> Bool {
        !site.isEmpty && site.utf8.count <= 32
            && site.utf8.allSatisfy { $0.isASCIILetterOrDigit || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
    }
}

extension TableSchema {
    /// Reads `FIELD=VALUE` text typed by a person into checked values, reporting every problem at once:
    /// unknown fields, unreadable numbers and broken rules.
    public func parse(_ assignments: [(field: String, text: String)]) throws(ValidationError) -> [String: FieldValue] {
        var problems: [ValidationError.Problem] = []
        var values: [String: FieldValue] = [:]
        for (field, text) in assignments {
            guard values[field] == nil else {
                problems.append(.init(table: name, field: field, message: "is given twice"))
                continue
            }
            guard let column = column(field) else {
                problems.append(.init(table: name, field: field, message: "is not a field of \(name); its fields are \(columnNames.joined(separator: ", "))"))
                continue
            }
            do {
                values[field] = try column.parse(text, table: name)
            } catch {
                problems += error.problems
            }
        }
        do {
            values = try validate(values, creating: false)
        } catch {
            problems += error.problems
        }
        guard problems.isEmpty else { throw ValidationError(problems: problems) }
        return values
    }
}
