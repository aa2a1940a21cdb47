import Foundation
import SiteSyncCore

/// A person's account on the server. Accounts are never deleted, so a username is never reused.
public struct Account: Sendable, Equatable {
    /// Whether the person may sign in.
    public enum State: String, Codable, Sendable {
        case active
        case deactivated
    }

    /// 2 to 64 of `a-z`, `0-9`, `.`, `_` and `-` (``AccountRules/checkUsername(_:)``).
    public var username: String
    /// The person's full name, as the audit trail shows it.
    public var fullName: String
    public var role: PersonRole
    /// The sites the person works at, in order; `["*"]` for every site.
    public var sites: [String]
    public var state: State
    /// The password's scrypt digest (``PasswordHash/encoded``), never the password.
    public var passwordHash: String
    /// ISO 8601, UTC, like every time below.
    public var createdAt: String
    public var passwordChangedAt: String
    public var lastSignInAt: String?
    /// Why the account was deactivated, while it is.
    public var deactivationReason: String?

    /// Creates an account value.
    public init(
        username: String, fullName: String, role: PersonRole, sites: [String], state: State, passwordHash: String, createdAt: String,
        passwordChangedAt: String, lastSignInAt: String?, deactivationReason: String?
    ) {
        (self.username, self.fullName, self.role, self.sites, self.state) = (username, fullName, role, sites, state)
        (self.passwordHash, self.createdAt, self.passwordChangedAt) = (passwordHash, createdAt, passwordChangedAt)
        (self.lastSignInAt, self.deactivationReason) = (lastSignInAt, deactivationReason)
    }

    /// Whether the account covers `site`.
    public func covers(site: String) -> Bool { sites == [SiteID.all] || sites.contains(site) }

    /// The `accounts` columns an account is read from, in both stores, in this order.
    package static let columns =
        "username, full_name, role, sites, state, password_hash, created_at, password_changed_at, last_sign_in_at, deactivation_reason"

    /// The values of ``columns``, in order, as stored.
    package var cells: [String?] {
        [
            username, fullName, role.rawValue, AccountRules.encodeSites(sites), state.rawValue, passwordHash, createdAt, passwordChangedAt,
            lastSignInAt, deactivationReason,
        ]
    }

    /// An account from the `accounts` columns, in ``columns``' order; nil when a stored role, state
    /// or site list is not one this build knows.
    package init?(cells: [String?]) {
        guard cells.count == 10, let username = cells[0], let fullName = cells[1], let role = cells[2].flatMap(PersonRole.init),
            let sites = cells[3].flatMap(AccountRules.decodeSites), let state = cells[4].flatMap(State.init), let hash = cells[5],
            let created = cells[6], let changed = cells[7]
        else { return nil }
        self.init(
            username: username, fullName: fullName, role: role, sites: sites, state: state, passwordHash: hash, createdAt: created,
            passwordChangedAt: changed, lastSignInAt: cells[8], deactivationReason: cells[9]
        )
    }
}

/// One change of an account, as the audit trail keeps it: who made it, when, and what changed
/// (never a password or its digest).
public struct AccountEvent: Sendable, Equatable, Codable {
    /// What happened.
    public enum Action: String, Codable, Sendable {
        case created
        case deactivated
        case reactivated
        case passwordReset = "password-reset"
    }

    /// ISO 8601, UTC.
    public var at: String
    public var username: String
    public var action: Action
    /// Who made the change: the operator's login on the server's machine (`sitesync-server user …`).
    public var by: String
    /// For `created`: the full name, role and sites given.
    public var fullName: String?
    public var role: PersonRole?
    public var sites: [String]?
    /// For `deactivated`: why.
    public var reason: String?

    /// Creates an event.
    public init(
        at: String, username: String, action: Action, by: String, fullName: String? = nil, role: PersonRole? = nil, sites: [String]? = nil,
        reason: String? = nil
    ) {
        (self.at, self.username, self.action, self.by) = (at, username, action, by)
        (self.fullName, self.role, self.sites, self.reason) = (fullName, role, sites, reason)
    }

    enum CodingKeys: String, CodingKey {
        case at, username, action, by, role, sites, reason
        case fullName = "full_name"
    }

    /// The columns of an event in a CSV export, in order.
    public static let csvHeader = ["at", "username", "action", "by", "full_name", "role", "sites", "reason"]

    /// The event's cells in a CSV export, in ``csvHeader``'s order; sites joined by spaces.
    public var csvFields: [String] {
        [at, username, action.rawValue, by, fullName ?? "", role?.rawValue ?? "", sites?.joined(separator: " ") ?? "", reason ?? ""]
    }

    /// The `account_events` columns an event is read from, in both stores, in this order (after `id`).
    package static let columns = "at, username, action, by_operator, full_name, role, sites, reason"

    /// An event from the `account_events` columns, in ``columns``' order.
    package init?(cells: [String?]) {
        guard cells.count == 8, let at = cells[0], let username = cells[1], let action = cells[2].flatMap(Action.init), let by = cells[3]
        else { return nil }
        self.init(
            at: at, username: username, action: action, by: by, fullName: cells[4], role: cells[5].flatMap(PersonRole.init),
            sites: cells[6].flatMap(AccountRules.decodeSites), reason: cells[7]
        )
    }

    /// The values of ``columns``, in order, as stored.
    package var cells: [String?] {
        [at, username, action.rawValue, by, fullName, role?.rawValue, sites.map(AccountRules.encodeSites), reason]
    }
}

/// A change an administrator makes to an account (`sitesync-server user …`). The password's digest
/// is worked out before the store's transaction: scrypt takes a tenth of a second on purpose.
public enum AccountChange: Sendable {
    case create(fullName: String, role: PersonRole, sites: [String], passwordHash: String)
    case deactivate(reason: String)
    case reactivate
    case resetPassword(passwordHash: String)

    /// The account after the change, given the account as stored (nil: no such username), and the
    /// event that records it; refuses a change that does not apply, naming why.
    public func applied(to current: Account?, username: String, at time: String, by actor: String) throws(SyncRefusal) -> (Account, AccountEvent) {
        var event = AccountEvent(at: time, username: username, action: .created, by: actor)
        if case .create(let fullName, let role, let sites, let hash) = self {
            try AccountRules.checkUsername(username)
            guard current == nil else {
                throw SyncRefusal(
                    .validationFailed,
                    "The username \(username) is taken: usernames are never reused, even after an account is deactivated. Choose another, or reactivate this one (sitesync-server user reactivate \(username))."
                )
            }
            let name = try AccountRules.checkFullName(fullName)
            let sites = try AccountRules.checkSites(sites, role: role)
            (event.fullName, event.role, event.sites) = (name, role, sites)
            let account = Account(
                username: username, fullName: name, role: role, sites: sites, state: .active, passwordHash: hash, createdAt: time,
                passwordChangedAt: time, lastSignInAt: nil, deactivationReason: nil
            )
            return (account, event)
        }
        guard var account = current else {
            throw SyncRefusal(.notFound, "No account is named \(TextRules.brief(username, maxBytes: 64)); `sitesync-server user list` shows them.")
        }
        switch self {
        case .create: preconditionFailure("handled above")
        case .deactivate(let reason):
            guard account.state == .active else {
                throw SyncRefusal(.validationFailed, "The account \(username) is deactivated already; nothing was written.")
            }
            let reason = try AccountRules.checkReason(reason)
            (account.state, account.deactivationReason) = (.deactivated, reason)
            (event.action, event.reason) = (.deactivated, reason)
        case .reactivate:
            guard account.state == .deactivated else {
                throw SyncRefusal(.validationFailed, "The account \(username) is active; nothing was written.")
            }
            (account.state, account.deactivationReason) = (.active, nil)
            event.action = .reactivated
        case .resetPassword(let hash):
            (account.passwordHash, account.passwordChangedAt) = (hash, time)
            event.action = .passwordReset
        }
        return (account, event)
    }
}

/// The rules accounts follow, each refusal naming what is wrong.
public enum AccountRules {
    /// The shortest password accepted, in characters.
    public static let minimumPasswordLength = 12
    /// The longest password accepted, in bytes of UTF-8: scrypt reads all of it.
    public static let maximumPasswordBytes = 1024

    /// Refuses a username that is not 2 to 64 of `a-z`, `0-9`, `.`, `_` and `-`.
    public static func checkUsername(_ username: String) throws(SyncRefusal) {
        guard Username.isValid(username) else {
            throw SyncRefusal(.validationFailed, "The username \(TextRules.quotable(username, maxBytes: 64)) is not valid: \(Username.rule).")
        }
    }

    /// Refuses a password shorter than 12 characters, longer than 1,024 bytes, holding a control
    /// character, or containing the username.
    public static func checkPassword(_ password: String, username: String) throws(SyncRefusal) {
        if password.count < minimumPasswordLength {
            throw SyncRefusal(.validationFailed, "The password is too short: at least \(minimumPasswordLength) characters, got \(password.count).")
        }
        if password.utf8.count > maximumPasswordBytes {
            throw SyncRefusal(.validationFailed, "The password is too long: at most \(maximumPasswordBytes) bytes of UTF-8.")
        }
        if password.unicodeScalars.contains(where: TextRules.isControl) {
            throw SyncRefusal(.validationFailed, "The password holds a control character (a newline, a tab, an escape); type printable characters only.")
        }
        if password.lowercased().contains(username) {
            throw SyncRefusal(.validationFailed, "The password contains the username; choose one that does not.")
        }
    }

    /// The full name, trimmed; refuses an empty one, one over 200 bytes, or one holding a control character.
    public static func checkFullName(_ name: String) throws(SyncRefusal) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 200, !trimmed.unicodeScalars.contains(where: TextRules.isControl) else {
            throw SyncRefusal(.validationFailed, "A full name is 1 to 200 bytes of printable text, as the audit trail will show it.")
        }
        return trimmed
    }

    /// A reason for deactivating, trimmed; refuses an empty one.
    public static func checkReason(_ reason: String) throws(SyncRefusal) -> String {
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw SyncRefusal(.validationFailed, "Give a reason (--reason TEXT); the audit trail keeps it.") }
        if let problem = TextRules.problem(trimmed, maxBytes: 2000) { throw SyncRefusal(.validationFailed, "The reason \(problem).") }
        return trimmed
    }

    /// The sites in order, each once; refuses none, an invalid site id, and `*` for a role that
    /// enters a site's records or beside other sites.
    public static func checkSites(_ sites: [String], role: PersonRole) throws(SyncRefusal) -> [String] {
        guard !sites.isEmpty else {
            throw SyncRefusal(.validationFailed, "Give the person's sites: --site S01 (repeat it for several sites).")
        }
        if sites.contains(SiteID.all) {
            guard role.mayCoverEverySite else {
                throw SyncRefusal(
                    .validationFailed, "A \(role.rawValue) works at named sites: give --site S01 (repeated for several), not '*'.")
            }
            guard Set(sites) == [SiteID.all] else {
                throw SyncRefusal(.validationFailed, "'*' covers every site already: give it alone, or name the sites.")
            }
            return [SiteID.all]
        }
        for site in sites where !SiteID.isValid(site) {
            throw SyncRefusal(.validationFailed, "The site \(TextRules.quotable(site, maxBytes: 40)) is not valid: \(SiteID.rule).")
        }
        return Array(Set(sites)).sorted()
    }

    /// Sites as stored: a JSON array of strings.
    package static func encodeSites(_ sites: [String]) -> String {
        JSONWriter.array(of: sites)
    }

    /// Sites as stored, read back; nil for anything but an array of strings.
    package static func decodeSites(_ text: String) -> [String]? {
        try? JSONDecoder().decode([String].self, from: Data(text.utf8))
    }
}
