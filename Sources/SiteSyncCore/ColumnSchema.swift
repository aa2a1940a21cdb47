import Foundation

/// What a column holds and which values it accepts.
public enum ColumnType: Sendable, Equatable {
    /// Free text of at most `maxBytes` bytes of UTF-8 (bytes, not characters: a character may carry
    /// any number of combining marks, so a limit in characters would bound nothing).
    case text(maxBytes: Int = 2000)
    /// A whole number within an optional inclusive range.
    case integer(ClosedRange<Int64>? = nil)
    /// A real number within an optional inclusive range.
    case real(ClosedRange<Double>? = nil)
    /// A calendar date written `YYYY-MM-DD`.
    case date
    /// A yes/no flag stored as 0 or 1.
    case flag
    /// One of a fixed list of codes.
    case choice([String])

    /// The SQLite column type used to store it.
    public var sqlType: String {
        switch self {
        case .text, .date, .choice: "TEXT"
        case .integer, .flag: "INTEGER"
        case .real: "REAL"
        }
    }
}

/// One column of a synced table: its name, type, rules and the schema version that introduced it.
public struct ColumnSchema: Sendable, Equatable {
    /// The column name, as in SQL and on the wire.
    public var name: String
    /// What it holds.
    public var type: ColumnType
    /// Whether a live record must have a value.
    public var required: Bool
    /// The value given to a new record that does not name the column.
    public var defaultValue: FieldValue
    /// The schema version that added the column.
    public var since: Int
    /// Whether replicas may write it; server-owned fields (the conflict log's sides) are not.
    public var writable: Bool
    /// A short description, with units, for documentation and help.
    public var summary: String

    /// Creates a column.
    public init(
        _ name: String,
        _ type: ColumnType,
        required: Bool = false,
        default defaultValue: FieldValue = .null,
        since: Int = 1,
        writable: Bool = true,
        summary: String = ""
    ) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.since = since
        self.writable = writable
        self.summary = summary
    }
}

extension ColumnSchema {
    /// The value in the storage type of the column: a whole-number real in an integer or flag
    /// column becomes an integer, an integer in a real column becomes a real.
    ///
    /// JSON writes `68.0` as `68`, and SQLite's column affinity converts a stored number the same
    /// way, so every entry point (a typed value, an import, a pulled or pushed value, a conflict's
    /// side) normalises through here: equality of two values of one column then never depends on
    /// how the number was written. Values of another kind are returned unchanged for
    /// ``validate(_:table:)`` to refuse.
    public func normalize(_ value: FieldValue) -> FieldValue {
        switch (type, value) {
        case (.real, .integer(let integer)): .real(Double(integer))
        case (.integer, .real(let real)), (.flag, .real(let real)): Int64(exactly: real).map(FieldValue.integer) ?? value
        default: value
        }
    }

    /// Checks a value against the column's type and rules; returns it normalised (see ``normalize(_:)``).
    public func validate(_ value: FieldValue, table: String) throws(ValidationError) -> FieldValue {
        func refuse(_ message: String, got: String? = nil) -> ValidationError {
            ValidationError(table: table, field: name, message, got: got)
        }
        let value = normalize(value)
        if value.isNull {
            if required { throw refuse("is required and cannot be empty") }
            return .null
        }
        switch type {
        case .text(let maxBytes):
            guard case .text(let text) = value else { throw refuse("must be text", got: "\(value.briefDescription)") }
            if let problem = TextRules.problem(text, maxBytes: maxBytes) { throw refuse(problem) }
            if required, text.allSatisfy(\.isWhitespace) { throw refuse("is required and cannot be blank") }
            return value
        case .integer(let range):
            guard case .integer(let number) = value else { throw refuse("must be a whole number\(Self.rangeText(range))", got: "\(value.briefDescription)") }
            if let range, !range.contains(number) {
                throw refuse("must be a whole number\(Self.rangeText(range))", got: "\(number)")
            }
            return value
        case .real(let range):
            guard case .real(let number) = value, number.isFinite else {
                throw refuse("must be a number\(Self.rangeText(range))", got: "\(value.briefDescription)")
            }
            if let range, !range.contains(number) {
                throw refuse("must be a number\(Self.rangeText(range))", got: "\(FieldValue.real(number).displayText ?? "")")
            }
            return value
        case .date:
            guard case .text(let text) = value, Self.isCalendarDate(text) else {
                throw refuse("must be a calendar date written YYYY-MM-DD", got: "\(value.briefDescription)")
            }
            return value
        case .flag:
            guard case .integer(let number) = value, number == 0 || number == 1 else {
                throw refuse("must be 0 (no) or 1 (yes)", got: "\(value.briefDescription)")
            }
            return value
        case .choice(let choices):
            guard case .text(let text) = value, choices.contains(text) else {
                throw refuse("must be one of \(choices.joined(separator: ", "))", got: value.briefDescription)
            }
            return value
        }
    }

    /// Reads a value typed by a person (`grade=3`, `onset_date=2026-01-15`, `outcome=` for empty).
    public func parse(_ text: String, table: String) throws(ValidationError) -> FieldValue {
        if text.isEmpty { return .null }
        switch type {
        case .integer, .flag:
            // 68.0 is the whole number 68, as it is when it arrives as JSON.
            guard let number = Int64(text) ?? Double(text).flatMap(Int64.init(exactly:)) else {
                throw ValidationError(table: table, field: name, "must be a whole number", got: "\"\(text)\"")
            }
            return .integer(number)
        case .real:
            guard let number = Double(text), number.isFinite else {
                throw ValidationError(table: table, field: name, "must be a number", got: "\"\(text)\"")
            }
            return .real(number)
        case .text, .date, .choice:
            return .text(text)
        }
    }

    private static func rangeText<T>(_ range: ClosedRange<T>?) -> String {
        guard let range else { return "" }
        return " from \(FieldValue.describe(range.lowerBound)) to \(FieldValue.describe(range.upperBound))"
    }

    /// Whether `text` is a real calendar date in the form `YYYY-MM-DD` (so 2026-02-30 is refused).
    public static func isCalendarDate(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        guard utf8.count == 10, utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-") else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var result = 0
            for byte in utf8[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                result = result * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return result
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            year >= 1900, (1...12).contains(month), day >= 1
        else { return false }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return day <= days
    }
}

extension FieldValue {
    fileprivate static func describe<T>(_ bound: T) -> String {
        switch bound {
        case let real as Double: FieldValue.real(real).displayText ?? "\(real)"
        default: "\(bound)"
        }
    }
}
