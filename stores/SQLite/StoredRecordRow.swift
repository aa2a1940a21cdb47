import GRDB
import SiteSyncCore

/// A row of the `records` table, every record's site, sequence number and stamps, read by column.
///
/// Reads select ``columns`` (the table aliased `r`) first and anything else after them, from
/// position ``following`` on; the positions live here, in ``Column``, and nowhere else.
struct StoredRecordRow {
    enum Column: Int, CaseIterable {
        case table, id, seq, site, hlc, replica, user, fields

        var expression: String {
            switch self {
            case .table: "r.tbl"
            case .id: "r.id"
            case .seq: "r.seq"
            case .site: "r.site_id"
            case .hlc: "r.hlc"
            case .replica: "r.replica"
            case .user: "r.user"
            case .fields: "r.fields"
            }
        }
    }

    /// The select list of a stored record's row.
    static let columns = Column.allCases.map(\.expression).joined(separator: ", ")
    /// The position of the first column selected after ``columns``.
    static let following = Column.allCases.count

    var table: String
    var id: String
    /// The record's place in its site's sequence.
    var seq: Int64
    var site: String
    var stamps: FieldStamps

    init(_ row: Row) throws {
        table = row[Column.table.rawValue]
        id = row[Column.id.rawValue]
        seq = row[Column.seq.rawValue]
        site = row[Column.site.rawValue]
        stamps = FieldStamps(
            base: Stamp(hlc: HLC(rawValue: row[Column.hlc.rawValue]), replica: row[Column.replica.rawValue], user: row[Column.user.rawValue]),
            overrides: try FieldStamps.overrides(fromJSON: row[Column.fields.rawValue])
        )
    }
}
