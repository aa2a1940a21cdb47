import Foundation
import HummingbirdTesting
import Logging
import SiteSyncCore
import SiteSyncServer
import SiteSyncTestSupport
import Testing

/// Hostile bytes for the wire codec: valid messages mutated the ways an attacker or a broken
/// network would, and random JSON-like text. Seeded, so a failure can be replayed; set
/// `SITESYNC_FUZZ_SEED` to explore others and `SITESYNC_FUZZ_CASES` to run more.
struct WireMutator {
    var random: SeededGenerator

    static var seed: UInt64 { ProcessInfo.processInfo.environment["SITESYNC_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_130 }
    static func cases(_ standard: Int) -> Int { ProcessInfo.processInfo.environment["SITESYNC_FUZZ_CASES"].flatMap(Int.init) ?? standard }

    /// Fragments worth splicing in: broken UTF-8 and escapes, deep nesting, numbers too large for
    /// any type, whole-number reals, structural bytes, members of the messages.
    static let fragments: [[UInt8]] = [
        [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0x80], [0x00], [0x1B, 0x5B, 0x32, 0x4A],
        Array(#""\ud800""#.utf8), Array(#""\u00""#.utf8), Array(#"\"#.utf8),
        Array(repeating: UInt8(ascii: "["), count: 5000), Array(repeating: UInt8(ascii: "{"), count: 200),
        Array(String(repeating: #"{"a":"#, count: 100).utf8),
        Array("1e400".utf8), Array("-1e400".utf8), Array("123456789012345678901234567890".utf8), Array("9223372036854775808".utf8),
        Array("-9223372036854775809".utf8), Array("1.0".utf8), Array("3.000".utf8), Array("-0".utf8), Array("0.1e-400".utf8),
        Array("01".utf8), Array("1.".utf8), Array(".5".utf8), Array("NaN".utf8), Array("Infinity".utf8),
        Array("null".utf8), Array("true".utf8), Array(#""""#.utf8), Array(",".utf8), Array(":".utf8), Array("}".utf8), Array("]".utf8),
        Array(#""replica":"r1","#.utf8), Array(#""groups":[],"#.utf8), Array(#""limit":5,"#.utf8), Array(#""cursor":{"S01":0},"#.utf8),
        Array(#""table":"subjects","#.utf8), Array(#""columns":["sex"],"#.utf8), Array(#""rows":[["x",1,null,"F"]],"#.utf8),
    ]

    /// Scalars that keep a message well-formed but test what it means: wrong types, numbers past
    /// any range, whole-number reals, empty, long and hostile text.
    static let scalars: [String] = [
        "0", "-1", "1.0", "2.5", "1e3", "9223372036854775807", "-9223372036854775808", "1e308", "5e-324", "null", "true", "\"\"",
        "\"S02\"", "\"subjects\"", "\"conflicts\"", "\"status\"", "\"site_id\"", "\"\\u0000\"", "\"=cmd|' /C calc'!A0\"",
        "\"\\u001b[2J\"", "\"\(String(repeating: "x", count: 3000))\"", "[]", "{}", "[null]",
    ]

    mutating func int(_ bound: Int) -> Int { Int(random.next() % UInt64(max(bound, 1))) }

    /// Replaces the scalar (string, number or literal) at or after `at` with one of ``scalars``.
    mutating func replaceScalar(in bytes: inout [UInt8], at: Int) {
        let starts = Set("\"-0123456789ntf".utf8)
        guard let start = bytes.indices.dropFirst(at).first(where: { starts.contains(bytes[$0]) }) else { return }
        var end = start + 1
        if bytes[start] == UInt8(ascii: "\"") {
            while end < bytes.count, bytes[end] != UInt8(ascii: "\"") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
            end = min(end + 1, bytes.count)
        } else {
            while end < bytes.count, !Set(",]}: ".utf8).contains(bytes[end]) { end += 1 }
        }
        bytes.replaceSubrange(start..<end, with: Array(Self.scalars[int(Self.scalars.count)].utf8))
    }

    /// `message` with one to four mutations.
    mutating func mutate(_ message: [UInt8]) -> [UInt8] {
        var bytes = message
        for _ in 0...int(4) {
            let at = int(bytes.count + 1)
            switch int(12) {
            case 0 where !bytes.isEmpty: bytes[min(at, bytes.count - 1)] ^= UInt8(truncatingIfNeeded: 1 << int(8))
            case 1: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: at)
            case 2 where !bytes.isEmpty:
                let end = min(bytes.count, at + 1 + int(16))
                bytes.removeSubrange(min(at, end)..<end)
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, at + 1 + int(64))
                bytes.insert(contentsOf: bytes[min(at, end)..<end], at: at)
            case 4, 5: bytes.insert(contentsOf: Self.fragments[int(Self.fragments.count)], at: at)
            case 6:
                // A member given twice: the first member of the message again, right after the '{'.
                if let comma = bytes.firstIndex(of: UInt8(ascii: ",")), bytes.first == UInt8(ascii: "{") {
                    bytes.insert(contentsOf: bytes[1...comma], at: 1)
                }
            case 7:
                // A whole number written as a real.
                if let digit = bytes.indices.dropFirst(at % max(bytes.count, 1)).first(where: { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[$0]) }) {
                    bytes.insert(contentsOf: Array(".0".utf8), at: digit + 1)
                }
            case 8, 9, 10: replaceScalar(in: &bytes, at: at)
            default: bytes = Array(bytes.prefix(at))
            }
        }
        return bytes
    }

    /// `message` with one to three of its scalars replaced: still JSON, most often, but wrong.
    mutating func mutateValues(_ message: [UInt8]) -> [UInt8] {
        var bytes = message
        for _ in 0...int(3) { replaceScalar(in: &bytes, at: int(bytes.count)) }
        return bytes
    }

    /// Random JSON-like text: values of every kind with the messages' member names, nested.
    mutating func randomMessage(depth: Int = 0) -> [UInt8] {
        let keys = ["replica", "groups", "table", "user", "columns", "rows", "acked", "sent", "cursor", "limit", "x"]
        switch depth > 5 ? int(4) : int(7) {
        case 0: return Array("\(Int64(bitPattern: random.next()) >> int(64))".utf8)
        case 1: return Array("\"\(keys[int(keys.count)])\"".utf8)
        case 2: return Array(["null", "true", "1.5", "-0", "\"S01\""][int(5)].utf8)
        case 3: return Self.fragments[int(Self.fragments.count)]
        case 4, 5:
            let members = (0..<int(5)).map { _ in Array("\"\(keys[int(keys.count)])\":".utf8) + randomMessage(depth: depth + 1) }
            return [UInt8(ascii: "{")] + Array(members.joined(separator: [UInt8(ascii: ",")])) + [UInt8(ascii: "}")]
        default:
            let elements = (0..<int(5)).map { _ in randomMessage(depth: depth + 1) }
            return [UInt8(ascii: "[")] + Array(elements.joined(separator: [UInt8(ascii: ",")])) + [UInt8(ascii: "]")]
        }
    }
}

@Suite("The wire codec under hostile input")
struct WireFuzzTests {
    /// A fixed time (2026-11-30), so that the same seed mutates the same bytes.
    static let now: Int64 = 1_796_000_000_000

    /// A valid push of two groups, with meta, bases, reasons and every kind of value.
    static func validPush() throws -> [UInt8] {
        return try PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A. Rivera", columns: ["site_id", "screening_no", "status", "weight_kg"],
                    rows: [
                        ChangeRow(
                            id: "s1", seq: HLC(milliseconds: now, counter: 0), values: [.text("S01"), .text("S01-001"), .text("screening"), .real(71.5)]),
                        ChangeRow(
                            id: "s2", seq: HLC(milliseconds: now, counter: 1), values: [.text("S01"), .text("S01-\u{e9}\u{1}"), .text("enrolled"), .null]),
                    ]),
                ChangeGroup(
                    table: "adverse_events", user: "B", columns: ["site_id", "subject_id", "term", "grade"],
                    rows: [
                        ChangeRow(
                            id: "e1", seq: HLC(milliseconds: now, counter: 2), values: [.text("S01"), .text("s1"), .text("Rash"), .integer(2)],
                            hlcs: nil, bases: [nil, nil, nil, Version(hlc: HLC(milliseconds: now - 5, counter: 0), replica: "r1")],
                            reasons: [nil, nil, nil, "Re-graded"]
                        )
                    ]),
            ], acked: HLC(milliseconds: now - 10, counter: 0), sent: ["abc"]
        ).wireJSON()
    }

    static func validPullResponse() throws -> [UInt8] {
        try PullResponse(groups: [], cursor: ["S01": 12, "S02": 0], more: false, hlc: HLC(milliseconds: now, counter: 0)).wireJSON()
    }

    @Test("Mutated and random messages never crash the reader; what it accepts is JSON and reads back the same")
    func reader() throws {
        var mutator = WireMutator(random: SeededGenerator(seed: WireMutator.seed))
        let seeds = [try Self.validPush(), try Self.validPullResponse()]
        var accepted = (push: 0, pull: 0, json: 0)
        let cases = WireMutator.cases(20_000)
        for index in 0..<cases {
            let input =
                switch index % 4 {
                case 3: mutator.randomMessage()
                case 2: mutator.mutateValues(seeds[index / 4 % 2])
                default: mutator.mutate(seeds[index % 2])
                }
            try input.withUnsafeBytes { bytes in
                if let push = try? PushRequest(wireJSON: bytes) {
                    accepted.push += 1
                    // Written again and read back, an accepted message is the same message.
                    let again = try push.wireJSON()
                    #expect(try again.withUnsafeBytes { try PushRequest(wireJSON: $0) } == push)
                }
                if (try? PullResponse(wireJSON: bytes)) != nil { accepted.pull += 1 }
                if (try? JSONReader.checkWellFormed(bytes)) != nil {
                    accepted.json += 1
                    // Never laxer than JSON: Foundation's parser accepts what the reader accepts.
                    #expect(
                        (try? JSONSerialization.jsonObject(with: Data(input), options: [.fragmentsAllowed])) != nil,
                        "\(String(decoding: input.prefix(200), as: UTF8.self))")
                }
            }
        }
        print(
            "wire fuzz, reader: \(cases) inputs (seed \(WireMutator.seed)); accepted as a push \(accepted.push), as a pull response \(accepted.pull), as JSON \(accepted.json); the rest refused"
        )
        #expect(accepted.push > 0 && accepted.json > accepted.push, "the mutations leave some messages valid")
    }

    @Test("A member given twice is refused, in the bulk messages and in the small ones alike")
    func duplicateKeys() async throws {
        let push = String(decoding: try Self.validPush(), as: UTF8.self)
        let twice = Array(push.replacingOccurrences(of: #"{"replica":"r1","#, with: #"{"replica":"r1","replica":"r1b","#).utf8)
        #expect(throws: JSONReadError.self) { try twice.withUnsafeBytes { try PushRequest(wireJSON: $0) } }
        let server = try await TestServer.make(.sqlite)
        try await server.test { client in
            let cases: [(String, String)] = [
                (SyncProtocol.pushPath, String(decoding: twice, as: UTF8.self)),
                (SyncProtocol.pullPath, #"{"cursor":{"S01":0,"S01":5},"limit":10}"#),
                (SyncProtocol.pullPath, #"{"cursor":{},"limit":10,"limit":20}"#),
            ]
            for (path, body) in cases {
                try await client.execute(uri: path, method: .post, headers: syncHeaders(server.s01, schema: "2"), body: .init(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    let error = try decode(ErrorResponse.self, response.body)
                    #expect(error.error.code == "invalid_json")
                    #expect(error.error.message.contains("appears twice"), "\(error.error.message)")
                }
            }
        }
    }

    @Test("Through the server, every hostile message is answered 2xx or 4xx with a stable code, and a refused one writes nothing", arguments: StoreKind.all)
    func server(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let push = try Self.validPush()
        let pull = Array(#"{"cursor":{"S01":0},"limit":100,"replica":"r1"}"#.utf8)
        let codes = Set(ErrorCode.allCases.map(\.rawValue))
        let cases = WireMutator.cases(store == .sqlite ? 1_500 : 600)
        // Each refusal is logged at notice; a thousand of them would bury the tests' output.
        let quiet = Logger(label: "sitesync.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
        let (statuses, refusedCodes) = try await buildApplication(server.configuration, store: server.store, logger: quiet).test(.router) { client in
            var mutator = WireMutator(random: SeededGenerator(seed: WireMutator.seed ^ 0x5EED))
            var statuses: [Int: Int] = [:]
            var refusedCodes: [String: Int] = [:]
            var before = try await server.dump()
            for index in 0..<cases {
                let (path, body) =
                    switch index % 5 {
                    case 4: (SyncProtocol.pullPath, mutator.mutate(pull))
                    case 3: (SyncProtocol.pushPath, mutator.randomMessage())
                    case 2: (SyncProtocol.pushPath, mutator.mutateValues(push))
                    default: (SyncProtocol.pushPath, mutator.mutate(push))
                    }
                let answer = try await client.execute(uri: path, method: .post, headers: syncHeaders(server.s01, schema: "2"), body: .init(bytes: body)) {
                    response in
                    (response.status.code, response.status.code >= 400 ? try? decode(ErrorResponse.self, response.body) : nil)
                }
                statuses[answer.0, default: 0] += 1
                let replay = "case \(index): \(String(decoding: body.prefix(300), as: UTF8.self))"
                #expect(answer.0 < 500, "\(replay)")
                if answer.0 >= 400 {
                    let code = try #require(answer.1?.error.code, "an error body: \(replay)")
                    #expect(codes.contains(code), "\(replay)")
                    refusedCodes[code, default: 0] += 1
                    #expect(try await server.dump() == before, "nothing written: \(replay)")
                } else {
                    before = try await server.dump()
                }
            }
            return (statuses, refusedCodes)
        }
        print(
            "wire fuzz, \(store) server: \(cases) requests; statuses \(statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")); codes \(refusedCodes.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))"
        )
        #expect(statuses[200, default: 0] > 0 && statuses[400, default: 0] > 0 && statuses[422, default: 0] > 0)
    }
}
