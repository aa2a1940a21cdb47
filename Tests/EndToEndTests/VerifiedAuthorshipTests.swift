import Crypto
import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Testing
import TrialRecords

/// Changes the server accepts as a person's only with that person's signature (docs/AUTHORSHIP.md),
/// over real loopback HTTP, on both stores.
@Suite("Verified authorship")
struct VerifiedAuthorshipTests {
    /// A laptop of S01, enrolled, with `username` signed in.
    static func laptop(_ server: LiveServer, _ name: String, signIn username: String) async throws -> (Replica, HTTPTransport) {
        let replica = try Replica.open(path: server.directory.appendingPathComponent("\(name).sqlite").path, schema: TrialSchema.current)
        try replica.initialize(site: "S01", user: "Laptop \(name)", serverURL: server.url, token: server.s01)
        let transport = try HTTPTransport(replica: replica)
        try await SyncEngine(replica: replica, transport: transport).enrol()
        try await replica.signIn(username: username, password: SignInTests.password, server: transport)
        return (replica, transport)
    }

    /// The text cells of the first column `sql` selects, on either store.
    static func column(_ server: LiveServer, _ sql: String) async throws -> [String?] {
        try await StoreContents.select(server.store, sql).map { row in
            if case .text(let text)? = row.first { text } else { nil }
        }
    }

    /// The `authors` cells of the server's audit rows of `record`, in order.
    static func authors(_ server: LiveServer, record: String) async throws -> [String?] {
        try await column(server, "SELECT authors FROM audit WHERE record_id = '\(record)' ORDER BY id")
    }

    @Test(
        "Each field arrives as the signed-in person's who wrote it, two people on one laptop, in the stamps, the conflict log and the audit trail's chain",
        arguments: StoreKind.all)
    func provenAuthors(kind: StoreKind) async throws {
        try await LiveServer.run(store: kind) { server in
            try await SignInTests.addPerson(server, "ana", name: "Ana Lima")
            try await SignInTests.addPerson(server, "bo", name: "Bo Chen")
            let (replica, transport) = try await Self.laptop(server, "a", signIn: "ana")
            defer { try? replica.signOut() }
            let id = try replica.put("subjects", ["screening_no": .text("S01-101"), "sex": .text("F")])
            // Bo takes over the laptop before it syncs, and corrects one field of Ana's record.
            try await replica.signIn(username: "bo", password: SignInTests.password, server: transport)
            try replica.put("subjects", id: id, ["sex": .text("M")])
            let report = try await SyncEngine(replica: replica, transport: transport).sync()
            #expect(report.pushed == 1)

            let cells = try await Self.authors(server, record: id)
            let fields = try #require(try await Self.column(server, "SELECT fields FROM audit WHERE record_id = '\(id)'").first ?? nil)
            let names = try JSONDecoder().decode([String].self, from: Data(fields.utf8))
            let authors = try #require(cells.first.flatMap { AuditAuthors(json: $0, count: names.count) })
            #expect(Dictionary(uniqueKeysWithValues: zip(names, authors.fields))["sex"] == "bo")
            #expect(Dictionary(uniqueKeysWithValues: zip(names, authors.fields))["screening_no"] == "ana")
            #expect(authors.deactivated.isEmpty)
            // The row is shown under its latest author's full name; the chain covers the authors.
            #expect(try await Self.column(server, #"SELECT "user" FROM audit WHERE record_id = '\#(id)'"#) == ["Bo Chen"])
            // The export names both: the person's full name, and the username whose signature covers the field.
            let exported = try await server.store.withAuditTrail(AuditFilter()) { trail in
                var changes: [AuditFieldChange] = []
                for try await change in trail { changes.append(change) }
                return changes
            }
            let sexChange = try #require(exported.first { $0.recordID == id && $0.field == "sex" })
            #expect(sexChange.user == "Bo Chen" && sexChange.username == "bo")
            #expect(exported.first { $0.recordID == id && $0.field == "screening_no" }?.username == "ana")
            // So does the record's history, field by field.
            let history = try await transport.history(table: "subjects", id: id)
            let entry = try #require(history.entries.first { $0.kind == "change" })
            #expect(entry.user == "Bo Chen")
            let changes = entry.changes ?? []
            #expect(changes.first { $0.field == "sex" }?.username == "bo" && changes.first { $0.field == "screening_no" }?.username == "ana")
            let verification = try await AuditVerification.run(server.store)
            #expect(verification.broken == nil && verification.verified >= 1)
        }
    }

    @Test("A record edited again before it is pushed keeps its first transaction's signature, whichever batch it travels in")
    func signaturesOutliveTheirBatch() async throws {
        try await LiveServer.run(store: .sqlite) { server in
            try await SignInTests.addPerson(server, "ana", name: "Ana Lima")
            let (replica, transport) = try await Self.laptop(server, "a", signIn: "ana")
            defer { try? replica.signOut() }
            // One transaction creates two records; a later one edits the first, which moves it to
            // the end of the outbox, behind the second.
            let ids = try replica.importRecords(
                "subjects",
                [
                    ImportRow(line: 1, id: nil, values: ["screening_no": .text("S01-401")]),
                    ImportRow(line: 2, id: nil, values: ["screening_no": .text("S01-402")]),
                ])
            try replica.put("subjects", id: ids[0], ["sex": .text("F")])
            // One record per push, each read after the previous one's answer: the second record's
            // push acknowledges the first transaction's last write while the first record, with
            // fields that transaction signed, still waits.
            let sync = ReplicaSync(replica)
            for _ in ids {
                let batch = try #require(try await sync.nextBatchToSend(limit: 1))
                try await sync.acknowledge(batch, try await transport.push(batch.request))
            }
            #expect(try await sync.outboxBatch(limit: 1) == nil)
            for id in ids {
                let authors = try #require(try await Self.authors(server, record: id).first.flatMap { AuditAuthors(json: $0, count: 1) })
                #expect(authors.fields.allSatisfy { $0 == "ana" }, "\(id): \(authors.fields)")
            }
            // Nothing pending: the laptop keeps no signature.
            #expect(try await replica.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM _sitesync_signatures") } == 0)
        }
    }

    @Test(
        "A push built from a copy of the replica file claiming a person is refused, naming table, record and field and no value; nothing is written",
        arguments: StoreKind.all)
    func forgery(kind: StoreKind) async throws {
        try await LiveServer.run(store: kind) { server in
            try await SignInTests.addPerson(server, "ana", name: "Ana Lima")
            let (replica, _) = try await Self.laptop(server, "a", signIn: "ana")
            defer { try? replica.signOut() }
            let id = try replica.put("subjects", ["screening_no": .text("S01-201"), "sex": .text("F")])
            let person = try #require(try replica.signedInPerson())
            // The thief's copy: the file and its credential, not Ana's password nor her sign-in.
            let copyPath = server.directory.appendingPathComponent("copy.sqlite").path
            try await replica.writer.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
            try FileManager.default.copyItem(atPath: server.directory.appendingPathComponent("a.sqlite").path, toPath: copyPath)
            let copy = try Replica.open(path: copyPath, schema: TrialSchema.current)
            #expect(try copy.signedInPerson() == nil)
            let thief = try HTTPTransport(replica: copy)
            let genuine = try #require(try await ReplicaSync(copy).outboxBatch(limit: 100)).request
            let signature = try #require(genuine.signatures?.first)
            #expect(signature.username == "ana" && signature.keyID == person.keyID)

            func refused(_ request: PushRequest, _ expected: String) async throws {
                let error = await #expect(throws: SyncError.self) { try await thief.push(request) }
                #expect(error?.status == 403 && error?.code == ErrorCode.authorRefused.rawValue, "\(String(describing: error))")
                #expect(error?.message.contains(expected) == true, "\(error?.message ?? "")")
                #expect(error?.message.contains("Ana") == false && error?.message.contains("\"F\"") == false && error?.message.contains("\"M\"") == false)
            }
            // A value changed under Ana's genuine signature.
            var changed = genuine
            let sex = try #require(changed.groups[0].columns.firstIndex(of: "sex"))
            changed.groups[0].rows[0].values[sex] = .text("M")
            try await refused(changed, "subjects.")
            try await refused(changed, "of record \(id)")
            // A new change signed with a key of the thief's, under Ana's key id.
            let key = Curve25519.Signing.PrivateKey()
            var claimed = genuine
            let write = Authorship.FieldWrite(table: "subjects", id: id, field: "sex", hlc: signature.first, value: .text("M"), reason: nil)
            claimed.groups = [
                ChangeGroup(table: "subjects", user: "ana", columns: ["sex"], rows: [ChangeRow(id: id, seq: signature.first, values: [.text("M")])])
            ]
            let root = Authorship.root(of: [Authorship.leaf(write)])
            let message = Authorship.message(username: "ana", keyID: person.keyID, first: signature.first, last: signature.first, count: 1, root: root)
            claimed.signatures = [
                PushSignature(
                    username: "ana", keyID: person.keyID, first: signature.first, last: signature.first, count: 1,
                    signature: try key.signature(for: message).base64EncodedString(), positions: [[0, 1]], proof: [])
            ]
            try await refused(claimed, "subjects.sex of record \(id)")
            // The same, under the thief's own key id: not registered for Ana.
            claimed.signatures?[0].keyID = PersonKeyID.of(publicKey: key.publicKey.rawRepresentation)
            try await refused(claimed, "not registered")
            #expect(try await server.count("SELECT count(*) FROM records") == 0)
            #expect(try await server.count("SELECT count(*) FROM audit") == 0)

            // Ana's own laptop pushes her change.
            #expect(try await SyncEngine(replica: replica, transport: try HTTPTransport(replica: replica)).sync().pushed == 1)
            #expect(try await server.count("SELECT count(*) FROM audit WHERE authors IS NOT NULL") == 1)
        }
    }

    @Test(
        "A person whose role may not write the record is refused by the server, naming why; one deactivated since is accepted and flagged",
        arguments: StoreKind.all)
    func rolesAndDeactivation(kind: StoreKind) async throws {
        try await LiveServer.run(store: kind) { server in
            try await SignInTests.addPerson(server, "mona", name: "Mona Reyes", role: .monitor, sites: ["S01"])
            try await SignInTests.addPerson(server, "ana", name: "Ana Lima")
            let (replica, transport) = try await Self.laptop(server, "a", signIn: "mona")
            defer { try? replica.signOut() }
            // The library writes for whoever is signed in; the server decides what the role allows.
            let id = try replica.put("subjects", ["screening_no": .text("S01-301")])
            let engine = SyncEngine(replica: replica, transport: transport)
            let error = await #expect(throws: SyncError.self) { try await engine.sync() }
            #expect(error?.code == ErrorCode.authorRefused.rawValue)
            #expect(error?.message.contains("subjects.") == true && error?.message.contains("of record \(id) by mona is not allowed") == true)
            #expect(error?.message.contains("mona is a monitor, who reads only") == true, "\(error?.message ?? "")")
            #expect(try await server.count("SELECT count(*) FROM records") == 0)
            // A data manager's resolution of a conflict writes the record's field: the server takes
            // a data manager's writes at their sites.
            try await SignInTests.addPerson(server, "dee", name: "Dee Okafor", role: .dataManager, sites: ["S01"])
            let (manager, managerTransport) = try await Self.laptop(server, "m", signIn: "dee")
            defer { try? manager.signOut() }
            let managed = try manager.put("subjects", ["screening_no": .text("S01-303")])
            #expect(try await SyncEngine(replica: manager, transport: managerTransport).sync().pushed == 1)
            #expect(try await Self.authors(server, record: managed).first.flatMap { AuditAuthors(json: $0, count: 1) }?.fields == ["dee"])

            // Ana writes on another laptop, offline; her account is deactivated before it syncs.
            let (other, otherTransport) = try await Self.laptop(server, "b", signIn: "ana")
            defer { try? other.signOut() }
            let written = try other.put("subjects", ["screening_no": .text("S01-302")])
            _ = try await server.store.changeAccount("ana", .deactivate(reason: "Left the trial"), at: Date().formatted(.iso8601), by: "test")
            #expect(try await SyncEngine(replica: other, transport: otherTransport).sync().pushed == 1)
            let authors = try #require(try await Self.authors(server, record: written).first.flatMap { AuditAuthors(json: $0, count: 1) })
            #expect(authors.deactivated == ["ana"])
        }
    }
}
