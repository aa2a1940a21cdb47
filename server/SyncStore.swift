import SiteSyncCore
import SiteSyncRules

/// Storage behind the sync server; SQLite (embedded default) and, later, PostgreSQL implement it.
///
/// Every method is one transaction: on any thrown error nothing is written.
public protocol SyncStore: Sendable {
    /// The credential stored under a token's SHA-256 hex digest, revoked or expired ones included;
    /// nil for an unknown token.
    func token(hash: String) async throws -> StoredToken?

    /// Stores a new token's digest with its role and site, valid until `expiresAt` (ISO 8601, UTC)
    /// when given.
    func createToken(hash: String, role: Role, site: String?, label: String?, expiresAt: String?) async throws

    /// Every credential, enrolment tokens and replicas' own, oldest first; never a secret.
    func tokens() async throws -> [StoredToken]

    /// Revokes the credentials stored under `hashes` at `time`; returns how many were active.
    func revokeTokens(hashes: [String], at time: String) async throws -> Int

    /// Records that the credential under `hash` was used at `time`.
    func recordTokenUse(hash: String, at time: String) async throws

    /// Registers `replica` with the digest of its own credential, which inherits the enrolling
    /// token's role and site, unless the enrolling token (its digest `enrolledBy`) has enrolled
    /// `limit` other replicas already. Says what it did; writes nothing unless it enrolled.
    func enrolReplica(_ replica: String, tokenHash: String, principal: Principal, label: String, enrolledBy: String, limit: Int) async throws -> Enrolment

    /// Applies a checked push: exactly once per replica sequence number, merging field by field by
    /// last-writer-wins, logging every overwritten value and auditing every change received.
    func push(_ push: CheckedPush, principal: Principal) async throws -> PushOutcome

    /// The state of `replica`: what the server applied for it, and the outcome of its last push;
    /// nil for a replica that never pushed. Any instance answers an asynchronous push's outcome from it.
    func replicaState(_ replica: String) async throws -> StoredReplica?

    /// Returns the records changed after the cursor, in per-site sequence order, for the sites the
    /// principal may read, as a replica on `schema` knows them: at most the request's limit, and
    /// about `byteBudget` bytes of them (always at least one).
    func pull(_ request: PullRequest, principal: Principal, schema: Schema, byteBudget: Int) async throws -> PullBatch

    /// A page of the conflicts the principal may see, filtered.
    func conflicts(_ filter: ConflictFilter, principal: Principal) async throws -> ConflictPage

    /// One conflict with the current value of its field; nil when absent or outside the principal's scope.
    func conflict(id: String, principal: Principal) async throws -> ConflictDetail?

    /// Every change received for a record, with its conflicts' resolutions; nil when absent or out of scope.
    func history(table: String, id: String, principal: Principal) async throws -> RecordHistory?

    /// Calls `body` with every field change of the audit trail that `filter` selects, oldest first.
    func exportAudit(_ filter: AuditFilter, _ body: @escaping @Sendable (AuditFieldChange) throws -> Void) async throws

    // MARK: Monitoring (docs/MONITORING.md)

    /// Throws unless the store answers and every migration this build knows is applied: `/readyz`.
    func checkReady() async throws

    /// Keeps `report` as the latest of `replica` (of `site`, ``SiteID/all`` for a replica enrolled
    /// by a reviewer), received at `time` (ISO 8601, UTC) when the server's clock read `serverMilliseconds`.
    func recordReport(_ report: ReplicaReport, replica: String, site: String, schemaVersion: Int, at time: String, serverMilliseconds: Int64) async throws

    /// Every enrolled laptop whose credential is not revoked, with its latest report; only `site`'s
    /// when given. Ordered by site, then replica.
    func replicaFreshness(site: String?) async throws -> [ReplicaFreshness]

    /// Every site with records or with a token of its own, in order.
    func siteIDs() async throws -> [String]

    /// Open conflicts by site; sites with none are left out.
    func openConflictCounts() async throws -> [String: Int]

    /// Live records per table of `site`, and record changes received per day from `firstDay`
    /// (`YYYY-MM-DD`) on.
    func siteActivity(site: String, from firstDay: String) async throws -> SiteActivity

    /// The current values of `site`'s live records of `table`, at most `limit`, by id.
    func liveRecords(_ table: TableSchema, site: String, limit: Int) async throws -> [[String: FieldValue]]

    /// Stores a monitoring session under its digest, for the credential under `tokenHash`, until
    /// `expiresAt`; sessions already expired at `time` are deleted, and the credential's oldest
    /// past the newest `keeping`.
    func createSession(hash: String, tokenHash: String, at time: String, expiresAt: String, keeping: Int) async throws

    /// The credential behind the session stored under `hash`, if the session has not expired at `time`.
    func sessionToken(hash: String, at time: String) async throws -> StoredToken?

    /// Ends the session stored under `hash`.
    func deleteSession(hash: String) async throws
}

/// What a store did with an enrolment.
public enum Enrolment: Sendable, Equatable {
    /// Enrolled now, or before with the same credential (a retry whose answer was lost): the
    /// greatest sequence number already applied under the id (0 for a new replica).
    case enrolled(acked: HLC)
    /// The replica id has another credential already; nothing was written.
    case taken
    /// The enrolling token has enrolled this many replicas, its limit; nothing was written.
    case limitReached(Int)
}

extension SyncStore {
    /// A pull page of the default size in bytes (``SyncProtocol/maximumPullPageBytes``).
    public func pull(_ request: PullRequest, principal: Principal, schema: Schema) async throws -> PullBatch {
        try await pull(request, principal: principal, schema: schema, byteBudget: SyncProtocol.maximumPullPageBytes)
    }
}

/// A credential as the server stores it: its digest, never the token.
public struct StoredToken: Sendable, Equatable {
    /// The SHA-256 hex digest of the token.
    public var hash: String
    public var role: Role
    public var site: String?
    /// The replica a replica's own credential belongs to; nil for an enrolment or admin token.
    public var replica: String?
    public var label: String?
    /// ISO 8601, UTC, like every time below.
    public var createdAt: String
    public var expiresAt: String?
    public var revokedAt: String?
    /// The last request made with it, to the minute (each instance records a use at most once a minute).
    public var lastUsedAt: String?

    public init(
        hash: String, role: Role, site: String?, replica: String?, label: String?, createdAt: String, expiresAt: String?, revokedAt: String?,
        lastUsedAt: String?
    ) {
        (self.hash, self.role, self.site, self.replica, self.label) = (hash, role, site, replica, label)
        (self.createdAt, self.expiresAt, self.revokedAt, self.lastUsedAt) = (createdAt, expiresAt, revokedAt, lastUsedAt)
    }

    /// The `tokens` columns a stored token is read from, in both stores, in this order.
    static let columns = "hash, role, site_id, replica_id, label, created_at, expires_at, revoked_at, last_used_at"

    /// ``columns`` of the table named `alias` in a join.
    static func columns(of alias: String) -> String {
        columns.split(separator: ", ").map { "\(alias).\($0)" }.joined(separator: ", ")
    }

    /// What operators name it by: the first 12 hex digits of its digest, which reveal nothing of the token.
    public var id: String { String(hash.prefix(12)) }

    /// The principal it authenticates.
    public var principal: Principal { Principal(role: role, site: site, replica: replica) }

    /// Whether it is refused at `time` (ISO 8601, UTC), and why.
    public func refusal(at time: String) -> String? {
        if let revokedAt { return "The bearer token was revoked at \(revokedAt); ask the operator for a new one." }
        if let expiresAt, expiresAt <= time { return "The bearer token expired at \(expiresAt); ask the operator for a new one." }
        return nil
    }
}
