import Foundation
import SiteSyncCore
import SiteSyncRules
import Testing
import TrialRecords

/// The push state machine stepped through directly, with a store that answers from memory: the
/// order of its steps is the safety property every store relies on (docs/ARCHITECTURE.md, "The
/// sync rules and the stores").
@Suite("The push state machine's steps")
struct PushStepOrderTests {
    /// The steps a push asks for, by name, and what it finished with.
    private struct Run {
        var steps: [String] = []
        var heads: [[String]] = []
        var write: PushWrites?
        var outcome: PushOutcome?
    }

    /// A store's contents as the steps read them.
    private struct Memory {
        var replica: StoredReplica?
        var sites: [RecordKey: String] = [:]
        var records: [RecordKey: ServerRecord] = [:]
        var written: [WrittenValueKey: FieldValue] = [:]
    }

    private func check(_ request: PushRequest, principal: Principal, now: Int64) throws -> CheckedPush {
        try PushValidation.check(
            request, principal: principal, schema: TrialSchema.current, serverMilliseconds: now, maximumSkewMilliseconds: 60_000,
            receivedAt: "2026-12-07T10:00:00Z"
        )
    }

    /// A store answering each step from memory and recording the order of the steps.
    private struct RecordingStorage: PushStorage {
        var memory: Memory
        var run = Run()

        mutating func lockReplica(_ replica: String) throws -> StoredReplica? {
            run.steps.append("lockReplica")
            return memory.replica
        }

        mutating func sites(of keys: [RecordKey]) throws -> [RecordKey: String] {
            run.steps.append("readSites")
            return memory.sites.filter { keys.contains($0.key) }
        }

        mutating func lockHeads(_ sites: [String]) throws -> [String: Int64] {
            run.steps.append("lockHeads")
            run.heads.append(sites)
            return Dictionary(uniqueKeysWithValues: sites.map { ($0, 0) })
        }

        mutating func records(_ keys: [RecordKey]) throws -> [RecordKey: ServerRecord] {
            run.steps.append("readRecords")
            return memory.records.filter { keys.contains($0.key) }
        }

        mutating func writtenValues(_ keys: [WrittenValueKey]) throws -> [WrittenValueKey: FieldValue] {
            run.steps.append("readWrittenValues")
            return memory.written.filter { keys.contains($0.key) }
        }

        mutating func loggedConflicts(_ ids: [String]) throws -> Set<String> {
            run.steps.append("readLoggedConflicts")
            return []
        }

        mutating func write(_ writes: PushWrites) throws {
            run.steps.append("write")
            run.write = writes
        }
    }

    /// Drives one push to its end through the stores' driver loop, answering each step from `memory`.
    private func drive(_ push: CheckedPush, principal: Principal, memory: Memory) throws -> Run {
        var storage = RecordingStorage(memory: memory)
        let outcome = try PushTransaction.run(push, principal: principal, in: &storage)
        storage.run.steps.append("finished")
        storage.run.outcome = outcome
        return storage.run
    }

    @Test("New records of two sites: the replica is locked first, then both sites' heads in site order, then everything is written once")
    func newRecords() throws {
        let now = HybridLogicalClock.systemMilliseconds()
        let reviewer = Principal(role: .reviewer, site: nil, replica: "rv")
        let request = PushRequest(
            replica: "rv",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "D. Manager", columns: ["site_id", "screening_no"],
                    rows: [
                        ChangeRow(id: "s2", seq: HLC(milliseconds: now, counter: 0), values: [.text("S02"), .text("S02-001")]),
                        ChangeRow(id: "s1", seq: HLC(milliseconds: now, counter: 1), values: [.text("S01"), .text("S01-001")]),
                    ])
            ])
        let run = try drive(check(request, principal: reviewer, now: now), principal: reviewer, memory: Memory())
        // Nothing exists yet: no record to read, and the reason rule has nothing to ask.
        #expect(run.steps == ["lockReplica", "readSites", "lockHeads", "write", "finished"])
        #expect(run.heads == [["S01", "S02"]], "heads locked in site order, whatever the push's order")
        #expect(run.write?.created.flatMap { $0.records.map(\.id) } == ["s2", "s1"])
        #expect(run.write?.heads == ["S01": 1, "S02": 1])
        #expect(run.outcome?.applied == 2 && run.outcome?.acked == HLC(milliseconds: now, counter: 1))
    }

    @Test("A concurrent change of an existing record: its site is read before the heads are locked, the record after, the conflict log last, then the write")
    func concurrentChange() throws {
        let now = HybridLogicalClock.systemMilliseconds()
        let site = Principal(role: .site, site: "S01", replica: "r1")
        let key = RecordKey(table: "subjects", id: "s1")
        let theirs = Stamp(hlc: HLC(milliseconds: now - 10), replica: "r2", user: "B. Chen")
        let created = Stamp(hlc: HLC(milliseconds: now - 100), replica: "r2", user: "B. Chen")
        let stamps = FieldStamps(base: created, overrides: ["status": theirs])
        let memory = Memory(
            replica: StoredReplica(lastSeq: HLC(milliseconds: now - 200), lastApplied: 1, lastConflicts: 0, lastPush: nil),
            sites: [key: "S01"],
            records: [key: ServerRecord(site: "S01", stamps: stamps, values: ["status": .text("enrolled"), "site_id": .text("S01")])],
            written: [WrittenValueKey(record: key, field: "status", version: created.version): .null]
        )
        // Based on the creation's version, which left the field empty, so no reason is needed;
        // stamped before the other replica's write: it loses.
        let request = PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A. Rivera", columns: ["status"],
                    rows: [
                        ChangeRow(id: "s1", seq: HLC(milliseconds: now - 20), values: [.text("withdrawn")], bases: [created.version])
                    ])
            ])
        let run = try drive(check(request, principal: site, now: now), principal: site, memory: memory)
        #expect(run.steps == ["lockReplica", "readSites", "lockHeads", "readRecords", "readWrittenValues", "readLoggedConflicts", "write", "finished"])
        #expect(run.heads == [["S01"]])
        let losers: [FieldValue]? = run.write?.conflicts.map { $0.entry.loser.value }
        #expect(losers == [.text("withdrawn")])
        #expect(run.outcome?.conflicts == 1)
        // The audit row as the rules hand it to the store: typed, one element per field sent.
        let audit = try #require(run.write?.audit.first)
        #expect(audit.fields == ["status"])
        #expect(audit.oldValues == [.text("enrolled")])
        #expect(audit.outcomes == [.superseded])
        #expect(audit.bases == [created.version])
        #expect(audit.conflicts == [run.write?.conflicts.first?.entry.id])
    }

    @Test("A batch the replica's state covers already is answered without a lock of any site or a write; another copy of the file is refused at the replica")
    func retriedAndDiverged() throws {
        let now = HybridLogicalClock.systemMilliseconds()
        let site = Principal(role: .site, site: "S01", replica: "r1")
        let request = PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A. Rivera", columns: ["site_id", "screening_no"],
                    rows: [ChangeRow(id: "s1", seq: HLC(milliseconds: now - 50), values: [.text("S01"), .text("S01-001")])])
            ])
        let applied = Memory(replica: StoredReplica(lastSeq: HLC(milliseconds: now - 50), lastApplied: 1, lastConflicts: 0, lastPush: "x"))
        let retried = try drive(check(request, principal: site, now: now), principal: site, memory: applied)
        #expect(retried.steps == ["lockReplica", "finished"])
        #expect(retried.outcome == PushOutcome(acked: HLC(milliseconds: now - 50), applied: 1, conflicts: 0))

        // The replica says it knows of nothing applied, while the server applied more under its id
        // from a push it does not name: another copy of the file.
        var copy = request
        copy.acked = .zero
        copy.sent = ["not-x"]
        #expect(throws: SyncRefusal.replicaDiverged) {
            try drive(check(copy, principal: site, now: now), principal: site, memory: applied)
        }
    }
}
