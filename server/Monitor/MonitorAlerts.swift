import SiteSyncCore

/// The trial's rules for the monitoring page's alerts: the tables they read, and the records of a
/// site (by table) they flag.
public struct MonitorAlerts: Sendable {
    public var tables: [String]
    public var alerts: @Sendable (_ records: [String: [[String: FieldValue]]]) -> [MonitorAlert]

    public init(tables: [String], alerts: @escaping @Sendable ([String: [[String: FieldValue]]]) -> [MonitorAlert]) {
        self.tables = tables
        self.alerts = alerts
    }
}
