import SiteSyncCore

/// People's accounts (`sitesync-server user …`): never deleted, every change kept as an
/// ``AccountEvent`` in the same transaction.
public protocol AccountStore: Sendable {
    /// The account named `username`; nil when there is none.
    func account(username: String) async throws -> Account?

    /// Every account, by username.
    func accounts() async throws -> [Account]

    /// Applies `change` to the account named `username` as stored, in one transaction with the
    /// event that records it (``AccountChange/applied(to:username:at:by:)`` decides both, and
    /// refuses a change that does not apply); returns the account after it.
    func changeAccount(_ username: String, _ change: AccountChange, at time: String, by actor: String) async throws -> Account

    /// Every account event, oldest first.
    func accountEvents() async throws -> [AccountEvent]
}
