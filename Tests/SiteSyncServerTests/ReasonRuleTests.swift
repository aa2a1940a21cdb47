import Foundation
import HTTPTypes
import HummingbirdTesting
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Testing

/// The reason-for-change rule holds whatever a push says of its bases, and a placeholder is no
/// reason: leaving the base out does not make a replica's synced value new, and the triggers' text
/// for a change written with plain SQL does not explain it.
@Suite("The reason rule and bases")
struct ReasonRuleTests {
    private func push(_ client: any TestClientProtocol, _ token: String, _ request: PushRequest) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(token), body: try json(request)) { response in
            (response.status, String(buffer: response.body))
        }
    }

    private func statusChange(_ replica: String, _ milliseconds: Int64, _ value: String, bases: [Version?]?, reason: String? = nil) -> PushRequest {
        PushRequest(
            replica: replica,
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A. Rivera", columns: ["status"],
                    rows: [
                        ChangeRow(id: "s1", seq: HLC(milliseconds: milliseconds), values: [.text(value)], bases: bases, reasons: reason.map { [$0] })
                    ])
            ])
    }

    @Test("A change of the replica's own synced value without a base, or with a null one, needs a reason all the same", arguments: StoreKind.all)
    func ownValueWithoutBase(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let now = HybridLogicalClock.systemMilliseconds()
        try await server.test { client in
            let created = PushRequest(
                replica: "r1",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "A. Rivera", columns: ["site_id", "screening_no", "status"],
                        rows: [
                            ChangeRow(id: "s1", seq: HLC(milliseconds: now - 100), values: [.text("S01"), .text("S01-001"), .text("enrolled")])
                        ])
                ])
            #expect(try await push(client, server.s01, created).0 == .ok)
            let before = try await server.dump()
            for bases in [nil, [nil]] as [[Version?]?] {
                let (status, body) = try await push(client, server.s01, statusChange("r1", now - 50, "screen_failed", bases: bases))
                #expect(status == .unprocessableContent, "bases \(String(describing: bases)): \(body)")
                #expect(body.contains("reason_required") && body.contains("subjects.status of record s1"), "\(body)")
                #expect(try await server.dump() == before, "nothing written")
            }
            // With a reason it is applied.
            #expect(try await push(client, server.s01, statusChange("r1", now - 40, "screen_failed", bases: nil, reason: "Platelets below the limit")).0 == .ok)
            // Another replica's write without a base is a concurrent creation: applied by its stamp,
            // the value it replaces kept in the conflict log.
            #expect(try await push(client, server.s01b, statusChange("r1b", now - 30, "enrolled", bases: [nil])).0 == .ok)
            let logged = try await server.store.conflicts(ConflictFilter(status: .open), principal: Principal(role: .reviewer, site: nil)).conflicts
            #expect(logged.map(\.loser.value) == [.text("screen_failed")] && logged.map(\.winner.value) == [.text("enrolled")])
        }
    }

    @Test("The triggers' placeholder for a change written with plain SQL is no reason; the change is refused and nothing is written", arguments: StoreKind.all)
    func placeholderIsNoReason(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let now = HybridLogicalClock.systemMilliseconds()
        try await server.test { client in
            let created = PushRequest(
                replica: "r1",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "A. Rivera", columns: ["site_id", "screening_no", "status"],
                        rows: [
                            ChangeRow(id: "s1", seq: HLC(milliseconds: now - 100), values: [.text("S01"), .text("S01-001"), .text("enrolled")])
                        ])
                ])
            #expect(try await push(client, server.s01, created).0 == .ok)
            let before = try await server.dump()
            let base = Version(hlc: HLC(milliseconds: now - 100), replica: "r1")
            for placeholder in [ReasonForChange.writtenOutsideLibrary, "  \(ReasonForChange.writtenOutsideLibrary)\n"] {
                let (status, body) = try await push(client, server.s01, statusChange("r1", now - 50, "screen_failed", bases: [base], reason: placeholder))
                #expect(status == .unprocessableContent, "\(body)")
                #expect(body.contains("reason_required") && body.contains("subjects.status of record s1"), "\(body)")
                #expect(try await server.dump() == before, "nothing written")
            }
            // Nor over a concurrent change: the value its base wrote is read from the audit trail.
            #expect(try await push(client, server.s01b, statusChange("r1b", now - 60, "withdrawn", bases: [base], reason: "Withdrew consent")).0 == .ok)
            let concurrent = try await server.dump()
            let (status, body) = try await push(
                client, server.s01, statusChange("r1", now - 55, "screen_failed", bases: [base], reason: ReasonForChange.writtenOutsideLibrary))
            #expect(status == .unprocessableContent && body.contains("reason_required"), "\(body)")
            #expect(try await server.dump() == concurrent, "nothing written")
            // Entering a value into an empty field needs no reason, so the placeholder there is
            // kept as what it says: where the value came from.
            let filled = PushRequest(
                replica: "r1",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "A. Rivera", columns: ["sex"],
                        rows: [
                            ChangeRow(
                                id: "s1", seq: HLC(milliseconds: now - 40), values: [.text("F")], bases: [nil], reasons: [ReasonForChange.writtenOutsideLibrary]
                            )
                        ])
                ])
            #expect(try await push(client, server.s01, filled).0 == .ok)
        }
    }
}
