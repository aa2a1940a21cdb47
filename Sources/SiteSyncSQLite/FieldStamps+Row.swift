import GRDB
import SiteSyncCore

extension FieldStamps {
    /// Reads stamps stored as `hlc, replica, user, fields` columns starting at `index` of `row`.
    public init(row: Row, startingAt index: Int) throws {
        let base = Stamp(
            hlc: HLC(rawValue: row[index]),
            replica: row[index + 1],
            user: row[index + 2]
        )
        self.init(base: base, overrides: try FieldStamps.overrides(fromJSON: row[index + 3]))
    }

    /// The stamps as the four stored columns `hlc, replica, user, fields`.
    public var storedValues: [any DatabaseValueConvertible & Sendable] {
        [base.version.hlc.rawValue, base.version.replica, base.user, overridesJSON]
    }
}
