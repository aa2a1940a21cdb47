/// A laptop's request to register its replica id with the server: `POST /v1/replicas`, protocol v1.
///
/// Sent with an enrolment token (a `site` or `reviewer` token from `sitesync-server token create`),
/// which may enrol any number of laptops. The answer is the replica's own credential: from then on
/// the laptop syncs with it, and the server refuses any push or pull that names another replica.
public struct EnrolRequest: Codable, Sendable, Equatable {
    /// The replica id to register, generated on the laptop (so that changes made before enrolment
    /// keep their stamps); nil asks the server to issue one.
    public var replica: String?
    /// The replica's user, for the credential's label.
    public var user: String

    /// Creates an enrolment request.
    public init(replica: String?, user: String) {
        self.replica = replica
        self.user = user
    }
}

/// The server's answer to an enrolment: the replica id and its own credential, shown once.
public struct EnrolResponse: Codable, Sendable, Equatable {
    /// The registered replica id.
    public var replica: String
    /// The replica's bearer credential, `ssr_` and 64 hex digits; the server keeps its digest only.
    public var token: String
    /// The site the replica records, or `*` for a reviewer.
    public var site: String
    /// The greatest sequence number the server has applied under this id: 0 for a new replica; for
    /// a replica that synced before replica credentials existed, what it pushed then.
    public var acked: HLC
    /// The server's clock.
    public var hlc: HLC

    /// Creates an enrolment answer.
    public init(replica: String, token: String, site: String, acked: HLC, hlc: HLC) {
        self.replica = replica
        self.token = token
        self.site = site
        self.acked = acked
        self.hlc = hlc
    }
}
