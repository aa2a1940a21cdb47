import SiteSyncCore

/// A push committed on some instance: its replica and the sites of its records.
public struct CommittedPush: Sendable, Equatable {
    public var replica: String
    public var sites: Set<String>

    public init(replica: String, sites: Set<String>) {
        self.replica = replica
        self.sites = sites
    }

    /// `REPLICA SITE,SITE…`: replica ids and site ids hold no space or comma.
    public var payload: String { "\(replica) \(sites.sorted().joined(separator: ","))" }

    /// Reads a ``payload``; nil for one no instance of this server sends.
    public init?(payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, ReplicaID.isValid(String(parts[0])) else { return nil }
        let sites = parts[1].split(separator: ",").map(String.init)
        guard sites.allSatisfy({ SiteID.isValid($0) }) else { return nil }
        self.init(replica: String(parts[0]), sites: Set(sites))
    }
}

/// A store shared by several instances that tells each of them about the pushes the others commit
/// (PostgreSQL's `LISTEN`/`NOTIFY`), so that a pull waiting on one instance wakes for a push on
/// another. The embedded SQLite store has one instance, whose own pushes wake its pulls.
public protocol CommitFeed: Sendable {
    /// Reports every push committed, by any instance, until the task is cancelled.
    func watchCommits(_ committed: @escaping @Sendable (CommittedPush) -> Void) async throws
}
