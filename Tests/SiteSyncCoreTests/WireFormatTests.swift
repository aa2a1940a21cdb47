import Foundation
import SiteSyncTestSupport
import Testing

@testable import SiteSyncCore

/// Random messages with the awkward cases in them: escapes, non-ASCII text, extreme numbers.
private struct MessageGenerator {
    var random: SeededGenerator
    private static let texts = [
        "", "S01", "Grade 3 \"severe\" nausea", "back\\slash", "line\nbreak\ttab\r", "\u{0001}\u{001F}\u{0008}\u{000C}",
        "Ödem, Übelkeit", "発熱", "emoji 🧪🩸", "slash / and </script>", "\u{2028}\u{2029}", "2026-11-25",
    ]

    mutating func text() -> String { Self.texts.randomElement(using: &random)! }
    mutating func hlc() -> HLC { HLC(rawValue: Int64.random(in: 0...Int64.max, using: &random)) }

    mutating func value() -> FieldValue {
        switch Int.random(in: 0..<7, using: &random) {
        case 0: .null
        case 1: .integer(Int64.random(in: Int64.min...Int64.max, using: &random))
        case 2: .integer([0, -1, Int64.min, Int64.max].randomElement(using: &random)!)
        case 3: .real([0.5, -2.25, 1e-7, 6.02e23, -1.7976931348623157e308, 5e-324, 0.1].randomElement(using: &random)!)
        case 4: .real(Double.random(in: -1e6...1e6, using: &random))
        default: .text(text())
        }
    }

    mutating func stamp() -> Stamp { Stamp(hlc: hlc(), replica: text(), user: text()) }

    mutating func push() -> PushRequest {
        let groups = (0..<Int.random(in: 0...3, using: &random)).map { _ in
            let columns = (0..<Int.random(in: 1...5, using: &random)).map { "f\($0)" }
            let rows = (0..<Int.random(in: 0...4, using: &random)).map { _ in
                let edited = Bool.random(using: &random)
                return ChangeRow(
                    id: text(), seq: hlc(), values: columns.map { _ in value() },
                    hlcs: edited ? columns.map { _ in hlc() } : nil,
                    bases: edited && Bool.random(using: &random)
                        ? columns.map { _ in Bool.random(using: &random) ? Version(hlc: hlc(), replica: text()) : nil } : nil,
                    reasons: Bool.random(using: &random) ? columns.map { _ in Bool.random(using: &random) ? text() : nil } : nil
                )
            }
            return ChangeGroup(table: text(), user: text(), columns: columns, rows: rows)
        }
        let acked = Bool.random(using: &random) ? hlc() : nil
        let sent = Bool.random(using: &random) ? (0..<Int.random(in: 0...3, using: &random)).map { _ in text() } : nil
        return PushRequest(replica: text(), groups: groups, acked: acked, sent: sent)
    }

    mutating func pull() -> PullResponse {
        let groups = (0..<Int.random(in: 0...3, using: &random)).map { _ in
            let columns = (0..<Int.random(in: 1...5, using: &random)).map { "f\($0)" }
            let rows = (0..<Int.random(in: 0...4, using: &random)).map { _ in
                var stamps = FieldStamps(base: stamp())
                for column in columns where Bool.random(using: &random) { stamps.overrides[column] = stamp() }
                return RecordRow(id: text(), stamps: stamps, values: columns.map { _ in value() })
            }
            return RecordGroup(table: text(), columns: columns, rows: rows)
        }
        let cursor = Dictionary((0..<Int.random(in: 0...3, using: &random)).map { ("S0\($0)", Int64.random(in: 0...1_000_000, using: &random)) }) { $1 }
        return PullResponse(groups: groups, cursor: cursor, more: Bool.random(using: &random), hlc: hlc())
    }
}

private func decodePush(_ json: String) throws -> PushRequest {
    try Array(json.utf8).withUnsafeBytes { try PushRequest(wireJSON: $0) }
}

private func decodePull(_ json: String) throws -> PullResponse {
    try Array(json.utf8).withUnsafeBytes { try PullResponse(wireJSON: $0) }
}

@Suite("Wire format: the bulk messages' JSON reader and writer")
struct WireFormatTests {
    @Test("Push requests: the fast path and Codable read each other's JSON", arguments: 0..<200)
    func pushAgreesWithCodable(seed: UInt64) throws {
        var generator = MessageGenerator(random: SeededGenerator(seed: seed))
        let push = generator.push()
        let fast = try push.wireJSON()
        #expect(try JSONDecoder().decode(PushRequest.self, from: Data(fast)) == push)
        let codable = try JSONEncoder().encode(push)
        #expect(try codable.withUnsafeBytes { try PushRequest(wireJSON: $0) } == push)
    }

    @Test("Pull responses: the fast path and Codable read each other's JSON", arguments: 0..<200)
    func pullAgreesWithCodable(seed: UInt64) throws {
        var generator = MessageGenerator(random: SeededGenerator(seed: seed))
        let pull = generator.pull()
        let fast = try pull.wireJSON()
        #expect(try JSONDecoder().decode(PullResponse.self, from: Data(fast)) == pull)
        let codable = try JSONEncoder().encode(pull)
        #expect(try codable.withUnsafeBytes { try PullResponse(wireJSON: $0) } == pull)
    }

    @Test("The compact row shapes are unchanged")
    func compactShapes() throws {
        let push = PushRequest(
            replica: "r",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A", columns: ["site_id", "sex"],
                    rows: [
                        ChangeRow(id: "x", seq: HLC(rawValue: 42), values: [.text("S01"), .null]),
                        ChangeRow(
                            id: "y", seq: HLC(rawValue: 43), values: [.real(1.5), .integer(-7)], hlcs: [HLC(rawValue: 41), HLC(rawValue: 43)],
                            bases: [nil, Version(hlc: HLC(rawValue: 9), replica: "q")]),
                    ])
            ])
        #expect(
            String(decoding: try push.wireJSON(), as: UTF8.self)
                == #"{"replica":"r","groups":[{"t":"subjects","u":"A","c":["site_id","sex"],"r":[["x",42,null,"S01",null],["y",43,{"h":[41,43],"b":[null,[9,"q"]]},1.5,-7]]}]}"#
        )
        // A reason for change travels in the row's meta, one entry per field.
        let explained = PushRequest(
            replica: "r",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A", columns: ["sex"],
                    rows: [
                        ChangeRow(
                            id: "x", seq: HLC(rawValue: 44), values: [.text("F")], bases: [Version(hlc: HLC(rawValue: 9), replica: "q")],
                            reasons: ["Typo \"M\""])
                    ])
            ])
        #expect(
            String(decoding: try explained.wireJSON(), as: UTF8.self)
                == #"{"replica":"r","groups":[{"t":"subjects","u":"A","c":["sex"],"r":[["x",44,{"b":[[9,"q"]],"w":["Typo \"M\""]},"F"]]}]}"#)
    }

    @Test("Whitespace, member order and unknown members are accepted, as JSONDecoder accepts them")
    func lenientWhereJSONIs() throws {
        let push = try decodePush(
            """
             { "groups" : [ { "r" : [ [ "x" , 1 , { "h" : null , "later" : [ 1 , { "a" : true } ] } , "\\u00e9\\ud83e\\uddea" , -0.5e2 ] ] ,
               "c" : [ "f" , "g" ] , "u" : "A" , "t" : "subjects" , "v2" : { } } ] , "replica" : "r" , "extra" : false }
            """)
        #expect(push.groups[0].rows[0].values == [.text("é🧪"), .real(-50)])
        #expect(push.groups[0].rows[0].hlcs == nil)
        #expect(push.groups[0].columns == ["f", "g"])
    }

    @Test("Numbers: integers stay integers up to 64 bits; fractions, exponents and larger ones are reals")
    func numbers() throws {
        let row = try decodePush(
            #"{"replica":"r","groups":[{"t":"t","u":"u","c":["a"],"r":[["x",1,null,9223372036854775807,-9223372036854775808,9223372036854775808,2.0,1E2,0]]}]}"#
        )
        .groups[0].rows[0]
        #expect(row.values == [.integer(.max), .integer(.min), .real(9_223_372_036_854_775_808), .real(2), .real(100), .integer(0)])
    }

    @Test("A list of ids for json_each is a JSON array of strings, escapes included")
    func idArray() throws {
        let ids = ["019ac3f2-5e7b-7d21-9a43-2f0c1b7e8d55", "with \"quote\" and \\", "", "ünïcode"]
        let text = JSONWriter.array(of: ids)
        #expect(try JSONDecoder().decode([String].self, from: Data(text.utf8)) == ids)
        #expect(JSONWriter.array(of: []) == "[]")
    }

    @Test("The audit trail's lists (reasons, stamps, bases) read back with JSONDecoder as written")
    func auditArrays() throws {
        func decoded<T: Decodable>(_ type: T.Type, _ text: String) throws -> T { try JSONDecoder().decode(T.self, from: Data(text.utf8)) }
        let reasons: [String?] = ["Transcription error: 1/2 \"dose\"", nil, "ünïcode\n"]
        #expect(try decoded([String?].self, JSONWriter.array(ofOptional: reasons)) == reasons)
        let hlcs = [HLC(rawValue: 0), HLC(rawValue: 1 << 40 | 7), HLC(rawValue: .max)]
        #expect(try decoded([HLC].self, JSONWriter.array(ofHLCs: hlcs)) == hlcs)
        let bases: [Version?] = [Version(hlc: HLC(rawValue: 42), replica: "r-\"1\""), nil]
        #expect(try decoded([Version?].self, JSONWriter.array(ofVersions: bases)) == bases)
        #expect(JSONWriter.array(ofOptional: []) == "[]")
        #expect(JSONWriter.array(ofVersions: [nil]) == "[null]")
    }

    @Test("Infinite and NaN values cannot be written")
    func nonFinite() {
        let push = PushRequest(
            replica: "r", groups: [ChangeGroup(table: "t", user: "u", columns: ["a"], rows: [ChangeRow(id: "x", seq: .zero, values: [.real(.infinity)])])])
        #expect(throws: JSONWriteError.self) { try push.wireJSON() }
    }

    @Test(
        "Bad text is refused with what was expected, what was found and where",
        arguments: [
            (#"{"replica":"#, "malformed JSON: the text ends where String for replica was expected at byte 11"),
            (#"{"replica": "r1", "groups": [}"#, "malformed JSON: expected a change group, found '}' at byte 29"),
            (#"{"replica":"r1","groups":[{"t":"subjects","u":"A","c":["site_id"],"r":[[1]]}]}"#, "expected String for the row's id, found a number at byte 72"),
            (#"{"replica":"r1","groups":[]} x"#, "unexpected 'x' after the message at byte 29"),
            (#"{"replica":"r1","groups":[],}"#, "malformed JSON: expected a member name in a push request, found '}' at byte 28"),
            (#"{"groups":[]}"#, "missing \"replica\" at byte 0"),
            ("{\"replica\":\"a\u{01}b\",\"groups\":[]}", "malformed JSON: a control character in a string at byte 13"),
            (#"{"replica":"\x","groups":[]}"#, "malformed JSON: an invalid escape in a string at byte 12"),
            (#"{"replica":"\ud800","groups":[]}"#, "malformed JSON: an unpaired surrogate in a string at byte 18"),
            (#"{"replica":"r","groups":[{"t":"t","u":"u","c":["a"],"r":[["x",01,null]]}]}"#, "malformed JSON: a number with a leading zero at byte 62"),
            (#"{"replica":"r","groups":[{"t":"t","u":"u","c":["a"],"r":[["x",1.5,null]]}]}"#, "expected an integer for the row's sequence number at byte 62"),
            (
                #"{"replica":"r","groups":[{"t":"t","u":"u","c":["a"],"r":[["x",1,null,true]]}]}"#,
                "expected null, a number or a string for a field value, found a boolean at byte 69"
            ),
            (#"{"replica":"r","groups":[{"t":"t","u":"u","c":["a"],"r":[["x",1,null,1e999]]}]}"#, "the number 1e999 is out of range at byte 69"),
            (#"{"replica":"r","groups":[{"t":"t","u":"c":["a"],"r":[]}]}"#, "malformed JSON: expected ',' or '}' in a change group, found ':' at byte 41"),
        ])
    func refusals(json: String, message: String) {
        #expect {
            try decodePush(json)
        } throws: { error in
            (error as? JSONReadError)?.description == message
        }
    }

    @Test("Text that is not UTF-8 is refused")
    func invalidUTF8() {
        var bytes = Array(#"{"replica":"r"#.utf8)
        bytes += [0xC3, 0x28]
        bytes += Array(#"","groups":[]}"#.utf8)
        #expect(throws: JSONReadError(message: "a string that is not valid UTF-8", offset: 11)) {
            try bytes.withUnsafeBytes { try PushRequest(wireJSON: $0) }
        }
    }

    @Test("Deeply nested unknown members are refused rather than exhausting the stack")
    func nesting() {
        let json = #"{"replica":"r","groups":[],"x":"# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"
        #expect(throws: JSONReadError.self) { try decodePush(json) }
    }

    @Test("A pull response with overrides and several sites reads back")
    func pullShape() throws {
        let pull = try decodePull(
            #"{"groups":[{"t":"subjects","c":["site_id","sex"],"r":[["x",5,"aa","A. Rivera",{"sex":[9,"bb","B. Chen"]},"S01","F"]]}],"cursor":{"S01":12,"S02":0},"more":true,"hlc":77}"#
        )
        #expect(pull.cursor == ["S01": 12, "S02": 0])
        #expect(pull.more)
        #expect(pull.hlc == HLC(rawValue: 77))
        let row = pull.groups[0].rows[0]
        #expect(row.stamps["sex"] == Stamp(hlc: HLC(rawValue: 9), replica: "bb", user: "B. Chen"))
        #expect(row.stamps["site_id"] == Stamp(hlc: HLC(rawValue: 5), replica: "aa", user: "A. Rivera"))
        #expect(row.values == [.text("S01"), .text("F")])
        #expect(throws: JSONReadError(message: "missing \"hlc\" in a pull response", offset: 0)) {
            try decodePull(#"{"groups":[],"cursor":{},"more":false}"#)
        }
    }
}
