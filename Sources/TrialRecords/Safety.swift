import Foundation
import SiteSyncCore

/// The protocol's safety rules for adverse events, relative to the subject's CAR-T infusion (day 0).
///
/// - `dlt_window`: onset on days 0 to 28 after the infusion.
/// - `dlt_candidate`: grade 3 or more, in the window, and not listed by the protocol as expected.
/// - `src_review`: grade 3 or 4 with onset after day 28, for the safety review committee.
///
/// A flag is nil when the data to decide it (onset, infusion, grade) is not recorded.
public enum Safety {
    /// The last day of the DLT window, counting the infusion as day 0.
    public static let dltWindowDays = 28

    /// The derived flags of one adverse event.
    public struct Flags: Codable, Sendable, Equatable {
        /// Days from the infusion to the onset.
        public var day: Int?
        public var dltWindow: Bool?
        public var dltCandidate: Bool?
        public var srcReview: Bool?

        /// Creates flags; nil where unknown.
        public init(day: Int? = nil, dltWindow: Bool? = nil, dltCandidate: Bool? = nil, srcReview: Bool? = nil) {
            self.day = day
            self.dltWindow = dltWindow
            self.dltCandidate = dltCandidate
            self.srcReview = srcReview
        }

        enum CodingKeys: String, CodingKey {
            case day = "days_after_infusion", dltWindow = "dlt_window", dltCandidate = "dlt_candidate", srcReview = "src_review"
        }
    }

    /// The flags of an adverse event, given its fields and the subject's infusion date.
    public static func flags(event: [String: FieldValue], infusionDate: String?) -> Flags {
        guard case .text(let onset)? = event["onset_date"], let infusionDate, let day = days(from: infusionDate, to: onset) else {
            return Flags()
        }
        let inWindow = (0...dltWindowDays).contains(day)
        guard case .integer(let grade)? = event["grade"] else { return Flags(day: day, dltWindow: inWindow) }
        let expected = event["expected"] == .integer(1)
        return Flags(
            day: day,
            dltWindow: inWindow,
            dltCandidate: inWindow && grade >= 3 && !expected,
            srcReview: day > dltWindowDays && (3...4).contains(grade)
        )
    }

    /// Whole days from one `YYYY-MM-DD` date to another (negative when `end` is earlier).
    public static func days(from start: String, to end: String) -> Int? {
        guard let first = date(start), let last = date(end) else { return nil }
        return calendar.dateComponents([.day], from: first, to: last).day
    }

    /// The earliest infusion date among a subject's infusions.
    public static func infusionDate(_ infusions: [[String: FieldValue]]) -> String? {
        infusions.compactMap { $0["date"]?.displayText }.min()
    }

    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    private static func date(_ text: String) -> Date? {
        guard ColumnSchema.isCalendarDate(text) else { return nil }
        let parts = text.split(separator: "-").compactMap { Int($0) }
        return calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))
    }
}

extension Safety {
    /// The tables ``monitorAlerts(_:)`` reads.
    public static let monitorTables = [TrialSchema.adverseEvents.name, TrialSchema.infusions.name]

    /// A site's adverse events that the monitoring page flags: candidate DLTs and events for the
    /// safety review committee, each with the day after infusion it started; given the site's live
    /// records of ``monitorTables``. Ordered by onset, then id.
    public static func monitorAlerts(_ records: [String: [[String: FieldValue]]]) -> [MonitorAlert] {
        var infusionsBySubject: [String: [[String: FieldValue]]] = [:]
        for infusion in records[TrialSchema.infusions.name] ?? [] {
            if case .text(let subject)? = infusion["subject_id"] { infusionsBySubject[subject, default: []].append(infusion) }
        }
        var alerts: [MonitorAlert] = []
        for event in records[TrialSchema.adverseEvents.name] ?? [] {
            guard case .text(let subject)? = event["subject_id"], case .text(let id)? = event["id"] else { continue }
            let flags = Self.flags(event: event, infusionDate: infusionDate(infusionsBySubject[subject] ?? []))
            var labels: [String] = []
            if flags.dltCandidate == true { labels.append("DLT candidate") }
            if flags.srcReview == true { labels.append("SRC review") }
            guard !labels.isEmpty else { continue }
            if let day = flags.day { labels.append("day \(day)") }
            let term = event["term"]?.displayText ?? "adverse event"
            let grade = event["grade"]?.displayText.map { ", grade \($0)" } ?? ""
            alerts.append(
                MonitorAlert(
                    table: TrialSchema.adverseEvents.name, id: id, subject: subject, title: term + grade, flags: labels, date: event["onset_date"]?.displayText)
            )
        }
        return alerts.sorted { ($0.date ?? "", $0.id) < ($1.date ?? "", $1.id) }
    }
}
