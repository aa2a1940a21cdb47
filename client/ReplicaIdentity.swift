import Foundation
import SiteSyncCore

/// Who a replica is: its random id, the site it records (or `*` for a reviewer), its user and server.
public struct ReplicaIdentity: Sendable, Equatable {
    /// Random id of this replica, generated at `init`.
    public var replicaID: String
    /// The site this replica records, or `*` for a reviewer replica that sees every site.
    public var site: String
    /// The user recorded on every change made here.
    public var user: String
    /// The sync server.
    public var serverURL: URL
    /// The bearer token presented to the server: the enrolment token until the server has
    /// registered the replica, then the replica's own credential.
    public var token: String
    /// Whether the server has registered this replica id and issued its own credential.
    public var isEnrolled: Bool
    /// The certificate authorities (PEM) trusted for the server's HTTPS certificate instead of the
    /// system's, for a server with a private CA; nil for the system's.
    public var certificateAuthority: String?

    /// Creates an identity.
    public init(replicaID: String, site: String, user: String, serverURL: URL, token: String, isEnrolled: Bool = false) {
        self.replicaID = replicaID
        self.site = site
        self.user = user
        self.serverURL = serverURL
        self.token = token
        self.isEnrolled = isEnrolled
    }

    /// Whether this replica sees every site.
    public var isReviewer: Bool { site == SiteID.all }

}
