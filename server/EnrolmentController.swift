import Foundation
import Hummingbird
import Logging
import SiteSyncCore
import SiteSyncRules

/// `POST /v1/replicas`: registers a laptop's replica id with the replica's own credential
/// (docs/PROTOCOL.md, "Enrolment").
///
/// An enrolment token (a `site` or `reviewer` token) may enrol a bounded number of laptops
/// (``ServerConfiguration/maximumEnrolmentsPerToken``, 50 by default); each then
/// syncs with a credential of its own, bound to its replica id, so that no other laptop can push or
/// pull under that id. A replica id is registered once: asking again with the same credential (a
/// lost answer) succeeds again; with another one (a copy of the laptop's file, a borrowed id) it is
/// `409 replica_taken`.
struct EnrolmentController {
    let store: any CredentialStore
    let clock: HybridLogicalClock
    /// How many laptops one enrolment token may enrol (``ServerConfiguration/maximumEnrolmentsPerToken``).
    let maximumEnrolments: Int

    func addRoutes(to group: RouterGroup<SyncRequestContext>) {
        group.post("replicas", use: enrol)
    }

    @Sendable func enrol(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        guard principal.canSync else { throw principal.cannotSync }
        guard principal.replica == nil else {
            throw ServerError.forbidden("A replica's own credential cannot enrol another replica; use an enrolment token from `sitesync-server token create`.")
        }
        let message = try await request.decodeJSON(EnrolRequest.self, limit: 64 * 1024)
        if let problem = UserName.problem(message.user) { throw ServerError.validation(problem) }
        let replica = message.replica ?? ReplicaID.generate()
        guard ReplicaID.isValid(replica) else { throw ServerError.validation("The replica id is invalid: \(ReplicaID.rule).") }
        guard Credential.isReplicaCredential(message.credential) else {
            throw ServerError.validation("The replica's credential must be \(Credential.replicaPrefix) followed by 64 lowercase hex digits (256 random bits).")
        }
        let label = "replica \(replica) (\(message.user))"
        let enrolment = try await store.enrolReplica(
            replica, tokenHash: Tokens.hash(message.credential), principal: principal, label: label, enrolledBy: try context.requireTokenHash(),
            limit: maximumEnrolments
        )
        let acked: HLC
        switch enrolment {
        case .enrolled(let applied):
            acked = applied
        case .taken:
            context.logger.info("enrolment refused", metadata: ["sync.replica": "\(replica)", "sync.error": "\(ErrorCode.replicaTaken.rawValue)"])
            throw ServerError.replicaTaken(replica)
        case .limitReached(let count):
            throw ServerError.forbidden(
                "This enrolment token has enrolled \(count) laptops, its limit; nothing was written. Ask the operator for a new token (sitesync-server token create)."
            )
        }
        context.logger.info("replica enrolled", metadata: ["sync.replica": "\(replica)", "sync.site": "\(principal.site ?? SiteID.all)"])
        let answer = EnrolResponse(replica: replica, site: principal.site ?? SiteID.all, acked: acked, hlc: clock.tick())
        var response = try JSONResponse.ok(answer)
        response.status = .created
        return response
    }
}
