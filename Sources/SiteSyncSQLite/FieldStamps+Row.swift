import GRDB
import SiteSyncCore

extension FieldStamps {
    /// The stamps as the four stored columns `hlc, replica, user, fields`.
    public var storedValues: [any DatabaseValueConvertible & Sendable] {
        [base.version.hlc.rawValue, base.version.replica, base.user, overridesJSON]
    }
}
