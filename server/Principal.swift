import SiteSyncCore

/// What a bearer token may do.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// A site laptop: its own site's records only.
    case site
    /// A data manager or monitor: every site, and conflict resolution.
    case reviewer
    /// Token management.
    case admin
}

/// The identity behind a request's token.
///
/// A token is either an enrolment token (`replica` is nil), made by `sitesync-server token create`,
/// which enrols laptops and reads conflicts and history but cannot push or pull; or a replica's own
/// credential, issued at enrolment, which syncs as that replica only.
public struct Principal: Sendable, Equatable {
    /// The token's role.
    public var role: Role
    /// The site of a `site` token.
    public var site: String?
    /// The replica a replica credential belongs to; nil for an enrolment token.
    public var replica: String?

    /// Creates a principal.
    public init(role: Role, site: String?, replica: String? = nil) {
        self.role = role
        self.site = site
        self.replica = replica
    }

    /// Refuses the request unless this is a replica's own credential, and, when the request names
    /// a replica (a push always does, a pull may), that replica's.
    func requireReplica(_ replica: String?) throws {
        guard let own = self.replica else {
            throw ServerError.forbidden(
                "This is an enrolment token: it enrols laptops but does not sync. Sync with the replica's own credential; `sitesync sync` of this build enrols the laptop first."
            )
        }
        guard let replica, replica != own else { return }
        throw ServerError.forbidden("This credential belongs to replica \(own); it cannot sync as replica \(TextRules.brief(replica, maxBytes: 64)). Nothing was written.")
    }

    /// Whether the token may read and write records of `site`.
    public func canAccess(site: String) -> Bool {
        switch role {
        case .site: self.site == site
        case .reviewer: true
        case .admin: false
        }
    }

    /// Whether the token may sync at all.
    public var canSync: Bool { role != .admin }

    /// The sites whose records the token reads and writes: its own for a `site` token, nil (every
    /// site) for the others.
    var sites: Set<String>? {
        role == .site ? site.map { [$0] } : nil
    }
}
