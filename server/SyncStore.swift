import SiteSyncCore

/// Storage behind the sync server; SQLite (embedded default) and, later, PostgreSQL implement it.
///
/// Every method is one transaction: on any thrown error nothing is written.
public protocol SyncStore: Sendable {
    /// The principal of a token, given the SHA-256 hex digest of the token; nil for an unknown token.
    func principal(tokenHash: String) async throws -> Principal?

    /// Stores a new token's digest with its role and site.
    func createToken(hash: String, role: Role, site: String?, label: String?) async throws

    /// Registers `replica` with the digest of its own credential, which inherits the enrolling
    /// token's role and site. Returns the greatest sequence number already applied under the id (0
    /// for a new replica), or nil, writing nothing, when the replica id has a credential already.
    func enrolReplica(_ replica: String, tokenHash: String, principal: Principal, label: String) async throws -> HLC?

    /// Applies a checked push: exactly once per replica sequence number, merging field by field by
    /// last-writer-wins, logging every overwritten value and auditing every change received.
    func push(_ push: CheckedPush, principal: Principal) async throws -> PushOutcome

    /// The state of `replica`: what the server applied for it, and the outcome of its last push;
    /// nil for a replica that never pushed. Any instance answers an asynchronous push's outcome from it.
    func replicaState(_ replica: String) async throws -> StoredReplica?

    /// Returns the records changed after the cursor, in per-site sequence order, for the sites the
    /// principal may read, as a replica on `schema` knows them.
    func pull(_ request: PullRequest, principal: Principal, schema: Schema) async throws -> PullBatch

    /// A page of the conflicts the principal may see, filtered.
    func conflicts(_ filter: ConflictFilter, principal: Principal) async throws -> ConflictPage

    /// One conflict with the current value of its field; nil when absent or outside the principal's scope.
    func conflict(id: String, principal: Principal) async throws -> ConflictDetail?

    /// Every change received for a record, with its conflicts' resolutions; nil when absent or out of scope.
    func history(table: String, id: String, principal: Principal) async throws -> RecordHistory?

    /// Calls `body` with every field change of the audit trail that `filter` selects, oldest first.
    func exportAudit(_ filter: AuditFilter, _ body: @escaping @Sendable (AuditFieldChange) throws -> Void) async throws
}

/// What a store did with a push.
public struct PushOutcome: Sendable, Equatable {
    /// The greatest sequence number applied for the replica.
    public var acked: HLC
    /// Records applied by this request.
    public var applied: Int
    /// Conflicts logged by this request.
    public var conflicts: Int
}

/// One page of a pull.
public struct PullBatch: Sendable, Equatable {
    /// The records, grouped by table.
    public var groups: [RecordGroup]
    /// The cursor after the page, for every site in scope.
    public var cursor: [String: Int64]
    /// Whether more records wait.
    public var more: Bool
}
