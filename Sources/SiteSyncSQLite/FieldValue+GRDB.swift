import GRDB
import SiteSyncCore

extension FieldValue: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let value): value.databaseValue
        case .real(let value): value.databaseValue
        case .text(let value): value.databaseValue
        }
    }

    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> FieldValue? {
        switch dbValue.storage {
        case .null: .null
        case .int64(let value): .integer(value)
        case .double(let value): .real(value)
        case .string(let value): .text(value)
        // Synced tables hold no blobs; read one as text rather than failing the whole row.
        case .blob(let data): .text(String(decoding: data, as: UTF8.self))
        }
    }
}

extension Row {
    /// The field value at `index`, read without going through `Any`.
    @inlinable
    public func fieldValue(atIndex index: Int) -> FieldValue {
        FieldValue.fromDatabaseValue(self[index] as DatabaseValue) ?? .null
    }
}
