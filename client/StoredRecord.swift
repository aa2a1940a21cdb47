import SiteSyncCore

/// A record as stored on the replica: its id and every field, in the table's column order.
public struct StoredRecord: Sendable, Equatable {
    /// The table.
    public var table: String
    /// The record id.
    public var id: String
    /// Field names and values in column order, `site_id` first and `_deleted` last.
    public var fields: [(name: String, value: FieldValue)]

    /// Creates a record.
    public init(table: String, id: String, fields: [(name: String, value: FieldValue)]) {
        self.table = table
        self.id = id
        self.fields = fields
    }

    /// The value of `field`, or nil if the table has no such field.
    public subscript(field: String) -> FieldValue? {
        fields.first { $0.name == field }?.value
    }

    /// Whether the record was soft-deleted.
    public var isDeleted: Bool { !(self[TableSchema.deletedColumn] ?? .null).isNull }

    public static func == (lhs: StoredRecord, rhs: StoredRecord) -> Bool {
        lhs.table == rhs.table && lhs.id == rhs.id && lhs.fields.elementsEqual(rhs.fields) { $0 == $1 }
    }
}
