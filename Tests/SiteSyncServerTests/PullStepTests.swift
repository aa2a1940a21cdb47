import SiteSyncCore
import SiteSyncRules
import Testing
import TrialRecords

/// The pull state machine stepped through directly: which records' values the rules ask a store
/// for, and what the page sends and where its cursor ends, so that no store decides either.
@Suite("The pull state machine's steps")
struct PullStepTests {
    private func record(_ seq: Int64, _ table: String, _ id: String, by replica: String, override: String? = nil) -> PullTransaction.PulledRecord {
        let stamp = Stamp(hlc: HLC(milliseconds: 1_000 + seq), replica: replica, user: "A. Rivera")
        let overrides = override.map { ["status": Stamp(hlc: HLC(milliseconds: 2_000 + seq), replica: $0, user: "B. Chen")] } ?? [:]
        return PullTransaction.PulledRecord(seq: seq, table: table, id: id, stamps: FieldStamps(base: stamp, overrides: overrides), values: nil)
    }

    @Test("Values are read only for records the puller does not hold, of tables its schema has; skipped records still move the cursor")
    func valuesAskedFor() throws {
        let schema = TrialSchema.current
        let subjects = try schema.table("subjects")
        let request = PullRequest(cursor: ["S01": 4], limit: 10, replica: "r1")
        var transaction = PullTransaction(request, principal: Principal(role: .site, site: "S01", replica: "r1"), schema: schema)
        guard case .readRecords(let site, let after, let limit) = try transaction.next(nil) else {
            Issue.record("a site token's pull reads its site's records first")
            return
        }
        #expect(site == "S01" && after == 4 && limit == 11, "one more than the limit: whether more wait")

        let records = [
            record(5, "subjects", "own", by: "r1"), // every field written by the puller: it holds it
            record(6, "subjects", "theirs", by: "r2"),
            record(7, "subjects", "mixed", by: "r1", override: "r2"), // a field another replica wrote
            record(8, "future_table", "new", by: "r2"), // a table of a later schema
        ]
        guard case .readValues(let tables) = try transaction.next(.records(records)) else {
            Issue.record("the values of the records to send are read next")
            return
        }
        #expect(tables.map(\.table.name) == ["subjects"] && tables.first?.ids == ["theirs", "mixed"])

        let values = subjects.columns.map { _ in FieldValue.null }
        let answer: [RecordKey: [FieldValue]] = [RecordKey(table: "subjects", id: "theirs"): values, RecordKey(table: "subjects", id: "mixed"): values]
        guard case .finished(let batch) = try transaction.next(.values(answer)) else {
            Issue.record("one site: the page is finished")
            return
        }
        #expect(batch.groups.map(\.table) == ["subjects"] && batch.groups.first?.rows.map(\.id) == ["theirs", "mixed"])
        #expect(batch.cursor == ["S01": 8], "the last sequence number read, skipped records included")
        #expect(!batch.more)
    }

    @Test("A page whose every record the puller holds reads no values")
    func nothingToSend() throws {
        let request = PullRequest(cursor: [:], limit: 10, replica: "r1")
        var transaction = PullTransaction(request, principal: Principal(role: .site, site: "S01", replica: "r1"), schema: TrialSchema.current)
        _ = try transaction.next(nil)
        guard case .finished(let batch) = try transaction.next(.records([record(1, "subjects", "own", by: "r1")])) else {
            Issue.record("no values to read: the page is finished")
            return
        }
        #expect(batch.groups.isEmpty && batch.cursor == ["S01": 1])
    }
}
