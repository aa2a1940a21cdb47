import Foundation
import Testing

@testable import SiteSyncCore

@Suite("Values in their column's type, strings as they were, clocks that cannot trap")
struct ValueRulesTests {
    @Test(
        "Display width counts terminal columns: wide characters two, combining marks none, emoji two",
        arguments: [
            ("abc", 3), ("e\u{301}", 1), ("Zoe\u{308}", 3), ("日本語", 6), ("Ｆｕｌｌ", 8), ("👩‍⚕️", 2), ("⚠️", 2), ("\u{200B}", 0), ("", 0), ("한국", 4),
        ])
    func displayWidth(text: String, width: Int) {
        #expect(TextRules.displayWidth(text) == width)
        #expect(TextRules.displayWidth(TextRules.padded(text, toWidth: 10)) == 10)
        #expect(TextRules.padded(text, toWidth: 0) == text, "never cut")
    }

    @Test("Whole numbers take their column's type, however they were written")
    func normalisation() throws {
        let real = ColumnSchema("weight_kg", .real(1...500))
        let integer = ColumnSchema("grade", .integer(1...5))
        let flag = ColumnSchema("serious", .flag)
        #expect(real.normalize(.integer(68)) == .real(68))
        #expect(integer.normalize(.real(3)) == .integer(3))
        #expect(flag.normalize(.real(1)) == .integer(1))
        #expect(integer.normalize(.real(3.5)) == .real(3.5), "left for validation to refuse")
        #expect(try real.validate(.integer(68), table: "subjects") == .real(68))
        #expect(try integer.validate(.real(3), table: "adverse_events") == .integer(3))
        #expect(throws: ValidationError.self) { try integer.validate(.real(3.5), table: "adverse_events") }
        #expect(try integer.parse("3.0", table: "adverse_events") == .integer(3), "68.0 typed by a person is the whole number too")
        // A conflict's sides, stored as JSON, come back in the column's type
        let schema = Schema(version: 1, tables: [TableSchema("subjects", columns: [real])])
        var conflict = try Conflict(
            id: "c",
            fields: [
                "site_id": .text("S01"), "table_name": .text("subjects"), "record_id": .text("r"), "field": .text("weight_kg"),
                "winner_value": .text("68"), "winner_hlc": .integer(2), "winner_replica": .text("a"),
                "loser_value": .text("70.5"), "loser_hlc": .integer(1), "loser_replica": .text("b"),
                "detected_at": .text("2026-11-30T00:00:00Z"), "status": .text("open"),
            ])
        #expect(conflict.winner.value == .integer(68))
        conflict = conflict.normalized(in: schema)
        #expect(conflict.winner.value == .real(68))
        #expect(conflict.loser.value == .real(70.5))
    }

    @Test("NUL is refused and text limits count UTF-8 bytes")
    func strings() {
        let column = ColumnSchema("screening_no", .text(maxBytes: 64))
        #expect(throws: ValidationError(table: "subjects", field: "screening_no", "must not contain the NUL character (U+0000)")) {
            try column.validate(.text("S01\u{0}-001"), table: "subjects")
        }
        let marks = "a" + String(repeating: "\u{0301}", count: 100)
        #expect(throws: ValidationError(table: "subjects", field: "screening_no", "must be at most 64 bytes of UTF-8 text; got 201 bytes")) {
            try column.validate(.text(marks), table: "subjects")
        }
        #expect(throws: Never.self) { try column.validate(.text(String(repeating: "é", count: 32)), table: "subjects") }
        #expect(UserName.problem("A\u{0}") != nil)
        #expect(UserName.problem("A\nB") != nil)
        #expect(UserName.problem(String(repeating: "é", count: 101)) != nil)
        #expect(UserName.problem("Ana Müller") == nil)
        #expect(ReplicaID.isValid("9f3c2a71be04d5e6") && ReplicaID.isValid("replica-a_1"))
        #expect(!ReplicaID.isValid("") && !ReplicaID.isValid("a b") && !ReplicaID.isValid("a\u{0}") && !ReplicaID.isValid(String(repeating: "a", count: 65)))
        #expect(TextRules.brief(String(repeating: "x", count: 500), maxBytes: 64).utf8.count <= 64)
    }

    @Test("Only an address is taken for loopback, never a name")
    func loopbackAddresses() {
        for address in ["127.0.0.1", "127.1.2.3", "127.255.255.255", "::1", "[::1]"] { #expect(Loopback.isAddress(address), "\(address)") }
        for host in ["localhost", "127.example.org", "127.0.0.1.nip.io", "127.0.0", "127.0.0.256", "127.0.0.1 ", "128.0.0.1", "0.0.0.0", "::", "127.0.0.+1"] {
            #expect(!Loopback.isAddress(host), "\(host)")
        }
    }

    @Test("A replica id starts with a letter or digit and is never `server`, the id the server stamps its own writes with")
    func replicaIDsReserved() {
        for refused in ["server", "Server", "SERVER", "-", "_", "-replica", "_a", "--help"] {
            #expect(!ReplicaID.isValid(refused), "\(refused)")
        }
        for accepted in ["servers", "a", "9", "a-", "z_", String(repeating: "z", count: 64), ReplicaID.generate()] {
            #expect(ReplicaID.isValid(accepted), "\(accepted)")
        }
    }

    @Test("A replica credential must be able to hold 256 random bits: all zeros, one digit or a short pattern repeated are refused")
    func credentialEntropy() {
        let prefix = Credential.replicaPrefix
        for weak in [
            String(repeating: "0", count: 64), String(repeating: "f", count: 64), String(repeating: "ab", count: 32),
            String(repeating: "0123456789abcdef", count: 4), String(repeating: "deadbeef", count: 8),
            String(repeating: "0", count: 44) + "0123456789abcdef0123",
        ] {
            #expect(!Credential.isReplicaCredential(prefix + weak), "\(weak)")
        }
        #expect(!Credential.isReplicaCredential(prefix + String(repeating: "A", count: 64)), "uppercase")
        // Generated ones always pass; the rule refuses a random one with a probability below 10^-14.
        for _ in 0..<2000 {
            #expect(Credential.isReplicaCredential(Credential.generate(prefix: prefix)))
        }
    }

    @Test("The clock saturates at its greatest value instead of trapping")
    func saturatingClock() {
        let clock = HybridLogicalClock(start: HLC(rawValue: .max - 1))
        #expect(clock.tick() == HLC(rawValue: .max))
        #expect(clock.tick() == HLC(rawValue: .max))
        clock.reset(to: HLC(milliseconds: 1000))
        #expect(clock.tick() > HLC(milliseconds: 1000))
    }

    @Test("A push's fingerprint names its rows, not their values, and survives the wire")
    func fingerprint() throws {
        let row = ChangeRow(id: "x", seq: HLC(rawValue: 42), values: [.text("S01")])
        let push = PushRequest(
            replica: "r", groups: [ChangeGroup(table: "subjects", user: "A", columns: ["site_id"], rows: [row])], acked: HLC(rawValue: 7), sent: ["00ff"])
        var other = push
        other.groups[0].rows[0].seq = HLC(rawValue: 43)
        #expect(push.fingerprint.count == 16)
        #expect(push.fingerprint != other.fingerprint)
        let decoded = try push.wireJSON().withUnsafeBytes { try PushRequest(wireJSON: $0) }
        #expect(decoded == push)
        #expect(decoded.fingerprint == push.fingerprint)
    }
}
