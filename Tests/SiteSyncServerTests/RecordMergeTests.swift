import SiteSyncCore
import SiteSyncRules
import Testing

@testable import SiteSyncServer

@Suite("Merge rule")
struct RecordMergeTests {
    let v1 = Stamp(hlc: HLC(milliseconds: 100), replica: "a", user: "A")

    private func current(status: String = "screening") -> ServerRecord {
        ServerRecord(site: "S01", stamps: FieldStamps(base: v1), values: ["status": .text(status), "site_id": .text("S01")])
    }

    private func merge(_ current: ServerRecord, value: String, hlc: Int64, base: Version?, replica: String = "b") -> MergeResult {
        let group = ChangeGroup(table: "subjects", user: "B", columns: ["status"], rows: [])
        let row = ChangeRow(id: "s1", seq: HLC(milliseconds: hlc), values: [.text(value)], bases: [base])
        return RecordMerge.merge(current: current, table: "subjects", site: "S01", group: group, row: row, replica: replica)
    }

    @Test("A change based on the current version fast-forwards without a conflict")
    func fastForward() {
        let result = merge(current(), value: "enrolled", hlc: 200, base: v1.version)
        #expect(result.writes.map(\.field) == ["status"])
        #expect(result.outcomes == [.applied])
        #expect(result.conflicts.isEmpty)
        #expect(result.stamps["status"].version == Version(hlc: HLC(milliseconds: 200), replica: "b"))
    }

    @Test("A concurrent later write wins and the overwritten value is logged with both sides")
    func concurrentLaterWins() throws {
        var record = current(status: "enrolled")
        record.stamps["status"] = Stamp(hlc: HLC(milliseconds: 150), replica: "c", user: "C")
        let result = merge(record, value: "withdrawn", hlc: 200, base: v1.version)
        #expect(result.outcomes == [.applied])
        let conflict = try #require(result.conflicts.first)
        #expect(conflict.winner.value == .text("withdrawn"))
        #expect(conflict.winner.user == "B")
        #expect(conflict.loser.value == .text("enrolled"))
        #expect(conflict.loser.version == Version(hlc: HLC(milliseconds: 150), replica: "c"))
        #expect(conflict.loser.user == "C")
    }

    @Test("A concurrent earlier write is superseded and logged as the loser")
    func concurrentEarlierLoses() throws {
        var record = current(status: "enrolled")
        record.stamps["status"] = Stamp(hlc: HLC(milliseconds: 300), replica: "c", user: "C")
        let result = merge(record, value: "withdrawn", hlc: 200, base: v1.version)
        #expect(result.outcomes == [.superseded])
        #expect(result.writes.isEmpty)
        let conflict = try #require(result.conflicts.first)
        #expect(conflict.winner.value == .text("enrolled"))
        #expect(conflict.loser.value == .text("withdrawn"))
    }

    @Test("Concurrent writes of the same value log nothing")
    func equalValues() {
        var record = current(status: "enrolled")
        record.stamps["status"] = Stamp(hlc: HLC(milliseconds: 150), replica: "c", user: "C")
        let result = merge(record, value: "enrolled", hlc: 200, base: v1.version)
        #expect(result.conflicts.isEmpty)
        #expect(result.outcomes == [.unchanged])
        #expect(result.stamps["status"].version.hlc == HLC(milliseconds: 200), "the greater version is kept")
    }

    @Test("The same write arriving again changes nothing")
    func sameVersion() {
        let result = merge(current(), value: "screening", hlc: 100, base: nil, replica: "a")
        #expect(result.conflicts.isEmpty)
        #expect(!result.changesRecord)
    }

    @Test("Conflict ids are derived from the two writes")
    func deterministicIDs() {
        var record = current(status: "enrolled")
        record.stamps["status"] = Stamp(hlc: HLC(milliseconds: 150), replica: "c", user: "C")
        let first = merge(record, value: "withdrawn", hlc: 200, base: v1.version).conflicts[0].id
        let again = merge(record, value: "withdrawn", hlc: 200, base: v1.version).conflicts[0].id
        let other = merge(record, value: "withdrawn", hlc: 201, base: v1.version).conflicts[0].id
        #expect(first == again)
        #expect(first != other)
        #expect(first.count == 32)
    }

    @Test("A replica's later write over its own earlier one fast-forwards, whatever its base says")
    func ownEarlierWriteIsSequential() {
        // The server holds a's write at 150, whose answer a never received; a edited again at 200, and
        // its base is still the version before 150.
        var record = current(status: "enrolled")
        record.stamps["status"] = Stamp(hlc: HLC(milliseconds: 150), replica: "a", user: "A")
        let result = merge(record, value: "withdrawn", hlc: 200, base: v1.version, replica: "a")
        #expect(result.conflicts.isEmpty)
        #expect(result.outcomes == [.applied])
        #expect(result.stamps["status"].version == Version(hlc: HLC(milliseconds: 200), replica: "a"))
        // Another replica's write on the same base is still concurrent.
        #expect(merge(record, value: "withdrawn", hlc: 200, base: v1.version, replica: "b").conflicts.count == 1)
    }
}
