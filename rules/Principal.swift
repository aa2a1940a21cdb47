import SiteSyncCore

/// What a bearer token may do.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// A site laptop: its own site's records only.
    case site
    /// A data manager or monitor: every site, and conflict resolution.
    case reviewer
    /// Token management.
    case admin
    /// A trial monitor: reads the records, conflicts and monitoring page of one site (a token
    /// made with `--site`) or of every site; cannot sync, enrol laptops or resolve conflicts.
    case monitor
    /// A metrics collector (Prometheus): scrapes `/metrics`, nothing else.
    case metrics
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
    /// The sites of a person who works at more than one, signed in to the monitoring page
    /// (``person(_:)``); nil for every token.
    public var personSites: Set<String>?

    /// Creates a principal.
    public init(role: Role, site: String?, replica: String? = nil) {
        self.role = role
        self.site = site
        self.replica = replica
    }

    /// A person signed in to the monitoring page: a monitor of their sites (one, several, or
    /// every site). The page only reads, whatever the person's role.
    public static func person(_ account: Account) -> Principal {
        if account.sites == [SiteID.all] { return Principal(role: .monitor, site: nil) }
        if account.sites.count == 1 { return Principal(role: .monitor, site: account.sites[0]) }
        var principal = Principal(role: .monitor, site: nil)
        principal.personSites = Set(account.sites)
        return principal
    }

    /// Refuses the request unless this is a replica's own credential, and, when the request names
    /// a replica (a push always does, a pull may), that replica's.
    package func requireReplica(_ replica: String?) throws {
        guard let own = self.replica else {
            throw SyncRefusal.forbidden(
                "This is an enrolment token: it enrols laptops but does not sync. Sync with the replica's own credential; `sitesync sync` of this build enrols the laptop first."
            )
        }
        guard let replica, replica != own else { return }
        throw SyncRefusal.forbidden(
            "This credential belongs to replica \(own); it cannot sync as replica \(TextRules.brief(replica, maxBytes: 64)). Nothing was written.")
    }

    /// Whether the token may read and write records of `site`.
    public func canAccess(site: String) -> Bool {
        switch role {
        case .site: self.site == site
        case .reviewer: true
        case .monitor: personSites.map { $0.contains(site) } ?? (self.site == nil || self.site == site)
        case .admin, .metrics: false
        }
    }

    /// Whether the token may sync at all.
    public var canSync: Bool { role == .site || role == .reviewer }

    /// Whether the token may read records, conflicts and histories.
    public var canRead: Bool { canSync || role == .monitor }

    /// Why a token that may not sync is refused, naming what it is for.
    package var cannotSync: SyncRefusal {
        switch role {
        case .monitor: SyncRefusal.forbidden("A monitor token reads records and conflicts; it cannot sync, enrol laptops or write.")
        case .metrics: SyncRefusal.forbidden("A metrics token reads /metrics only.")
        default: SyncRefusal.forbidden("An admin token manages tokens; it cannot sync records or enrol laptops.")
        }
    }

    /// The sites whose records the token reads: its own for a `site` token and a site's monitor,
    /// nil (every site) for the others.
    package var sites: Set<String>? {
        if let personSites { return personSites }
        return role == .site || role == .monitor ? site.map { [$0] } : nil
    }
}
