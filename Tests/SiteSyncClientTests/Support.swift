import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import TrialRecords

/// A replica in memory, initialised for `site`.
func makeReplica(site: String = "S01", user: String = "A. Rivera") throws -> Replica {
    let replica = try Replica.inMemory(schema: TrialSchema.current)
    try replica.initialize(site: site, user: user, serverURL: URL(string: "http://127.0.0.1:9")!, token: "test-token")
    return replica
}

/// A pulled batch holding one subject written by another replica at `milliseconds`.
func pulledSubject(
    id: String, status: String = "screening", milliseconds: Int64, replica: String = "remote", user: String = "B. Chen", cursor: Int64 = 1
) -> PullResponse {
    let table = TrialSchema.subjects
    let values: [String: FieldValue] = ["site_id": .text("S01"), "screening_no": .text("S01-001"), "sex": .text("F"), "status": .text(status)]
    let stamps = FieldStamps(base: Stamp(hlc: HLC(milliseconds: milliseconds), replica: replica, user: user))
    let row = RecordRow(id: id, stamps: stamps, values: table.columnNames.map { values[$0] ?? .null })
    return PullResponse(groups: [RecordGroup(table: table.name, columns: table.columnNames, rows: [row])], cursor: ["S01": cursor], more: false, hlc: .zero)
}

/// Milliseconds since 1970, now.
func nowMilliseconds() -> Int64 { HybridLogicalClock.systemMilliseconds() }
