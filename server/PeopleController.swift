import Foundation
import Hummingbird
import Logging
import NIOPosix
import SiteSyncCore
import SiteSyncRules

/// People on laptops (docs/PROTOCOL.md, "People"): `POST /v1/people/sign-in`, a person's first
/// sign-in on a laptop, and `POST /v1/people/status`, what a laptop learns of its people at each sync.
///
/// Both take the laptop's own credential: a person signs in on an enrolled laptop of a site they
/// work at. A sign-in's password is checked here, against the account's scrypt digest, off the event
/// loop; wrong ones are counted per username on this instance (``LoginGuard``), on top of the
/// laptop's own lockout.
struct PeopleController {
    let store: any SyncStore
    let configuration: ServerConfiguration
    let guardrail: LoginGuard

    /// A digest worked out for unknown usernames, so that an unknown username takes as long to
    /// refuse as a wrong password.
    private static let unknownPassword = try? PasswordHash(password: "no account has this password", salt: Array(repeating: 7, count: 16))

    /// Whether `password` is the one `encoded` (an account's stored digest; nil for an unknown
    /// username) was worked out from: scrypt either way, so that both take as long. Runs on NIO's
    /// thread pool, never on the event loop or the cooperative pool.
    static func verify(_ password: String, against encoded: String?) -> Bool {
        guard let stored = encoded.flatMap(PasswordHash.init(encoded:)) else {
            _ = unknownPassword?.verifies(password)
            return false
        }
        return stored.verifies(password)
    }

    init(store: any SyncStore, configuration: ServerConfiguration) {
        self.store = store
        self.configuration = configuration
        self.guardrail = LoginGuard(maximumFailures: 10, window: .seconds(900))
    }

    func addRoutes(to group: RouterGroup<SyncRequestContext>) {
        group.post("people/sign-in", use: signIn)
        group.post("people/status", use: status)
    }

    @Sendable func signIn(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let (principal, replica) = try laptop(context)
        let message = try await request.decodeJSON(SignInRequest.self, limit: 16 * 1024)
        do {
            try AccountRules.checkUsername(message.username)
        } catch {
            throw ServerError(error)
        }
        guard let publicKey = Data(base64Encoded: message.publicKey), publicKey.count == 32 else {
            throw ServerError.validation("public_key must be an Ed25519 public key: 32 bytes in base64.")
        }
        guard message.password.utf8.count <= AccountRules.maximumPasswordBytes else { throw Self.wrongPassword }
        if let wait = guardrail.wait([message.username]) {
            context.logger.notice("person sign-in refused", metadata: ["sync.person": "\(message.username)", "sync.error": "too_many_failures"])
            throw ServerError(
                .tooManyRequests, .tooManyRequests,
                "Too many wrong passwords for \(message.username); try again in \(Int(wait.components.seconds) / 60 + 1) minutes.",
                retryAfter: Int(wait.components.seconds) + 1)
        }
        let account = try await store.account(username: message.username)
        let (encoded, password) = (account?.passwordHash, message.password)
        let matches = try await NIOThreadPool.singleton.runIfActive { Self.verify(password, against: encoded) }
        guard let account, matches else {
            guardrail.fail([message.username])
            context.logger.notice("person sign-in refused", metadata: ["sync.person": "\(message.username)", "sync.replica": "\(replica)"])
            throw Self.wrongPassword
        }
        guard account.state == .active else {
            throw ServerError.forbidden("The account \(account.username) is deactivated; ask the trial's administrator.")
        }
        try Self.requireSite(account, principal)
        guardrail.succeed(message.username)
        let key = PersonKey(
            keyID: PersonKeyID.of(publicKey: publicKey), username: account.username, replica: replica, publicKey: message.publicKey,
            registeredAt: Date().formatted(.iso8601))
        do {
            try await store.recordSignIn(key, at: key.registeredAt)
        } catch let refusal as SyncRefusal {
            throw ServerError(refusal)
        }
        context.logger.info("person signed in", metadata: ["sync.person": "\(account.username)", "sync.replica": "\(replica)"])
        return try JSONResponse.ok(
            SignInResponse(
                person: Self.info(account), keyID: key.keyID, idleTimeoutSeconds: Int(configuration.signInIdleTimeout.components.seconds),
                maximumAttempts: configuration.signInMaximumAttempts, lockoutSeconds: Int(configuration.signInLockout.components.seconds)))
    }

    @Sendable func status(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let (_, replica) = try laptop(context)
        let message = try await request.decodeJSON(PeopleStatusRequest.self, limit: 64 * 1024)
        let registered = Set(try await store.personKeys(replica: replica).map(\.username))
        var people: [PersonInfo] = []
        for username in Set(message.usernames).sorted() where registered.contains(username) {
            if let account = try await store.account(username: username) { people.append(Self.info(account)) }
        }
        return try JSONResponse.ok(PeopleStatusResponse(people: people))
    }

    /// The laptop's own credential behind the request, and its replica id.
    private func laptop(_ context: SyncRequestContext) throws -> (Principal, String) {
        let principal = try context.requirePrincipal()
        guard principal.canSync else { throw principal.cannotSync }
        guard let replica = principal.replica else {
            throw ServerError.forbidden("People sign in on an enrolled laptop, with its own credential; this is an enrolment token.")
        }
        return (principal, replica)
    }

    /// Refuses a person who does not work at the laptop's site: a site's laptop takes its site's
    /// people, a reviewer's laptop (every site) people who cover every site.
    static func requireSite(_ account: Account, _ principal: Principal) throws {
        if let site = principal.site, principal.role == .site {
            guard account.covers(site: site) else {
                throw ServerError.forbidden(
                    "\(account.username) works at \(account.sites.joined(separator: ", ")), not at \(site), this laptop's site; nothing was written.")
            }
        } else if account.sites != [SiteID.all] {
            throw ServerError.forbidden(
                "This laptop reviews every site; \(account.username) works at \(account.sites.joined(separator: ", ")) only. Sign in on a laptop of that site.")
        }
    }

    static func info(_ account: Account) -> PersonInfo {
        PersonInfo(
            username: account.username, name: account.fullName, role: account.role, sites: account.sites, state: account.state.rawValue,
            passwordChangedAt: account.passwordChangedAt)
    }

    static let wrongPassword = ServerError(.unauthorized, .signInFailed, "The username or the password is wrong.")
}
