import SiteSyncCore

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
    package static let columns = "hash, role, site_id, replica_id, label, created_at, expires_at, revoked_at, last_used_at"

    /// ``columns`` of the table named `alias` in a join.
    package static func columns(of alias: String) -> String {
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
