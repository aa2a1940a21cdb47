import Crypto
import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import Testing
import TrialRecords

/// A server that signs anyone in, keeping the public keys it registered.
private final class RegisteringServer: PeopleTransport, @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [String: Curve25519.Signing.PublicKey] = [:]

    func key(_ keyID: String) -> Curve25519.Signing.PublicKey? { lock.withLock { keys[keyID] } }

    func signIn(_ request: SignInRequest) async throws -> SignInResponse {
        let raw = try #require(Data(base64Encoded: request.publicKey))
        let keyID = PersonKeyID.of(publicKey: raw)
        try lock.withLock { keys[keyID] = try Curve25519.Signing.PublicKey(rawRepresentation: raw) }
        let person = PersonInfo(
            username: request.username, name: "Ana Lima", role: .coordinator, sites: ["S01"], state: "active", passwordChangedAt: "2026-01-01T00:00:00Z")
        return SignInResponse(person: person, keyID: keyID, idleTimeoutSeconds: 900, maximumAttempts: 5, lockoutSeconds: 900)
    }

    func peopleStatus(_ request: PeopleStatusRequest) async throws -> PeopleStatusResponse { PeopleStatusResponse(people: []) }
}

@Suite("Signing local transactions")
struct TransactionSigningTests {
    @Test("Each write transaction of a signed-in person is signed once, over exactly the fields it left written; nobody signed in signs nothing")
    func signedTransactions() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("signing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let replica = try Replica.open(path: directory.appendingPathComponent("laptop.sqlite").path, schema: TrialSchema.current)
        try replica.initialize(site: "S01", user: "laptop 3", serverURL: URL(string: "http://127.0.0.1:9")!, token: "test-token")

        // Nobody signed in: tracked, signed by nobody.
        let unsigned = try replica.put("subjects", ["screening_no": .text("S01-001")])
        let signatures = { try await replica.writer.read { db in try TransactionSignature.fetchAll(db) } }
        #expect(try await signatures().isEmpty)

        let server = RegisteringServer()
        let person = try await replica.signIn(username: "ana.lima", password: "correct horse battery", server: server)
        let key = try #require(server.key(person.keyID))
        let created = try replica.put("subjects", ["screening_no": .text("S01-002"), "sex": .text("F")])
        try replica.put("subjects", id: created, ["sex": .text("M")], reason: "Transcription error")
        try replica.put("subjects", id: unsigned, ["sex": .text("F")])

        let signed = try await signatures()
        #expect(signed.count == 3)
        for signature in signed {
            #expect(signature.username == "ana.lima" && signature.keyID == person.keyID)
            #expect(Authorship.root(of: signature.leaves) == signature.root)
            #expect(key.isValidSignature(signature.signature, for: signature.message))
        }
        // The insert: every field of the record, at one HLC, with the values it left.
        let record = try #require(try replica.get("subjects", id: created))
        defer { try? replica.signOut() }
        let columns = TrialSchema.subjects.columns
        #expect(signed[0].leaves.count == columns.count)
        let insertHLC = signed[0].first
        #expect(signed[0].last == insertHLC)
        let screening = Authorship.FieldWrite(table: "subjects", id: created, field: "screening_no", hlc: insertHLC, value: .text("S01-002"), reason: nil)
        #expect(signed[0].leaves.contains(Authorship.leaf(screening)))
        // The edit: the field with its reason, and `_deleted` asserted live at the same HLC.
        #expect(signed[1].leaves.count == 2)
        let edit = Authorship.FieldWrite(
            table: "subjects", id: created, field: "sex", hlc: signed[1].first, value: record["sex"]!, reason: "Transcription error")
        #expect(signed[1].leaves.contains(Authorship.leaf(edit)))
        // The edit of the record written with nobody signed in signs only what it wrote.
        #expect(signed[2].leaves.count == 2)
        #expect(!signed[2].leaves.contains { leaf in signed[0].leaves.contains(leaf) })

        // After sign-out, nothing more is signed.
        try replica.signOut()
        try replica.put("subjects", id: created, ["sex": .text("F")], reason: "Re-checked")
        #expect(try await signatures().count == 3)
    }
}
