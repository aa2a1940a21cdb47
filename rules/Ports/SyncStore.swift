import SiteSyncCore

/// Where the server keeps its data: SQLite (embedded, the default; `SiteSyncSQLiteStore`) or
/// PostgreSQL (`SiteSyncPostgresStore`). A store implements one port per concern; the server's
/// parts each take the port they use.
///
/// Every method is one transaction: on any thrown error nothing is written. Stores throw
/// ``SyncRefusal`` for a request they refuse, ``StorageError`` for a database that failed.
public typealias SyncStore = CredentialStore & AccountStore & SyncTransactionStore & ReviewStore & AuditChainStore & MonitoringStore

/// Credentials and monitoring sessions: stored as digests, never the secret.
public protocol CredentialStore: Sendable {
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

    /// Stores a monitoring session under its digest, for the credential under `tokenHash` (or the
    /// person ``MonitorSessionOwner/person(_:)`` names), until
    /// `expiresAt`; sessions already expired at `time` are deleted, and the credential's oldest
    /// past the newest `keeping`.
    func createSession(hash: String, tokenHash: String, at time: String, expiresAt: String, keeping: Int) async throws

    /// The credential behind the session stored under `hash`, if the session has not expired at `time`.
    func sessionToken(hash: String, at time: String) async throws -> StoredToken?

    /// The person behind the session stored under `hash` (one created for ``MonitorSessionOwner/person(_:)``),
    /// if the session has not expired at `time`.
    func sessionPerson(hash: String, at time: String) async throws -> Account?

    /// Ends the session stored under `hash`.
    func deleteSession(hash: String) async throws
}

/// The sync transactions: pushes applied exactly once, pull pages, and what each replica was acknowledged.
public protocol SyncTransactionStore: Sendable {
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
}

/// What reviewers read: the conflict log, a record's history, the audit trail.
///
/// A store only selects: what a token may see is decided above it, once for every store (the
/// extension below, ``ConflictQuery``).
public protocol ReviewStore: Sendable {
    /// The conflicts `query` selects, oldest detection first, then by id, after its position: at
    /// most `query.limit + 1` of them.
    func conflicts(matching query: ConflictQuery) async throws -> [Conflict]

    /// One conflict with the current value of its field; nil when absent.
    func conflict(id: String) async throws -> ConflictDetail?

    /// Every change received for a record, with its conflicts' resolutions, and the record's site;
    /// nil when absent.
    func history(table: String, id: String) async throws -> (site: String, history: RecordHistory)?

    /// Calls `body` with the field changes of the audit trail that `filter` selects, oldest first,
    /// as the trail stood when the call began (one snapshot), read a page at a time while `body`
    /// iterates them. The trail is valid only inside `body`.
    func withAuditTrail<Result: Sendable>(_ filter: AuditFilter, _ body: @Sendable (AuditTrail) async throws -> Result) async throws -> Result
}

extension ReviewStore {
    /// A page of the conflicts `principal` may see, filtered.
    public func conflicts(_ filter: ConflictFilter, principal: Principal) async throws -> ConflictPage {
        let query = try ConflictQuery(filter, principal: principal)
        return query.page(try await conflicts(matching: query))
    }

    /// One conflict with the current value of its field; nil when absent or outside the principal's scope.
    public func conflict(id: String, principal: Principal) async throws -> ConflictDetail? {
        try ReadScope.requireReader(principal)
        guard let detail = try await conflict(id: id), principal.canAccess(site: detail.conflict.site) else { return nil }
        return detail
    }

    /// Every change received for a record, with its conflicts' resolutions; nil when absent or
    /// outside the principal's scope.
    public func history(table: String, id: String, principal: Principal) async throws -> RecordHistory? {
        try ReadScope.requireReader(principal)
        guard let found = try await history(table: table, id: id), principal.canAccess(site: found.site) else { return nil }
        return found.history
    }
}

/// What operators and monitors read (docs/MONITORING.md): readiness, laptops' reports, sites and their activity.
public protocol MonitoringStore: Sendable {
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

extension SyncTransactionStore {
    /// A pull page of the default size in bytes (``SyncProtocol/maximumPullPageBytes``).
    public func pull(_ request: PullRequest, principal: Principal, schema: Schema) async throws -> PullBatch {
        try await pull(request, principal: principal, schema: schema, byteBudget: SyncProtocol.maximumPullPageBytes)
    }
}

/// Who a monitoring session belongs to, as `monitor_sessions.token_hash` stores it: a token's
/// digest (64 hex digits), or `person USERNAME`, which no digest can equal.
public enum MonitorSessionOwner {
    /// The owner value of `username`'s sessions.
    public static func person(_ username: String) -> String { "person \(username)" }
}
