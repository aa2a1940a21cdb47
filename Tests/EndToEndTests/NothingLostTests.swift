import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

/// The six ways a value used to be lost without a trace (issue "Nothing silently lost"), each end
/// to end over loopback HTTP with real replicas on disk.
@Suite("Nothing silently lost")
struct NothingLostTests {
    // MARK: 1. Replica identity

    @Test("A push naming another laptop's replica is refused and changes nothing of that replica", arguments: StoreKind.all)
    func borrowedReplicaIDRefused(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()
            let before = try await server.dump()

            // b's credential, a's replica id, a sequence number far above a's
            let forged = PushRequest(
                replica: a.replica.identity!.replicaID,
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "B", columns: ["site_id", "screening_no"],
                        rows: [
                            ChangeRow(
                                id: RecordID.generate(), seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds() + 30_000),
                                values: [.text("S01"), .text("S01-999")])
                        ]
                    )
                ])
            await #expect { try await b.transport.push(forged) } throws: { ($0 as? SyncError)?.status == 403 }
            // An enrolment token cannot push either, under any replica id
            let enrolment = HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.version)
            await #expect { try await enrolment.push(forged) } throws: { ($0 as? SyncError)?.status == 403 }
            #expect(try await server.dump() == before)

            // a's later changes are applied, acknowledged and reach b
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-002")])
            #expect(try await a.sync().pushed == 1)
            try await b.sync()
            #expect(try b.replica.get("subjects", id: id)?["screening_no"] == .text("S01-002"))
        }
    }

    @Test("A replica id is enrolled once: a second laptop asking for it is refused and told to rejoin", arguments: StoreKind.all)
    func replicaIDEnrolledOnce(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            try await a.engine().enrol()
            let intruder = HTTPTransport(serverURL: server.url, token: server.s01, schemaVersion: TrialSchema.version)
            await #expect {
                try await intruder.enrol(
                    EnrolRequest(replica: a.replica.identity!.replicaID, user: "Mallory", credential: Credential.generate(prefix: Credential.replicaPrefix)))
            } throws: { error in
                let error = error as? SyncError
                return error?.status == 409 && error?.code == ErrorCode.replicaTaken.rawValue && error?.message.contains("sitesync init --rejoin") == true
            }
            // a's own request sent again (its answer lost) is answered again
            #expect(try await intruder.enrol(try await a.replica.sync.enrolmentRequest()).replica == a.replica.identity!.replicaID)
            // a still syncs with its own credential
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            #expect(try await a.sync().pushed == 1)
        }
    }

    @Test("A copied replica file is refused at its first diverging sync; the original syncs on; rejoin loses nothing", arguments: StoreKind.all)
    func copiedReplicaFile(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            let copy = try server.copy(a, as: "a-copy")
            let b = try server.laptop("b")

            // Both copies write offline; the original syncs first
            let original = try a.replica.put("subjects", ["screening_no": .text("S01-002")])
            let copied = try copy.replica.put("subjects", ["screening_no": .text("S01-003")])
            try await a.sync()
            let before = try await server.dump()
            await #expect { try await copy.sync() } throws: { error in
                let error = error as? SyncError
                return error?.code == ErrorCode.replicaDiverged.rawValue && error?.message.contains("sitesync init --rejoin") == true
            }
            #expect(try await server.dump() == before, "a refused copy writes nothing")
            #expect(try copy.replica.status().pendingChanges == 1, "and keeps its change queued")

            // The original keeps syncing untouched
            try a.replica.put("subjects", id: original, ["sex": .text("F")], reason: "Corrected from the source document")
            #expect(try await a.sync().pushed == 1)

            // The copy rejoins under a new id: its change is pushed, and it receives what a pushed
            let rejoined = try copy.replica.rejoin(enrolmentToken: server.s01)
            #expect(rejoined.replicaID != a.replica.identity!.replicaID)
            try await copy.sync()
            try await a.sync()
            try await b.sync()
            #expect(try a.replica.get("subjects", id: copied)?["screening_no"] == .text("S01-003"))
            #expect(try copy.replica.get("subjects", id: original)?["sex"] == .text("F"))
            #expect(try a.contents() == copy.contents())
            #expect(try b.contents() == a.contents())
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }

    @Test("A copy that only pulls is refused too, instead of silently skipping the original's records", arguments: StoreKind.all)
    func copyThatOnlyPulls(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            let copy = try server.copy(a, as: "a-copy")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-002")])
            try await a.sync()
            await #expect { try await copy.sync() } throws: { ($0 as? SyncError)?.code == ErrorCode.replicaDiverged.rawValue }
            try copy.replica.rejoin(enrolmentToken: server.s01)
            try await copy.sync()
            #expect(try copy.replica.get("subjects", id: id) != nil)
        }
    }

    @Test("A lost answer is not mistaken for a copy, even when the record is edited again before the retry", arguments: StoreKind.all)
    func lostAnswerThenEdit(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            // Every attempt's answer is lost: the sync fails, though the server applied the push
            let losing = LosingResponses(a.transport, lose: 10)
            await #expect(throws: SyncError.self) { try await a.engine(transport: losing).sync() }
            #expect(try await server.count("SELECT count(*) FROM subjects") == 1)
            try a.replica.put("subjects", id: id, ["status": .text("enrolled")], reason: "Corrected from the source document")
            try await a.sync()
            try await b.sync()
            #expect(try b.replica.get("subjects", id: id)?["status"] == .text("enrolled"))
            #expect(try await server.count("SELECT count(*) FROM conflicts") == 0)
        }
    }

    // MARK: 2. Whole-number reals

    @Test("Keeping a winner that is a whole-number real restamps it, so it wins over a later unsynced write", arguments: StoreKind.all)
    func keepWinnerWholeNumberReal(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let c = try server.laptop("c")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "weight_kg": .real(70.5)])
            try await a.sync()
            try await b.sync()
            try await c.sync()
            try a.replica.put("subjects", id: id, ["weight_kg": .real(75.5)], reason: "Corrected from the source document")
            try await Task.sleep(for: .milliseconds(3))
            try b.replica.put("subjects", id: id, ["weight_kg": .real(68.0)], reason: "Corrected from the source document")
            try await a.sync()
            try await b.sync()
            // c writes without syncing; then a resolves the conflict, keeping b's 68
            try await Task.sleep(for: .milliseconds(3))
            try c.replica.put("subjects", id: id, ["weight_kg": .real(90.5)], reason: "Corrected from the source document")
            try await a.sync()
            let conflict = try #require(try a.replica.conflicts().first)
            #expect(conflict.winner.value == .real(68), "in its column's type, though JSON writes 68.0 as 68")
            try await Task.sleep(for: .milliseconds(3))
            try a.replica.resolve(conflict: conflict.id, .keepWinner, reason: "Weighed again")
            #expect(try a.replica.status().pendingChanges == 2, "the restamped weight and the conflict")
            for laptop in [a, c, b, a, c] { try await laptop.sync() }
            for laptop in [a, b, c] {
                #expect(try laptop.replica.get("subjects", id: id)?["weight_kg"] == .real(68))
            }
            #expect(try a.contents() == c.contents())
        }
    }

    @Test("Values of every type are stored in their column's type, however they were written", arguments: StoreKind.all)
    func valuesNormalised(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let subject = try a.replica.put("subjects", ["screening_no": .text("S01-001"), "weight_kg": .integer(68)])
            let screening = try a.replica.put(
                "screenings",
                [
                    "subject_id": .text(subject), "date": .text("2026-11-20"), "sledai_2k": .real(12), "inr": .integer(1),
                ])
            #expect(try a.replica.get("subjects", id: subject)?["weight_kg"] == .real(68))
            try await a.sync()
            try await b.sync()
            #expect(try b.replica.get("screenings", id: screening)?["sledai_2k"] == .integer(12))
            #expect(try b.replica.get("screenings", id: screening)?["inr"] == .real(1))
            // A real with a fraction is no whole number
            #expect(throws: ValidationError.self) {
                try a.replica.put("screenings", id: screening, ["sledai_2k": .real(12.5)], reason: "Corrected from the source document")
            }
        }
    }

    // MARK: 3. Delete versus edit

    @Test("An edit after a delete restores the record even when an older write of _deleted waits to be pushed", arguments: StoreKind.all)
    func editRestoresDespitePendingDeleted(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            let id = try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try await b.sync()
            try a.replica.delete("subjects", id: id, reason: "Entered twice")
            try await a.sync()
            try await Task.sleep(for: .milliseconds(3))
            try b.replica.put("subjects", id: id, ["sex": .text("F")], reason: "Corrected from the source document")
            try await b.sync()
            let conflict = try #require(try b.replica.conflicts().first { $0.field == TableSchema.deletedColumn })
            try b.replica.resolve(conflict: conflict.id, .keepWinner, reason: "Not a duplicate")
            try await a.sync()
            try await Task.sleep(for: .milliseconds(3))
            try a.replica.delete("subjects", id: id, reason: "Entered twice, really")
            try await a.sync()
            try await Task.sleep(for: .milliseconds(3))
            try b.replica.put("subjects", id: id, ["sex": .text("M")], reason: "Corrected from the source document")
            for laptop in [b, a, b] { try await laptop.sync() }
            for laptop in [a, b] {
                #expect(try laptop.replica.get("subjects", id: id)?[TableSchema.deletedColumn] == .null, "the later edit restores the record")
                #expect(try laptop.replica.get("subjects", id: id)?["sex"] == .text("M"))
            }
            #expect(try a.contents() == b.contents())
            // a's second delete is not lost: it is in the conflict log
            #expect(try await server.count("SELECT count(*) FROM conflicts WHERE field = '_deleted' AND loser_value = '\"Entered twice, really\"'") == 1)
        }
    }

    // MARK: 4. Clock safety

    @Test("A reply far ahead of the laptop's clock is refused and the stored clock is unchanged", arguments: [Int64.max, Int64(365 * 24 * 3_600_000)])
    func farAheadReplyRefused(ahead: Int64) async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a")
            try a.replica.put("subjects", ["screening_no": .text("S01-001")])
            try await a.sync()
            try a.replica.put("subjects", ["screening_no": .text("S01-002")])
            let clock = try a.replica.clock
            let stored = try await a.storedClock()
            let lying = ClockLying(a.transport, ahead: ahead)
            await #expect { try await a.engine(transport: lying).sync() } throws: { error in
                (error as? SyncError)?.message.contains("ahead of this laptop's") == true
            }
            #expect(try await a.storedClock() == stored)
            #expect(try a.replica.clock.milliseconds < clock.milliseconds + 60_000)
            // Later writes neither trap nor get stamped in the future, and the honest server takes them
            try a.replica.put("subjects", ["screening_no": .text("S01-003")])
            #expect(try await a.sync().pushed == 2)
        }
    }

    @Test("A replica whose clock ran a year ahead is refused by the server and recovers with clock reset", arguments: StoreKind.all)
    func clockResetRecovers(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let path = server.directory.appendingPathComponent("fast.sqlite").path
            let yearAhead: @Sendable () -> Int64 = { HybridLogicalClock.systemMilliseconds() + 365 * 24 * 3_600_000 }
            let id: String
            do {
                let fast = try Replica.open(path: path, schema: TrialSchema.current, wallClock: yearAhead)
                try fast.initialize(site: "S01", user: "Fast", serverURL: server.url, token: server.s01)
                id = try fast.put("subjects", ["screening_no": .text("S01-001")])
                try fast.put("subjects", id: id, ["sex": .text("F")], reason: "Corrected from the source document")
            }
            // The laptop's clock is corrected; the replica still holds stamps a year ahead
            let replica = try Replica.open(path: path, schema: TrialSchema.current)
            let laptop = Laptop(replica: replica, transport: try HTTPTransport(replica: replica))
            await #expect { try await laptop.sync() } throws: { ($0 as? SyncError)?.code == ErrorCode.clockSkew.rawValue }
            let reset = try replica.resetClock()
            #expect(reset.wasAhead && reset.restamped == 1)
            #expect(try await laptop.sync().pushed == 1)
            let b = try server.laptop("b")
            try await b.sync()
            #expect(try b.replica.get("subjects", id: id)?["sex"] == .text("F"))
            #expect(try replica.resetClock().wasAhead == false)
        }
    }

    // MARK: 5 and 6. Strings are what they were

    @Test("U+0000 is refused in values, user names and replica ids, on the laptop and by the server", arguments: StoreKind.all)
    func nulRefused(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            #expect(throws: ValidationError.self) { try a.replica.put("subjects", ["screening_no": .text("S01\u{0}-001")]) }
            #expect(throws: ReplicaError.invalidArgument) {
                try Replica.inMemory(schema: TrialSchema.current).initialize(site: "S01", user: "A\u{0}B", serverURL: server.url, token: server.s01)
            }
            try await a.engine().enrol()
            let before = try await server.dump()
            let id = a.replica.identity!.replicaID
            let row = ChangeRow(
                id: RecordID.generate(), seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: [.text("S01"), .text("S01\u{0}-002")])
            let nulValue = PushRequest(replica: id, groups: [ChangeGroup(table: "subjects", user: "A", columns: ["site_id", "screening_no"], rows: [row])])
            await #expect { try await a.transport.push(nulValue) } throws: { error in
                (error as? SyncError)?.status == 422 && (error as? SyncError)?.message.contains("NUL") == true
            }
            var nulUser = nulValue
            nulUser.groups[0].user = "A\u{0}"
            nulUser.groups[0].rows[0].values[1] = .text("S01-002")
            await #expect { try await a.transport.push(nulUser) } throws: { ($0 as? SyncError)?.status == 422 }
            var nulReplica = nulUser
            nulReplica.groups[0].user = "A"
            nulReplica.replica = id + "\u{0}"
            await #expect { try await a.transport.push(nulReplica) } throws: { ($0 as? SyncError)?.status == 422 }
            #expect(try await server.dump() == before)
        }
    }

    @Test("Text limits count UTF-8 bytes: one character with thousands of combining marks is refused", arguments: StoreKind.all)
    func textLimitsInBytes(store: StoreKind) async throws {
        try await LiveServer.run(store: store) { server in
            let a = try server.laptop("a")
            let huge = "a" + String(repeating: "\u{0301}", count: 5000)
            #expect(huge.count == 1)
            #expect { try a.replica.put("subjects", ["screening_no": .text(huge)]) } throws: { error in
                (error as? ValidationError)?.description.contains("at most 64 bytes") == true
            }
            try await a.engine().enrol()
            let before = try await server.dump()
            let row = ChangeRow(id: RecordID.generate(), seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: [.text("S01"), .text(huge)])
            let push = PushRequest(
                replica: a.replica.identity!.replicaID, groups: [ChangeGroup(table: "subjects", user: "A", columns: ["site_id", "screening_no"], rows: [row])])
            await #expect { try await a.transport.push(push) } throws: { error in
                (error as? SyncError)?.status == 422 && (error as? SyncError)?.message.contains("at most 64 bytes") == true
            }
            #expect(try await server.dump() == before)
        }
    }
}

extension LiveServer {
    /// A copy of `laptop`'s replica file, opened as another laptop: a re-imaged machine or a restored backup.
    func copy(_ laptop: Laptop, as name: String) throws -> Laptop {
        try laptop.replica.writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        let target = directory.appendingPathComponent("\(name).sqlite")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: laptop.replica.writer.path), to: target)
        let replica = try Replica.open(path: target.path, schema: TrialSchema.current)
        return Laptop(replica: replica, transport: try HTTPTransport(replica: replica))
    }
}

extension Laptop {
    /// The clock persisted in the replica's file.
    func storedClock() async throws -> Int64 {
        try await replica.writer.read { db in try Int64.fetchOne(db, sql: "SELECT hlc FROM _sitesync_clock") ?? 0 }
    }
}

/// Passes every request on, but answers with the server's clock `ahead` milliseconds in the future
/// (saturating), as a misconfigured or hostile server would.
final class ClockLying: SyncTransport {
    let base: any SyncTransport
    let ahead: Int64

    init(_ base: any SyncTransport, ahead: Int64) {
        self.base = base
        self.ahead = ahead
    }

    private func lie(_ hlc: HLC) -> HLC {
        let (milliseconds, overflow) = HybridLogicalClock.systemMilliseconds().addingReportingOverflow(ahead)
        return overflow ? HLC(rawValue: .max) : max(hlc, HLC(milliseconds: milliseconds))
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        var response = try await base.push(request)
        response.hlc = lie(response.hlc)
        return response
    }

    func pull(_ request: PullRequest) async throws -> PullResponse {
        var response = try await base.pull(request)
        response.hlc = lie(response.hlc)
        return response
    }

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await base.enrol(request) }
}
