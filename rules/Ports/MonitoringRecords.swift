import Foundation
import SiteSyncCore

/// An enrolled laptop and what it last reported (``ReplicaReport``).
public struct ReplicaFreshness: Sendable, Equatable, Encodable {
    public var replica: String
    /// Its site; ``SiteID/all`` for a laptop enrolled with a reviewer token.
    public var site: String
    /// When it was enrolled (ISO 8601, UTC).
    public var enrolledAt: String
    /// Its latest report; nil when it never completed a sync with this build of the server.
    public var report: Report?

    /// A laptop's latest report, as the server recorded it.
    public struct Report: Sendable, Equatable, Encodable {
        public var user: String
        public var build: String
        public var schemaVersion: Int
        /// Changes waiting on the laptop to be pushed.
        public var pending: Int
        /// The laptop's clock minus the server's when the report arrived, in milliseconds.
        public var clockOffsetMilliseconds: Int64
        /// When its last sync completed: a pull that reached the end of what waited (ISO 8601, UTC).
        public var lastSyncAt: String

        /// Creates a report as recorded.
        public init(user: String, build: String, schemaVersion: Int, pending: Int, clockOffsetMilliseconds: Int64, lastSyncAt: String) {
            (self.user, self.build, self.schemaVersion, self.pending) = (user, build, schemaVersion, pending)
            (self.clockOffsetMilliseconds, self.lastSyncAt) = (clockOffsetMilliseconds, lastSyncAt)
        }

        enum CodingKeys: String, CodingKey {
            case user, build, pending
            case schemaVersion = "schema_version", clockOffsetMilliseconds = "clock_offset_ms", lastSyncAt = "last_sync_at"
        }
    }

    public init(replica: String, site: String, enrolledAt: String, report: Report?) {
        (self.replica, self.site, self.enrolledAt, self.report) = (replica, site, enrolledAt, report)
    }

    /// The last sync, or the enrolment for a laptop that never synced: what staleness counts from.
    public var lastSeenAt: String { report?.lastSyncAt ?? enrolledAt }

    /// Whole seconds from ``lastSeenAt`` to `now` (0 for a time ahead of it); nil when unreadable.
    public func secondsSinceLastSeen(at now: Date) -> Int? {
        guard let last = try? Date(lastSeenAt, strategy: .iso8601) else { return nil }
        return max(0, Int(now.timeIntervalSince(last)))
    }

    /// Whether the laptop has not synced for `limit` at `now`.
    public func isStale(after limit: Duration, at now: Date) -> Bool {
        guard let last = try? Date(lastSeenAt, strategy: .iso8601) else { return true }
        return now.timeIntervalSince(last) > Double(limit.components.seconds)
    }

    enum CodingKeys: String, CodingKey {
        case replica, site, report
        case enrolledAt = "enrolled_at"
    }
}

/// What a site holds and how busy it is.
public struct SiteActivity: Sendable, Equatable {
    /// Live records (not deleted) per table of the schema.
    public var recordsByTable: [String: Int]
    /// Record changes received per day (`YYYY-MM-DD`), days without any left out.
    public var changesByDay: [String: Int]

    public init(recordsByTable: [String: Int], changesByDay: [String: Int]) {
        self.recordsByTable = recordsByTable
        self.changesByDay = changesByDay
    }
}
