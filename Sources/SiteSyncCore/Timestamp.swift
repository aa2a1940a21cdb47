import Foundation

/// Times as SiteSync stores and shows them: ISO 8601 in UTC, to the second
/// (`2026-12-07T10:00:00Z`), so that they sort as text in every store.
public enum Timestamp {
    /// The time `milliseconds` after 1970.
    public static func iso8601(milliseconds: Int64) -> String {
        iso8601(Date(timeIntervalSince1970: Double(milliseconds) / 1000))
    }

    /// The time `date`.
    public static func iso8601(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

extension HLC {
    /// The wall-clock time of the stamp: when the value was written, as a person is shown it.
    public var iso8601: String { Timestamp.iso8601(milliseconds: milliseconds) }
}

extension HybridLogicalClock {
    /// Now, by this clock's wall clock: what a replica records as the time of what it does (its
    /// last sync, a resolution), by the same clock that stamps its writes.
    public var now: String { Timestamp.iso8601(milliseconds: wallMilliseconds) }
}
