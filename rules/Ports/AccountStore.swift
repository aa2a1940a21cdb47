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

    /// Registers `key` for its person on its replica, unless registered already, and records the
    /// sign-in on the account; refuses a key registered to another person or replica.
    func recordSignIn(_ key: PersonKey, at time: String) async throws

    /// The keys registered on `replica`, oldest first.
    func personKeys(replica: String) async throws -> [PersonKey]

    /// Every registered key, oldest first.
    func personKeys() async throws -> [PersonKey]

    /// The registered keys among `ids`, in no particular order.
    func personKeys(ids: [String]) async throws -> [PersonKey]
}

/// A person's public signing key as the server registered it at the person's first sign-in on a
/// laptop. Never deleted: the audit trail's signatures are checked against it.
public struct PersonKey: Sendable, Equatable {
    /// ``PersonKeyID/of(publicKey:)``.
    public var keyID: String
    public var username: String
    /// The laptop the person signed in on.
    public var replica: String
    /// The Ed25519 public key, 32 bytes in base64.
    public var publicKey: String
    /// ISO 8601, UTC.
    public var registeredAt: String

    public init(keyID: String, username: String, replica: String, publicKey: String, registeredAt: String) {
        (self.keyID, self.username, self.replica, self.publicKey, self.registeredAt) = (keyID, username, replica, publicKey, registeredAt)
    }

    /// The `person_keys` columns a key is read from, in both stores, in this order.
    package static let columns = "key_id, username, replica_id, public_key, registered_at"

    package init?(cells: [String?]) {
        guard cells.count == 5, let id = cells[0], let username = cells[1], let replica = cells[2], let key = cells[3], let at = cells[4] else {
            return nil
        }
        self.init(keyID: id, username: username, replica: replica, publicKey: key, registeredAt: at)
    }

    package var cells: [String?] { [keyID, username, replica, publicKey, registeredAt] }

    /// Refuses `stored`, the key already registered under this key's id, unless it is this key
    /// for the same person and laptop (a sign-in repeated).
    package func check(against stored: PersonKey) throws(SyncRefusal) {
        guard stored.username == username, stored.replica == replica, stored.publicKey == publicKey else {
            throw SyncRefusal.forbidden("This signing key is registered to another person or laptop; nothing was written.")
        }
    }
}
