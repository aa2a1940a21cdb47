import ArgumentParser
import CommandLineOutput
import Foundation
import SiteSyncCore
import SiteSyncRules

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage people's accounts: who may sign in on a laptop or on the monitoring page, with which role, at which sites.",
        discussion: """
            Accounts are never deleted, so a username is never reused: deactivate an account instead. Every change \
            is kept in the audit trail with the operator who made it (`sitesync-server audit accounts`).
            """,
        subcommands: [Add.self, List.self, Deactivate.self, Reactivate.self, Password.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a person. The initial password is read from standard input (or --password-file), never from the arguments.",
            discussion: """
                Roles: coordinator (enters and corrects its sites' records, resolves their conflicts), investigator (the \
                same; signing records is not built yet), data-manager (resolves conflicts, at its sites or at every site with \
                --site '*'), monitor (reads; the monitoring page). A password has at least 12 characters.
                """
        )

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "2 to 64 lowercase letters, digits, '.', '_' or '-'; never reused.")
        var username: String

        @Option(help: "The person's full name, as the audit trail shows it.")
        var name: String

        @Option(help: "coordinator, investigator, data-manager or monitor.")
        var role: PersonRole

        @Option(name: .customLong("site"), help: "A site the person works at (repeat for several), or '*' for every site (data managers, monitors).")
        var sites: [String] = []

        @Option(name: .customLong("password-file"), help: "Read the password from the first line of this file (- for standard input).")
        var passwordFile: String?

        func validate() throws {
            try refusalsAsValidation {
                try AccountRules.checkUsername(username)
                _ = try AccountRules.checkFullName(name)
                _ = try AccountRules.checkSites(sites, role: role)
            }
        }

        func run() async throws {
            let password = try PasswordInput.read(file: passwordFile, prompt: "Password for \(username): ", confirm: true)
            let hash = try passwordHash(password, username: username)
            let change = AccountChange.create(fullName: name, role: role, sites: sites, passwordHash: hash)
            let account = try await database.changeAccount(username, change)
            print("Added \(account.username) (\(TextRules.escapingControls(account.fullName))), \(account.role.rawValue) at \(account.sitesText).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every account, deactivated ones included. No password or digest is shown.")

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "One JSON object per account.")
        var json = false

        func run() async throws {
            let accounts = try await database.withStore { store in try await store.accounts() }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for account in accounts { print(String(decoding: try encoder.encode(AccountListing(account)), as: UTF8.self)) }
                return
            }
            var rows = [["username", "name", "role", "sites", "state", "created", "last sign-in"]]
            for account in accounts {
                rows.append([
                    account.username, account.fullName, account.role.rawValue, account.sitesText, account.state.rawValue, account.createdAt,
                    account.lastSignInAt ?? "never",
                ])
            }
            print(Table(rows: rows).render(header: false))
            print("\(accounts.count) account\(accounts.count == 1 ? "" : "s")")
        }
    }

    struct Deactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a person from signing in, on the server at once and on each laptop at its next sync.",
            discussion: "The person's sign-in on a laptop ends at that laptop's next sync; what they recorded before stays."
        )

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The account's username.")
        var username: String

        @Option(help: "Why; the audit trail keeps it.")
        var reason: String

        func run() async throws {
            try await database.changeAccount(username, .deactivate(reason: reason))
            print("Deactivated \(username).")
        }
    }

    struct Reactivate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a deactivated person sign in again, with the password the account had.")

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The account's username.")
        var username: String

        func run() async throws {
            try await database.changeAccount(username, .reactivate)
            print("Reactivated \(username).")
        }
    }

    struct Password: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a person's password (an administrator's reset), read from standard input or --password-file.",
            discussion: "The old password stops working on the server at once, and on each laptop at its next sync."
        )

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The account's username.")
        var username: String

        @Option(name: .customLong("password-file"), help: "Read the password from the first line of this file (- for standard input).")
        var passwordFile: String?

        func run() async throws {
            let username = username
            let exists = try await database.withStore { store in try await store.account(username: username) != nil }
            guard exists else {
                throw CommandFailure("No account is named \(TextRules.brief(username, maxBytes: 64)); `sitesync-server user list` shows them.")
            }
            let password = try PasswordInput.read(file: passwordFile, prompt: "New password for \(username): ", confirm: true)
            let change = AccountChange.resetPassword(passwordHash: try passwordHash(password, username: username))
            try await database.changeAccount(username, change)
            print("Set a new password for \(username).")
        }
    }
}

/// An account as `user list --json` prints it.
struct AccountListing: Encodable {
    var username: String
    var name: String
    var role: String
    var sites: [String]
    var state: String
    var createdAt: String
    var passwordChangedAt: String
    var lastSignInAt: String?
    var deactivationReason: String?

    init(_ account: Account) {
        (username, name, role, sites, state) = (account.username, account.fullName, account.role.rawValue, account.sites, account.state.rawValue)
        (createdAt, passwordChangedAt, lastSignInAt, deactivationReason) = (
            account.createdAt, account.passwordChangedAt, account.lastSignInAt, account.deactivationReason
        )
    }

    enum CodingKeys: String, CodingKey {
        case username, name, role, sites, state
        case createdAt = "created_at"
        case passwordChangedAt = "password_changed_at"
        case lastSignInAt = "last_sign_in_at"
        case deactivationReason = "deactivation_reason"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(username, forKey: .username)
        try container.encode(name, forKey: .name)
        try container.encode(role, forKey: .role)
        try container.encode(sites, forKey: .sites)
        try container.encode(state, forKey: .state)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(passwordChangedAt, forKey: .passwordChangedAt)
        try container.encode(lastSignInAt, forKey: .lastSignInAt)
        try container.encode(deactivationReason, forKey: .deactivationReason)
    }
}

extension DatabaseOptions {
    /// Applies `change` to the account `username` now, as the operator running the command; a
    /// refusal becomes the command's failure, its message alone.
    @discardableResult
    func changeAccount(_ username: String, _ change: AccountChange) async throws -> Account {
        try await withStore { store in
            try await refusalsAsFailures { try await store.changeAccount(username, change, at: Date().formatted(.iso8601), by: OperatingUser.name) }
        }
    }
}

extension Account {
    /// The sites as a list for people: `S01, S02`, or `*`.
    var sitesText: String { sites.joined(separator: ", ") }
}

extension PersonRole: ExpressibleByArgument {}

/// The scrypt digest of a new password, after the password rules.
func passwordHash(_ password: String, username: String) throws -> String {
    do {
        try AccountRules.checkPassword(password, username: username)
    } catch {
        throw CommandFailure(error.message)
    }
    return try PasswordHash(password: password).encoded
}

/// A command that failed for a reason its message names; exits 1.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Runs `body`, whose refusals become ``CommandFailure``s: their message, without the code.
func refusalsAsFailures<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let refusal as SyncRefusal {
        throw CommandFailure(refusal.message)
    }
}

/// Runs `body`, whose refusals become the argument parser's validation errors (with the usage).
func refusalsAsValidation(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let refusal as SyncRefusal {
        throw ValidationError(refusal.message)
    }
}
