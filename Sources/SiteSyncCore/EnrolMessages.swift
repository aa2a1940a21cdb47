/// A laptop's request to register its replica id with the server: `POST /v1/replicas`, protocol v1.
///
/// Sent with an enrolment token (a `site` or `reviewer` token from `sitesync-server token create`),
/// which may enrol any number of laptops. It registers the replica's own credential, a secret the
/// laptop generated and keeps: from then on the laptop syncs with it, and the server refuses any
/// push or pull that names another replica. The server stores its digest only.
///
/// Sending the same request again (an answer lost) succeeds again; the same replica id with
/// another credential (another laptop, or a copy of this one's file) is `409 replica_taken`.
public struct EnrolRequest: Codable, Sendable, Equatable {
    /// The replica id to register, generated on the laptop (so that changes made before enrolment
    /// keep their stamps); nil asks the server to issue one.
    public var replica: String?
    /// The replica's user, for the credential's label.
    public var user: String
    /// The replica's own credential: `ssr_` and 64 hex digits (``Credential/generate(prefix:)``).
    public var credential: String

    /// Creates an enrolment request.
    public init(replica: String?, user: String, credential: String) {
        self.replica = replica
        self.user = user
        self.credential = credential
    }
}

/// The server's answer to an enrolment.
public struct EnrolResponse: Codable, Sendable, Equatable {
    /// The registered replica id.
    public var replica: String
    /// The site the replica records, or `*` for a reviewer.
    public var site: String
    /// The greatest sequence number the server has applied under this id: 0 for a new replica; for
    /// a replica that synced before replica credentials existed, what it pushed then.
    public var acked: HLC
    /// The server's clock.
    public var hlc: HLC

    /// Creates an enrolment answer.
    public init(replica: String, site: String, acked: HLC, hlc: HLC) {
        self.replica = replica
        self.site = site
        self.acked = acked
        self.hlc = hlc
    }
}
