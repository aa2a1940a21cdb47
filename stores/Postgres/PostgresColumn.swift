import NIOCore
import PostgresNIO
import SiteSyncCore
import SiteSyncRules

/// One column of a batch's rows, bound as one PostgreSQL array parameter in the binary format,
/// NULLs included: a statement turns the columns of a batch back into rows with `unnest($1, $2, …)`.
///
/// A batch of 2,000 records goes to the database as a dozen arrays whose elements are copied as
/// they are, where a JSON document of the same rows had to be escaped here and parsed there.
struct PostgresColumn: PostgresDynamicTypeEncodable, Sendable {
    /// The type of the array's elements.
    enum Element: Sendable {
        case text, bigint, double

        /// The element type that holds values of a column of `type`.
        init(_ type: ColumnType) {
            switch type {
            case .text, .date, .choice: self = .text
            case .integer, .flag: self = .bigint
            case .real: self = .double
            }
        }

        /// The element types of `fields` of `table`.
        static func of(_ fields: [String], in table: TableSchema) throws -> [Element] {
            try fields.map { name in
                guard let column = table.column(name) else { throw StorageError(.failed, code: "column", message: "\(table.name) has no field \(name)") }
                return Element(column.type)
            }
        }
    }

    let element: Element
    /// The elements as the array's binary format lists them: each one's length, then its bytes.
    private var elements: ByteBuffer
    /// Number of elements.
    private(set) var count = 0
    private var hasNull = false

    /// An empty column of `element`s, with room for `capacity` bytes.
    init(_ element: Element, capacity: Int = 1024) {
        self.element = element
        self.elements = ByteBufferAllocator().buffer(capacity: capacity)
    }

    mutating func appendNull() {
        elements.writeInteger(-1, as: Int32.self)
        hasNull = true
        count += 1
    }

    /// Appends a text, or NULL; the column holds text.
    mutating func append(_ text: String?) {
        precondition(element == .text, "PostgresColumn: a text in a column of \(element)")
        guard let text else { return appendNull() }
        let start = elements.writerIndex
        elements.writeInteger(0, as: Int32.self)
        let length = elements.writeString(text)
        elements.setInteger(Int32(length), at: start, as: Int32.self)
        count += 1
    }

    /// Appends an integer, or NULL; the column holds integers.
    mutating func append(_ integer: Int64?) {
        precondition(element == .bigint, "PostgresColumn: an integer in a column of \(element)")
        guard let integer else { return appendNull() }
        elements.writeInteger(8, as: Int32.self)
        elements.writeInteger(integer, as: Int64.self)
        count += 1
    }

    /// Appends a field value in the column's element type. Values reach a store validated in
    /// their column's type; one that is not is refused rather than converted.
    mutating func append(_ value: FieldValue) throws {
        switch (element, value) {
        case (_, .null):
            appendNull()
        case (.text, .text(let text)):
            append(text)
        case (.bigint, .integer(let integer)):
            append(integer)
        case (.double, .real(let real)):
            elements.writeInteger(8, as: Int32.self)
            elements.writeInteger(real.bitPattern, as: UInt64.self)
            count += 1
        case (.double, .integer(let integer)):
            try append(.real(Double(integer)))
        default:
            throw StorageError(.failed, code: "value_type", message: "a value \(value) cannot be stored as \(element)")
        }
    }

    var psqlType: PostgresDataType {
        switch element {
        case .text: .textArray
        case .bigint: .int8Array
        case .double: .float8Array
        }
    }

    var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        let elementType: PostgresDataType =
            switch element {
            case .text: .text
            case .bigint: .int8
            case .double: .float8
            }
        // Dimensions (none when empty), whether any element is NULL, the elements' type; then the
        // one dimension's length and lower bound, and the elements.
        buffer.writeInteger(count == 0 ? 0 : 1, as: Int32.self)
        buffer.writeInteger(hasNull ? 1 : 0, as: Int32.self)
        buffer.writeInteger(elementType.rawValue)
        guard count > 0 else { return }
        buffer.writeInteger(Int32(count), as: Int32.self)
        buffer.writeInteger(1, as: Int32.self)
        var elements = elements
        buffer.writeBuffer(&elements)
    }
}

/// The columns of a batch's rows, filled a row at a time.
struct PostgresRows: Sendable {
    private(set) var columns: [PostgresColumn]

    /// Empty rows of columns of `elements`, with room for about `rows` rows.
    init(_ elements: [PostgresColumn.Element], rows: Int = 64) {
        columns = elements.map { PostgresColumn($0, capacity: rows * ($0 == .text ? 32 : 12)) }
    }

    /// Number of rows.
    var count: Int { columns.first?.count ?? 0 }

    subscript(column: Int) -> PostgresColumn {
        get { columns[column] }
        _modify { yield &columns[column] }
    }

    /// `unnest($a, $b, …)` of the columns, each bound in `statement`, in order.
    func unnest(in statement: inout CombinedStatement) -> String {
        "unnest(" + columns.map { statement.bind($0) }.joined(separator: ", ") + ")"
    }
}
