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

/// How a laptop reaches the server for its people (docs/PROTOCOL.md, "People"); ``HTTPTransport``.
public protocol PeopleTransport: Sendable {
    /// A person's first sign-in on this laptop: checks the password, registers the person's public key.
    func signIn(_ request: SignInRequest) async throws -> SignInResponse
    /// What the server holds now of the people who signed in on this laptop.
    func peopleStatus(_ request: PeopleStatusRequest) async throws -> PeopleStatusResponse
}
