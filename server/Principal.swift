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
public struct Principal: Sendable, Equatable {
    /// The token's role.
    public var role: Role
    /// The site of a `site` token.
    public var site: String?

    /// Creates a principal.
    public init(role: Role, site: String?) {
        self.role = role
        self.site = site
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
}
