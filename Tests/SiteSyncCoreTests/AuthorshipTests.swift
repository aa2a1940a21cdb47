import Crypto
import SiteSyncCore
import Testing

/// The leaves, tree and multiproofs of docs/AUTHORSHIP.md, so that an inspector can check a
/// signature with any SHA-256 and Ed25519 tool.
@Suite("Authorship proofs")
struct AuthorshipTests {
    static let hlc = HLC(rawValue: 1_700_000_000_000 << 16)
    static let record = "0190a1b2-0000-7000-8000-000000000001"
    static let writes = [
        Authorship.FieldWrite(table: "adverse_events", id: record, field: "grade", hlc: hlc, value: .integer(3), reason: nil),
        Authorship.FieldWrite(table: "adverse_events", id: record, field: "term", hlc: hlc, value: .text("Cytokine release syndrome — Zoë"), reason: nil),
        Authorship.FieldWrite(
            table: "vitals", id: "v1", field: "temperature_c", hlc: HLC(rawValue: hlc.rawValue + 1), value: .real(38.5), reason: "Re-measured"),
    ]

    @Test("Leaves and the root are the SHA-256 of the documented bytes")
    func definition() {
        // Worked out independently with Python's hashlib and struct over the bytes docs/AUTHORSHIP.md lists.
        #expect(hex(Authorship.leaf(Self.writes[0])) == "0e7c5bb4e26be1760275891bcb5b3073db120b9c811cb072d9dfdd55cceb4ca6")
        #expect(hex(Authorship.root(of: Self.writes.map(Authorship.leaf))) == "9d7a415f86cfe24757837bd7f75e868d77f584382b9e4a72c67f8ea51982b429")
        // -0 is written as 0: the laptop reads 0.0 from SQLite where JSON may give -0.
        var negativeZero = Self.writes[2]
        negativeZero.value = .real(-0.0)
        var zero = Self.writes[2]
        zero.value = .real(0)
        #expect(Authorship.leaf(negativeZero) == Authorship.leaf(zero))
        // Every part of a write is committed to.
        var changed = Self.writes
        changed[0].reason = ""
        changed[1].value = .text("Cytokine release syndrome")
        changed[2].hlc = Self.hlc
        for index in changed.indices { #expect(Authorship.leaf(changed[index]) != Authorship.leaf(Self.writes[index])) }
    }

    @Test("A multiproof of any subset of any tree's leaves gives its root, and only with the right leaves")
    func multiproofs() throws {
        var generator = SystemRandomNumberGenerator()
        for count in 1...70 {
            let leaves = (0..<count).map {
                Authorship.leaf(.init(table: "t", id: "r\($0)", field: "f", hlc: Self.hlc, value: .integer(Int64($0)), reason: nil))
            }
            let root = Authorship.root(of: leaves)
            for _ in 0..<12 {
                var indices = (0..<count).filter { _ in Bool.random(using: &generator) }
                if indices.isEmpty { indices = [Int.random(in: 0..<count, using: &generator)] }
                let proof = Authorship.proof(of: indices, in: leaves)
                let known = indices.map { (index: $0, leaf: leaves[$0]) }
                #expect(try Authorship.root(count: count, known: known, proof: proof) == root)
                // The whole tree needs no proof.
                if indices.count == count { #expect(proof.isEmpty) }
                // A changed leaf gives another root.
                var forged = known
                forged[0].leaf = leaves[(indices[0] + 1) % count]
                if count > 1 { #expect((try? Authorship.root(count: count, known: forged, proof: proof)) != root) }
                // So does a proof hash left out or one too many.
                if !proof.isEmpty { #expect((try? Authorship.root(count: count, known: known, proof: Array(proof.dropLast()))) == nil) }
                #expect((try? Authorship.root(count: count, known: known, proof: proof + [leaves[0]])) == nil)
            }
        }
    }

    @Test("Positions out of order, repeated or past the count are refused, naming the problem")
    func badPositions() {
        let leaves = (0..<4).map { Authorship.leaf(.init(table: "t", id: "r\($0)", field: "f", hlc: Self.hlc, value: .null, reason: nil)) }
        for known in [[(1, leaves[1]), (0, leaves[0])], [(1, leaves[1]), (1, leaves[1])], [(4, leaves[0])], [(-1, leaves[0])]] {
            #expect(throws: Authorship.ProofError.self) { try Authorship.root(count: 4, known: known.map { (index: $0.0, leaf: $0.1) }, proof: []) }
        }
        #expect(throws: Authorship.ProofError.self) { try Authorship.root(count: 0, known: [], proof: []) }
    }

    @Test("The signed message binds the person, the key, the HLC range, the count and the root")
    func message() throws {
        let key = Curve25519.Signing.PrivateKey()
        let root = Authorship.root(of: Self.writes.map(Authorship.leaf))
        let message = Authorship.message(username: "ana", keyID: "k1", first: Self.hlc, last: HLC(rawValue: Self.hlc.rawValue + 1), count: 3, root: root)
        let signature = try key.signature(for: message)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        let others = [
            Authorship.message(username: "ana", keyID: "k2", first: Self.hlc, last: HLC(rawValue: Self.hlc.rawValue + 1), count: 3, root: root),
            Authorship.message(username: "bo", keyID: "k1", first: Self.hlc, last: HLC(rawValue: Self.hlc.rawValue + 1), count: 3, root: root),
            Authorship.message(username: "ana", keyID: "k1", first: Self.hlc, last: HLC(rawValue: Self.hlc.rawValue + 2), count: 3, root: root),
            Authorship.message(username: "ana", keyID: "k1", first: Self.hlc, last: HLC(rawValue: Self.hlc.rawValue + 1), count: 4, root: root),
        ]
        for other in others { #expect(!key.publicKey.isValidSignature(signature, for: other)) }
        #expect(Authorship.hash(base64: Authorship.base64(root)) == root)
        #expect(Authorship.hash(base64: "AAAA") == nil)
    }

    private func hex(_ hash: Authorship.Hash) -> String {
        Authorship.bytes(hash).map { String($0, radix: 16).count == 1 ? "0\(String($0, radix: 16))" : String($0, radix: 16) }.joined()
    }
}
