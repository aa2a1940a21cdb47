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

/// A duration in the largest two units that matter: `4 d 2 h`, `3 h 12 min`, `40 s`; how both
/// command-line tools and the monitoring page show an age or a limit.
public func describeDuration(_ seconds: Int) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60)
    if days > 0 { return hours > 0 ? "\(days) d \(hours) h" : "\(days) d" }
    if hours > 0 { return minutes > 0 ? "\(hours) h \(minutes) min" : "\(hours) h" }
    if minutes > 0 { return "\(minutes) min" }
    return "\(seconds) s"
}
