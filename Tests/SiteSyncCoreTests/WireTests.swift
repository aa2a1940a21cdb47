import Foundation
import Testing

@testable import SiteSyncCore

@Suite("Wire messages")
struct WireTests {
    private func roundTrip<T: Codable & Equatable>(_ value: T) throws -> (T, String) {
        let data = try JSONEncoder().encode(value)
        return (try JSONDecoder().decode(T.self, from: data), String(decoding: data, as: UTF8.self))
    }

    @Test("A created record travels as one compact array without metadata")
    func createdRowIsCompact() throws {
        let row = ChangeRow(id: "r1", seq: HLC(rawValue: 42), values: [.text("S01"), .integer(3), .null, .real(1.5)])
        let (decoded, json) = try roundTrip(row)
        #expect(decoded == row)
        #expect(json == #"["r1",42,null,"S01",3,null,1.5]"#)
    }

    @Test("An edit carries per-field HLCs and bases")
    func editRowCarriesBases() throws {
        let row = ChangeRow(
            id: "r1", seq: HLC(rawValue: 50), values: [.text("x"), .null],
            hlcs: [HLC(rawValue: 49), HLC(rawValue: 50)],
            bases: [Version(hlc: HLC(rawValue: 10), replica: "aa"), nil]
        )
        let (decoded, _) = try roundTrip(row)
        #expect(decoded == row)
        #expect(decoded.hlc(at: 0) == HLC(rawValue: 49))
        #expect(decoded.base(at: 1) == nil)
    }

    @Test("A pulled record carries its stamps with overrides")
    func recordRowRoundTrip() throws {
        var stamps = FieldStamps(base: Stamp(hlc: HLC(rawValue: 7), replica: "aa", user: "A. Rivera"))
        stamps["grade"] = Stamp(hlc: HLC(rawValue: 9), replica: "bb", user: "B. Chen")
        let row = RecordRow(id: "r1", stamps: stamps, values: [.text("S01"), .integer(4)])
        let (decoded, _) = try roundTrip(row)
        #expect(decoded == row)
        #expect(decoded.stamps["grade"].user == "B. Chen")
        #expect(decoded.stamps["term"].user == "A. Rivera")
    }

    @Test("Field values are bare JSON scalars; booleans and objects are refused")
    func fieldValues() throws {
        let values: [FieldValue] = [.null, .integer(-3), .real(2.25), .text("3")]
        let (decoded, json) = try roundTrip(values)
        #expect(decoded == values)
        #expect(json == #"[null,-3,2.25,"3"]"#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([FieldValue].self, from: Data("[true]".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([FieldValue].self, from: Data(#"[{"a":1}]"#.utf8)) }
    }

    @Test("Stamps keep the most common one as the base when compacted")
    func compactStamps() {
        let old = Stamp(hlc: HLC(rawValue: 1), replica: "a", user: "u")
        let new = Stamp(hlc: HLC(rawValue: 2), replica: "b", user: "v")
        var stamps = FieldStamps(base: old)
        for field in ["f1", "f2", "f3"] { stamps[field] = new }
        stamps.compact(fields: ["f1", "f2", "f3", "f4"])
        #expect(stamps.base == new)
        #expect(stamps.overrides == ["f4": old])
        #expect(stamps["f1"] == new)
        #expect(stamps["f4"] == old)
    }

    @Test("Conflict sides read back from a conflict record")
    func conflictFromRecord() throws {
        let conflict = try Conflict(
            id: "c1",
            fields: [
                "site_id": .text("S01"), "table_name": .text("subjects"), "record_id": .text("r1"), "field": .text("status"),
                "winner_value": .text(#""enrolled""#), "winner_hlc": .integer(20), "winner_replica": .text("bb"), "winner_user": .text("B"),
                "loser_value": .text("3"), "loser_hlc": .integer(10), "loser_replica": .text("aa"), "loser_user": .text("A"),
                "detected_at": .text("2026-11-25T10:00:00Z"), "status": .text("open"),
            ])
        #expect(conflict.winner.value == .text("enrolled"))
        #expect(conflict.loser.value == .integer(3))
        #expect(conflict.winner.version > conflict.loser.version)
    }
}

@Suite("Record ids")
struct RecordIDTests {
    @Test("Ids are version 7 UUIDs that sort by creation time and never repeat")
    func uuidV7() throws {
        let first = RecordID.generate(milliseconds: 1_764_000_000_000)
        let second = RecordID.generate(milliseconds: 1_764_000_000_001)
        let uuid = try #require(UUID(uuidString: first))
        #expect(uuid.uuidString.lowercased() == first)
        #expect(Array(first)[14] == "7", "version 7")
        #expect(["8", "9", "a", "b"].contains(Array(first)[19]), "RFC 9562 variant")
        #expect(first < second)
        #expect(first.hasPrefix("019ab"))
        let many = Set((0..<10_000).map { _ in RecordID.generate(milliseconds: 42) })
        #expect(many.count == 10_000)
    }
}
