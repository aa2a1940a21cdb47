import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import TrialRecords

/// One adverse event row of the workload.
struct AdverseEventRow {
    var id: String
    var values: [(any DatabaseValueConvertible)?]
}

/// Plausible adverse events for one site, with the same values every run.
struct AdverseEventGenerator {
    let site: String
    static let columns = ["id", "site_id", "subject_id", "term", "onset_date", "grade", "serious", "outcome"]
    private static let terms = [
        "Cytokine release syndrome", "Immune effector cell-associated neurotoxicity syndrome", "Neutropenia",
        "Thrombocytopenia", "Anaemia", "Pyrexia", "Hypotension", "Upper respiratory tract infection", "Fatigue", "Headache",
    ]
    private static let outcomes = ["recovered", "recovering", "not recovered", "recovered with sequelae"]

    func rows(_ count: Int) -> [AdverseEventRow] {
        let subjects = (0..<100).map { _ in RecordID.generate() }
        return (0..<count).map { index in
            // The ids replicas generate (time-ordered UUIDv7), as `sitesync put` would.
            let id = RecordID.generate()
            let month = index % 12 + 1
            let day = index % 28 + 1
            return AdverseEventRow(
                id: id,
                values: [
                    id, site, subjects[index % subjects.count], Self.terms[index % Self.terms.count],
                    String(format: "2026-%02d-%02d", month, day), Int64(index % 5 + 1), Int64(index % 7 == 0 ? 1 : 0),
                    Self.outcomes[index % Self.outcomes.count],
                ])
        }
    }
}

/// A table identical to `adverse_events`, without change tracking, in a database file of its own
/// opened like a replica's (WAL, through a GRDB pool), so that neither side's WAL checkpoints are
/// charged to the other's commits.
struct UntrackedTable {
    let writer: DatabasePool

    init(path: String) throws {
        writer = try DatabasePool(path: path)
        try writer.write { db in
            try db.execute(sql: TrialSchema.adverseEvents.restricted(to: TrialSchema.version).createTableSQL)
        }
    }
}

/// The seconds one `local_write` repetition took on each side.
struct LocalWriteTimes {
    /// Through the library's connection.
    var tracked: Double
    /// Through a plain SQLite connection on another replica's file, as any other client writes.
    var foreign: Double
    /// Into a table without tracking.
    var untracked: Double
}

extension Replica {
    /// Inserts the rows into `adverse_events` (tracked) on this replica's connection, on `foreign`
    /// (a plain connection to another replica's file) and into `untracked`, in transactions of
    /// 1,000; returns the seconds each side took.
    ///
    /// The sides take turns batch by batch, and which goes first rotates, so that a burst of load
    /// on the shared machine falls on all alike instead of on one whole side.
    func insertLocally(_ rows: [AdverseEventRow], foreign: DatabasePool, untracked table: UntrackedTable) throws -> LocalWriteTimes {
        let writers: [any DatabaseWriter] = [writer, foreign, table.writer]
        var times = [Duration](repeating: .zero, count: writers.count)
        for (index, start) in stride(from: 0, to: rows.count, by: 1000).enumerated() {
            let batch = rows[start..<min(start + 1000, rows.count)]
            for turn in 0..<writers.count {
                let side = (index + turn) % writers.count
                times[side] += try Self.insert(batch, into: writers[side])
            }
        }
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        return LocalWriteTimes(tracked: seconds(times[0]), foreign: seconds(times[1]), untracked: seconds(times[2]))
    }

    /// Inserts rows into `adverse_events` (tracked) in transactions of 1,000.
    func insertTracked(_ rows: [AdverseEventRow]) throws {
        for start in stride(from: 0, to: rows.count, by: 1000) {
            _ = try Self.insert(rows[start..<min(start + 1000, rows.count)], into: writer)
        }
    }

    /// Inserts `rows` into the `adverse_events` table of `writer` in one transaction; returns the time taken.
    private static func insert(_ rows: ArraySlice<AdverseEventRow>, into writer: some DatabaseWriter) throws -> Duration {
        let columns = AdverseEventGenerator.columns.joined(separator: ", ")
        let marks = Array(repeating: "?", count: AdverseEventGenerator.columns.count).joined(separator: ", ")
        let sql = "INSERT INTO adverse_events (\(columns)) VALUES (\(marks))"
        let start = ContinuousClock.now
        try writer.write { db in
            let statement = try db.cachedStatement(sql: sql)
            for row in rows {
                try statement.execute(arguments: StatementArguments(row.values))
            }
        }
        return ContinuousClock.now - start
    }
}
