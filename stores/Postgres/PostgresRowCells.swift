import NIOCore
import PostgresNIO
import SiteSyncCore
import SiteSyncRules

/// The cells of a result row, read in order, each straight from its bytes.
///
/// postgres-nio asks for every result in PostgreSQL's binary format, where a text is its UTF-8
/// bytes, a `bigint` eight bytes big-endian and a `double precision` the eight bytes of its IEEE
/// 754 bits. Reading those directly skips the library's generic decoding, which looks up type
/// metadata per cell and, for a tuple of columns, per row: on a pull page of 2,000 records of a
/// dozen fields, the largest part of the server's work. A cell in another format or type goes
/// through the library's decoding, as before.
struct RowCells {
    private var iterator: PostgresRow.Iterator
    private var index = 0

    init(_ row: PostgresRow) {
        iterator = row.makeIterator()
    }

    /// The next cell.
    mutating func next() throws -> PostgresCell {
        guard let cell = iterator.next() else {
            throw StorageError(.failed, code: "row", message: "a row has \(index) columns, fewer than its statement selects")
        }
        index += 1
        return cell
    }

    /// The next cell as text, or nil for NULL.
    mutating func text() throws -> String? {
        let cell = try next()
        guard var bytes = cell.bytes else { return nil }
        if cell.format == .binary, cell.dataType == .text || cell.dataType == .varchar {
            return bytes.readString(length: bytes.readableBytes)
        }
        return try cell.decode(String?.self)
    }

    /// The next cell as an integer, or nil for NULL.
    mutating func integer() throws -> Int64? {
        let cell = try next()
        guard var bytes = cell.bytes else { return nil }
        if cell.format == .binary, cell.dataType == .int8, bytes.readableBytes == 8, let value = bytes.readInteger(as: Int64.self) {
            return value
        }
        return try cell.decode(Int64?.self)
    }

    /// The next cell as a real number, or nil for NULL.
    mutating func real() throws -> Double? {
        let cell = try next()
        guard var bytes = cell.bytes else { return nil }
        if cell.format == .binary, cell.dataType == .float8, bytes.readableBytes == 8, let bits = bytes.readInteger(as: UInt64.self) {
            return Double(bitPattern: bits)
        }
        return try cell.decode(Double?.self)
    }

    /// The next cell as text that may not be NULL.
    mutating func requiredText() throws -> String {
        guard let text = try text() else { throw missing() }
        return text
    }

    /// The next cell as an integer that may not be NULL.
    mutating func requiredInteger() throws -> Int64 {
        guard let integer = try integer() else { throw missing() }
        return integer
    }

    /// The next cell as a value of `column`'s type.
    mutating func value(_ column: ColumnSchema) throws -> FieldValue {
        switch column.type {
        case .text, .date, .choice: try text().map(FieldValue.text) ?? .null
        case .integer, .flag: try integer().map(FieldValue.integer) ?? .null
        case .real: try real().map(FieldValue.real) ?? .null
        }
    }

    private func missing() -> StorageError {
        StorageError(.failed, code: "row", message: "column \(index) of a row is NULL where a value is required")
    }
}
