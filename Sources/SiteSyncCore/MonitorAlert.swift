/// A record the monitoring page draws attention to, such as an adverse event that is a candidate
/// dose-limiting toxicity. Which records, and why, the trial decides (``MonitorAlerts``).
public struct MonitorAlert: Sendable, Equatable {
    public var table: String
    public var id: String
    /// The participant the record is about.
    public var subject: String
    /// What the record is, in a few words: the event's term and grade.
    public var title: String
    /// Why it is shown: one short label each, such as "DLT candidate".
    public var flags: [String]
    /// The day it concerns (`YYYY-MM-DD`), such as an event's onset.
    public var date: String?

    public init(table: String, id: String, subject: String, title: String, flags: [String], date: String?) {
        (self.table, self.id, self.subject, self.title, self.flags, self.date) = (table, id, subject, title, flags, date)
    }
}
