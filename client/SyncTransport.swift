import SiteSyncCore

/// How the sync engine reaches the server; ``HTTPTransport`` in production.
public protocol SyncTransport: Sendable {
    /// Registers a replica id with the server and receives the replica's own credential.
    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse
    /// Sends a batch of local changes.
    func push(_ request: PushRequest) async throws -> PushResponse
    /// Fetches the records changed after a cursor.
    func pull(_ request: PullRequest) async throws -> PullResponse
}
