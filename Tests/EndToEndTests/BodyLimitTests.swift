import Foundation
import SiteSyncClient
import SiteSyncCore
import SiteSyncServer
import Testing
import TrialRecords

/// The laptop's push batches fit the server's body limit, whatever the records hold.
@Suite("Body limits")
struct BodyLimitTests {
    @Test("With the defaults on both sides, a backlog of records at their largest is pushed in requests under the body limit")
    func defaultBatchesFitDefaultLimit() async throws {
        let limit = ServerConfiguration(schema: TrialSchema.current).maximumBodySize
        let budget = SyncEngine.Configuration().pushBatchBytes
        #expect(limit >= 4 * budget, "room for the envelope and every record's worst case")
        try await LiveServer.run { server in
            let laptop = try server.laptop("a")
            // 1,200 visits with 3,900 bytes of notes: 4.7 MB, more than the body limit in 2,000-record batches.
            let notes = String(repeating: "n", count: 3_900)
            let rows = (0..<1_200).map {
                ImportRow(line: $0 + 2, id: nil, values: ["subject_id": .text("subject-\($0)"), "name": .text("D7"), "notes": .text(notes)])
            }
            _ = try laptop.replica.importRecords("visits", rows, reason: "backlog")
            let transport = ObservedTransport(laptop.transport)
            let report = try await laptop.engine(transport: transport).sync()
            #expect(report.pushed == 1_200)
            #expect(try await server.count("SELECT count(*) FROM visits") == 1_200)
            let sizes = transport.pushSizes
            print(
                "body limits: 1,200 records of 3.9 kB pushed in \(sizes.count) requests, the largest \(sizes.max() ?? 0) bytes (budget \(budget), limit \(limit))"
            )
            #expect(sizes.count >= 5)
            #expect(sizes.allSatisfy { $0 <= budget + 256 })
        }
    }

    @Test("A small byte budget splits the outbox into requests no larger than it, each record pushed once")
    func smallBudget() async throws {
        try await LiveServer.run(configure: { $0.maximumBodySize = 64 * 1024 }) { server in
            let laptop = try server.laptop("a")
            let rows = (0..<300).map { index in
                // Control characters are escaped as six bytes each: the budget counts them so.
                let notes = String(repeating: index.isMultiple(of: 3) ? "\u{1}" : "é", count: 600)
                return ImportRow(line: index + 2, id: nil, values: ["subject_id": .text("subject-\(index)"), "name": .text("D7"), "notes": .text(notes)])
            }
            _ = try laptop.replica.importRecords("visits", rows, reason: "backlog")
            let transport = ObservedTransport(laptop.transport)
            let report = try await laptop.engine(transport: transport) { $0.pushBatchBytes = 16 * 1024 }.sync()
            #expect(report.pushed == 300)
            #expect(try await server.count("SELECT count(*) FROM visits") == 300)
            #expect(try laptop.replica.pendingCount() == 0)
            let sizes = transport.pushSizes
            #expect(sizes.count >= 20)
            #expect(sizes.allSatisfy { $0 <= 16 * 1024 + 256 }, "\(sizes.max() ?? 0)")
        }
    }

    @Test("An engine configured for larger batches than the protocol allows still pushes everything, in batches the server takes")
    func batchSizeClamped() async throws {
        try await LiveServer.run { server in
            let laptop = try server.laptop("a")
            let count = SyncProtocol.maximumPushRecords + 200
            let rows = (0..<count).map { ImportRow(line: $0 + 2, id: nil, values: ["subject_id": .text("subject-\($0)"), "name": .text("D7")]) }
            _ = try laptop.replica.importRecords("visits", rows, reason: "backlog")
            let transport = ObservedTransport(laptop.transport)
            let report = try await laptop.engine(transport: transport) { $0.pushBatchSize = 10_000 }.sync()
            #expect(report.pushed == count)
            #expect(try await server.count("SELECT count(*) FROM visits") == count)
            #expect(transport.pushSizes.count == 2)
        }
    }

    @Test("The largest record the trial's schema allows fits a push batch and the server's body limit many times over")
    func largestRecord() throws {
        let budget = SyncEngine.Configuration().pushBatchBytes
        for table in TrialSchema.current.tables {
            // Every text at its longest, in control characters (six bytes each on the wire).
            let values: [FieldValue] = table.columns.map { column in
                switch column.type {
                case .text(let maxBytes): .text(String(repeating: "\u{1}", count: maxBytes))
                case .choice(let choices): .text(choices.max { $0.utf8.count < $1.utf8.count } ?? "")
                case .date: .text("2026-11-30")
                case .integer, .flag: .integer(.min)
                case .real: .real(-.greatestFiniteMagnitude)
                }
            }
            let row = ChangeRow(id: String(repeating: "x", count: 64), seq: HLC(rawValue: .max), values: values)
            func encodedSize(_ rows: [ChangeRow]) throws -> Int {
                try PushRequest(replica: "r", groups: [ChangeGroup(table: table.name, user: "u", columns: table.columnNames, rows: rows)]).wireJSON().count
            }
            let size = try encodedSize([row])
            // The row's own bytes: what a second row adds to the request.
            #expect(try encodedSize([row, row]) - size <= row.maximumEncodedBytes, "\(table.name): the bound holds")
            #expect(size * 8 < budget, "\(table.name): \(size) bytes")
        }
    }
}
