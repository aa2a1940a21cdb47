import ArgumentParser
import CommandLineOutput
import Foundation
import Logging
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncSQLite
import SiteSyncSQLiteStore
import SiteSyncServer
import TrialRecords

@main
struct SiteSyncServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitesync-server",
        abstract: "The SiteSync central sync server.",
        subcommands: [Serve.self, Token.self, User.self, Replicas.self, Audit.self, Store.self]
    )
}

/// Options shared by every subcommand that opens the server database.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The server's store: a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE), or the path of an SQLite file.",
            discussion: "Default: $SITESYNC_DATABASE_URL, else ./sitesync-server.sqlite. Either is created (SQLite) and migrated when needed."
        )
    )
    var database: String?

    /// The store named by `--database`, the environment, or the default file.
    var location: String {
        database ?? ProcessInfo.processInfo.environment["SITESYNC_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "sitesync-server.sqlite"
    }

    var isPostgres: Bool { PostgresSyncStore.isURL(location) }

    /// The connection pool's own log for a command's short run: errors only. (A pool asked for a
    /// connection a moment before its `run()` starts says so at `warning`.)
    static let quiet: Logger = {
        var logger = Logger(label: "sitesync.postgres")
        logger.logLevel = .error
        return logger
    }()

    /// Opens and migrates the store, runs `body` with it, and closes it: for the commands that are
    /// not the server.
    func withStore<T: Sendable>(_ body: @Sendable (any SyncStore) async throws -> T) async throws -> T {
        guard isPostgres else { return try await body(try SQLiteSyncStore(path: location, schema: TrialSchema.current)) }
        let store = try PostgresSyncStore(url: location, schema: TrialSchema.current, logger: Self.quiet)
        return try await store.withRunning {
            try await store.migrate()
            return try await body(store)
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the sync server.")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind.")
    var port = 8080

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain (the server's certificate first): serve HTTPS.")
    var tlsCertificate: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Flag(
        name: .customLong("insecure-http"),
        help: "Serve plain HTTP on a non-loopback --host: only behind a proxy that terminates TLS (docs/DEPLOYMENT.md)."
    )
    var insecureHTTP = false

    @Option(name: .customLong("max-body-bytes"), help: "Largest request body accepted, in bytes.")
    var maximumBodyBytes = 4 * 1024 * 1024

    @Option(name: .customLong("max-enrolments-per-token"), help: "Laptops one enrolment token may enrol; then a new token is needed.")
    var maximumEnrolmentsPerToken = 50

    @Option(name: .customLong("max-clock-skew"), help: "Seconds a push may be stamped ahead of the server's clock.")
    var maximumClockSkew = 60

    @Option(
        name: .customLong("max-pull-wait"),
        help: "Seconds a pull that asks to wait for changes is held at most; 0 answers every pull at once."
    )
    var maximumPullWait = 30

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Option(name: .customLong("log-format"), help: "text, or json: one JSON object per line, each request's with its request_id.")
    var logFormat = LogFormat.text

    @Option(
        name: .customLong("metrics-port"),
        help:
            "Also serve /metrics without a token on this port of 127.0.0.1, for a collector on this machine. Without it, /metrics on the main port takes a metrics or admin token."
    )
    var metricsPort: Int?

    @Option(name: .customLong("stale-after"), help: "The monitoring page marks a laptop stale after this long without a completed sync: 3d, 12h.")
    var staleAfter = TimeSpan("3d")!

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    /// Fault injection for the tests of several instances: each push on PostgreSQL waits a random
    /// time up to this many milliseconds between its writes and its commit, holding its locks.
    @Option(name: .customLong("fault-commit-delay-ms"), help: .hidden)
    var faultCommitDelay = 0

    /// Fault injection for the same tests: this percentage of pushes on PostgreSQL are rolled back
    /// after their writes, answered `503 unavailable` as a lost database connection would be.
    @Option(name: .customLong("fault-abort-percent"), help: .hidden)
    var faultAbortPercent = 0

    func validate() throws {
        guard (0...10_000).contains(faultCommitDelay) else { throw ValidationError("--fault-commit-delay-ms must be between 0 and 10000.") }
        guard (0...100).contains(faultAbortPercent) else { throw ValidationError("--fault-abort-percent must be between 0 and 100.") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535.") }
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be between 0 and 65535.") }
        guard (tlsCertificate == nil) == (tlsKey == nil) else { throw ValidationError("Give --tls-cert and --tls-key together.") }
        if tlsCertificate == nil, !insecureHTTP, !ServerConfiguration.isLoopback(host) {
            throw ValidationError(
                "Refusing to serve plain HTTP on \(host): tokens and patient data would cross the network in cleartext. "
                    + "Give --tls-cert and --tls-key, or --insecure-http when a proxy in front terminates TLS."
            )
        }
        guard maximumBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024.") }
        guard maximumClockSkew >= 1 else { throw ValidationError("--max-clock-skew must be at least 1 second.") }
        guard (0...PullRequest.maximumWait).contains(maximumPullWait) else {
            throw ValidationError("--max-pull-wait must be between 0 and \(PullRequest.maximumWait) seconds.")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical.")
        }
    }

    func run() async throws {
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.databasePath = database.location
        configuration.host = host
        configuration.port = port
        configuration.maximumBodySize = maximumBodyBytes
        configuration.maximumEnrolmentsPerToken = maximumEnrolmentsPerToken
        configuration.maximumClockSkew = .seconds(maximumClockSkew)
        configuration.maximumPullWait = .seconds(maximumPullWait)
        configuration.metricsPort = metricsPort
        configuration.staleAfter = .seconds(staleAfter.seconds)
        configuration.monitorAlerts = MonitorAlerts(tables: Safety.monitorTables, alerts: Safety.monitorAlerts)
        // Plain HTTP off loopback is served only behind a proxy that terminates TLS: browsers reach the page over HTTPS.
        configuration.secureCookies = insecureHTTP
        if let tlsCertificate, let tlsKey {
            do {
                configuration.tls = try ServerConfiguration.tls(certificateFile: tlsCertificate, keyFile: tlsKey)
            } catch let error as TLSFileError {
                throw ValidationError(error.message)
            }
        }
        if logFormat == .json { LoggingSystem.bootstrap(JSONLogHandler.init) }
        var logger = Logger(label: "sitesync.server")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        guard database.isPostgres else {
            // Held while this process serves the file: `store copy` refuses a file being served.
            guard let serving = try ServingLock.acquire(database.location, exclusive: false) else {
                throw ValidationError(
                    "\(database.location) is being copied (`store copy` holds \(ServingLock.lockPath(database.location))); serve it when the copy ends.")
            }
            defer { withExtendedLifetime(serving) {} }
            try await buildApplication(configuration, logger: logger).runService()
            return
        }
        // Migrated before the server listens; several instances starting at once wait for one another.
        let migrating = try PostgresSyncStore(url: database.location, schema: configuration.schema, logger: DatabaseOptions.quiet)
        try await migrating.withRunning { try await migrating.migrate() }
        let (delay, abort) = (faultCommitDelay, faultAbortPercent)
        var faults: (@Sendable () async throws -> Void)?
        if delay > 0 || abort > 0 {
            faults = {
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...delay)))
                if Int.random(in: 0..<100) < abort {
                    throw StorageError(.unavailable, code: "fault", message: "push rolled back by --fault-abort-percent")
                }
            }
        }
        let store = try PostgresSyncStore(url: database.location, schema: configuration.schema, logger: logger, beforeCommit: faults)
        try await buildApplication(configuration, store: store, logger: logger, services: [store]).runService()
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Manage bearer tokens.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token and print it alone on stdout; only its digest is stored.")

        @OptionGroup var database: DatabaseOptions

        @Option(
            help:
                "site (a laptop's enrolment: one site's records), reviewer (every site, resolves conflicts), monitor (reads one site with --site, or every site), metrics (/metrics) or admin (tokens)."
        )
        var role: Role

        @Option(help: "The site of a site token or of a site's monitor, for example S01.")
        var site: String?

        @Option(help: "A note saying whose token it is.")
        var label: String?

        @Option(name: .customLong("expires-in"), help: "Refuse the token after this long: a number and d, h or m (90d, 12h). Default: never.")
        var expiresIn: TimeSpan?

        func validate() throws {
            if role == .site, site == nil { throw ValidationError("A site token needs --site, for example --site S01.") }
            if role != .site, role != .monitor, site != nil { throw ValidationError("A \(role.rawValue) token covers every site; do not give --site.") }
        }

        func run() async throws {
            let expiresAt = expiresIn.map { Date().addingTimeInterval(TimeInterval($0.seconds)) }
            let token = try await database.withStore { [role, site, label] store in
                try await Tokens.create(in: store, role: role, site: site, label: label, expiresAt: expiresAt)
            }
            print(token)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every token: enrolment and admin tokens, and each replica's own credential. No secret is shown.",
            discussion: "ID is the start of the token's SHA-256 digest, which reveals nothing of the token; `token revoke ID` takes it."
        )

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "One JSON object per token.")
        var json = false

        func run() async throws {
            let tokens = try await database.withStore { store in try await store.tokens() }
            let now = Date().formatted(.iso8601)
            func state(_ token: StoredToken) -> String {
                if token.revokedAt != nil { return "revoked" }
                return token.refusal(at: now) == nil ? "active" : "expired"
            }
            if json {
                for token in tokens {
                    let object: [String: String?] = [
                        "id": token.id, "role": token.role.rawValue, "site": token.site, "replica": token.replica, "label": token.label,
                        "created_at": token.createdAt, "expires_at": token.expiresAt, "revoked_at": token.revokedAt,
                        "last_used_at": token.lastUsedAt, "state": state(token),
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object.mapValues { $0 ?? NSNull() as Any }, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                }
                return
            }
            var rows = [["id", "role", "site", "replica", "label", "state", "created", "expires", "last used"]]
            for token in tokens {
                rows.append([
                    token.id, token.role.rawValue, token.site ?? "*", token.replica ?? "", token.label ?? "", state(token), token.createdAt,
                    token.expiresAt ?? "never", token.lastUsedAt ?? "never",
                ])
            }
            print(Table(rows: rows).render(header: false))
            print("\(tokens.count) token\(tokens.count == 1 ? "" : "s")")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke tokens: every instance refuses them from their next request.",
            discussion: """
                Give a token's ID from `token list` (at least 8 of its characters), or --replica to revoke a \
                laptop's own credential, for a lost or stolen laptop. Revoking an enrolment token does not revoke \
                the credentials of the replicas enrolled with it.
                """
        )

        @OptionGroup var database: DatabaseOptions

        @Argument(help: "The token's ID, or its first 8 or more characters.")
        var id: String?

        @Option(help: "Revoke the credential of this replica instead.")
        var replica: String?

        func validate() throws {
            guard (id == nil) != (replica == nil) else { throw ValidationError("Give a token ID or --replica, one of them.") }
            if let id, id.count < 8 || !id.allSatisfy(\.isHexDigit) { throw ValidationError("A token ID is at least 8 hex digits, as `token list` shows it.") }
        }

        func run() async throws {
            let (id, replica) = (id?.lowercased(), replica)
            let message = try await database.withStore { store -> String in
                let matching = try await store.tokens().filter { token in
                    if let id { return token.hash.hasPrefix(id) }
                    return token.replica == replica
                }
                let name = id.map { "ID \($0)" } ?? "replica \(replica ?? "")"
                guard !matching.isEmpty else { throw ValidationError("No token has \(name); `sitesync-server token list` shows them.") }
                guard matching.count == 1 else { throw ValidationError("\(matching.count) tokens have \(name); give more of the ID.") }
                let token = matching[0]
                let revoked = try await store.revokeTokens(hashes: [token.hash], at: Date().formatted(.iso8601))
                return revoked == 1
                    ? "Revoked token \(token.id) (\(token.role.rawValue)\(token.replica.map { ", replica \($0)" } ?? ""))."
                    : "Token \(token.id) was revoked already."
            }
            print(message)
        }
    }
}

extension Role: ExpressibleByArgument {}

struct Replicas: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Laptops and their freshness.",
        subcommands: [List.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every enrolled laptop with its last completed sync and what it last reported.",
            discussion: """
                A laptop reports its pending changes, build, schema version, clock and user with each sync. CLOCK is its \
                clock minus the server's. A laptop that never synced counts its age from its enrolment. Laptops whose \
                credential is revoked are not listed.
                """
        )

        @OptionGroup var database: DatabaseOptions

        @Option(help: "Only this site's laptops.")
        var site: String?

        @Option(help: "Only laptops without a completed sync for longer than this: 3d, 12h, 30m.")
        var stale: TimeSpan?

        @Flag(help: "One JSON object per laptop.")
        var json = false

        func validate() throws {
            if let site, !SiteID.isValid(site) { throw ValidationError("--site must be a site id: \(SiteID.rule).") }
        }

        func run() async throws {
            let now = Date()
            var laptops = try await database.withStore { [site] store in try await store.replicaFreshness(site: site) }
            if let stale { laptops = laptops.filter { $0.isStale(after: .seconds(stale.seconds), at: now) } }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                for laptop in laptops { print(String(decoding: try encoder.encode(laptop), as: UTF8.self)) }
                return
            }
            var rows = [["replica", "site", "user", "last sync", "age", "pending", "build", "schema", "clock"]]
            for laptop in laptops {
                let report = laptop.report
                rows.append([
                    laptop.replica, laptop.site, report?.user ?? "", report?.lastSyncAt ?? "never",
                    laptop.secondsSinceLastSeen(at: now).map(describeDuration) ?? "",
                    report.map { String($0.pending) } ?? "", report?.build ?? "", report.map { String($0.schemaVersion) } ?? "",
                    report.map { Self.offset($0.clockOffsetMilliseconds) } ?? "",
                ])
            }
            print(Table(rows: rows).render(header: false))
            print("\(laptops.count) laptop\(laptops.count == 1 ? "" : "s")\(stale.map { " without a completed sync for more than \($0)" } ?? "")")
        }

        /// A clock offset in seconds, signed, to the tenth.
        static func offset(_ milliseconds: Int64) -> String {
            let tenths = (Double(milliseconds) / 100).rounded()
            return tenths == 0 ? "0.0s" : String(format: "%+.1fs", tenths / 10)
        }
    }
}

struct Store: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Move the server's data between stores.", subcommands: [Copy.self])

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy an SQLite server database into an empty PostgreSQL store.",
            discussion: """
                Tokens, replicas, site sequences, records with their stamps, conflicts and the audit trail are \
                copied as they are, from one snapshot of the file into one transaction, so laptops continue \
                syncing from where they were. It refuses a file a server is serving (each server holds the \
                file's FILE-serving lock): stop the servers on the SQLite file first; then start the servers \
                on PostgreSQL (docs/DEPLOYMENT.md).
                """
        )

        @Option(help: "The SQLite server database to copy.")
        var from: String

        @Option(help: "The PostgreSQL database to copy into: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE. It must hold no data.")
        var to: String

        func validate() throws {
            guard FileManager.default.fileExists(atPath: from) else { throw ValidationError("--from: no file \(from).") }
            guard PostgresSyncStore.isURL(to) else { throw ValidationError("--to must be a postgres:// URL.") }
        }

        func run() async throws {
            // Held for the whole copy: no server serves the file while it is read.
            guard let copying = try ServingLock.acquire(from, exclusive: true) else {
                throw ValidationError(
                    "A server is serving \(from) (it holds \(ServingLock.lockPath(from))): stop every server on it first, so that no push lands after the copy; nothing was copied."
                )
            }
            defer { withExtendedLifetime(copying) {} }
            let source = try SQLiteSyncStore(path: from, schema: TrialSchema.current)
            let target = try PostgresSyncStore(url: to, schema: TrialSchema.current, logger: DatabaseOptions.quiet)
            let counts = try await target.withRunning { try await StoreCopy.copy(from: source, to: target) }
            print("Copied \(counts).")
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit trail.", subcommands: [Export.self, Accounts.self, Keys.self, Verify.self])

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case csv, jsonl
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the audit trail for an inspector: one line per field change received, oldest first.",
            discussion: """
                Each line says which record and field changed, from which value to which, who made the change, \
                where (site and replica), when (the laptop's time and the server's receipt), why (the reason for \
                change, or the conflict resolution), and the conflict it caused. docs/AUDIT.md describes every \
                column. Values are JSON fragments in CSV, so types survive: "text", 3, null.
                """
        )

        @OptionGroup var database: DatabaseOptions

        @Option(help: "Only this site.")
        var site: String?

        @Option(help: "Only changes received on or after this date (YYYY-MM-DD) or time (ISO 8601, UTC).")
        var since: String?

        @Option(help: "Only this table, e.g. adverse_events.")
        var table: String?

        @Option(name: .customLong("record"), help: "Only this record id.")
        var record: String?

        @Option(help: "csv or jsonl.")
        var format: Format

        func validate() throws {
            if let table, (try? TrialSchema.current.table(table)) == nil {
                throw ValidationError("--table: no table \(table); the tables are \(TrialSchema.current.tables.map(\.name).joined(separator: ", ")).")
            }
            if let record {
                do {
                    try TableSchema.conflicts.validate(id: record)
                } catch {
                    throw ValidationError("--record must be 1 to 64 printable characters without spaces.")
                }
            }
            if let since, !(ColumnSchema.isCalendarDate(String(since.prefix(10))) && (since.count == 10 || since.dropFirst(10).first == "T")) {
                throw ValidationError("--since must be a date YYYY-MM-DD or an ISO 8601 time such as 2026-11-25T10:00:00Z.")
            }
            if let site, !SiteID.isValid(site) { throw ValidationError("--site: \(SiteID.rule).") }
        }

        func run() async throws {
            let output = AuditWriter(format: format)
            output.header()
            let filter = AuditFilter(site: site, since: since, table: table, record: record)
            try await database.withStore { store in
                try await store.withAuditTrail(filter) { trail in
                    for try await change in trail { try output.write(change) }
                }
            }
            output.flush()
        }
    }
}

extension Audit {
    struct Accounts: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the accounts' part of the audit trail: every account added, deactivated, reactivated or given a new password, oldest first.",
            discussion:
                "Each line says when, whose account, what happened, which operator did it (their login on the server's machine), and why. No password or digest is ever in it."
        )

        @OptionGroup var database: DatabaseOptions

        @Option(help: "csv or jsonl.")
        var format: Format

        func run() async throws {
            let events = try await database.withStore { store in try await store.accountEvents() }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var lines: [String] = format == .csv ? [AccountEvent.csvHeader.map(AuditWriter.csvCell).joined(separator: ",")] : []
            for event in events {
                switch format {
                case .csv: lines.append(event.csvFields.map(AuditWriter.csvCell).joined(separator: ","))
                case .jsonl: lines.append(String(decoding: try encoder.encode(event), as: UTF8.self))
                }
            }
            let end = format == .csv ? "\r\n" : "\n"
            FileHandle.standardOutput.write(Data(lines.map { $0 + end }.joined().utf8))
        }
    }
}

extension Audit {
    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every person's public signing key, oldest first: whose, on which laptop, since when.",
            discussion: "A key is registered at a person's first sign-in on a laptop and never deleted; docs/AUDIT.md says how an inspector uses them."
        )

        @OptionGroup var database: DatabaseOptions

        @Option(help: "csv or jsonl.")
        var format: Format

        func run() async throws {
            let keys = try await database.withStore { store in try await store.personKeys() }
            var lines: [String] = format == .csv ? ["key_id,username,replica,public_key,registered_at"] : []
            for key in keys {
                let cells = [key.keyID, key.username, key.replica, key.publicKey, key.registeredAt]
                switch format {
                case .csv: lines.append(cells.map(AuditWriter.csvCell).joined(separator: ","))
                case .jsonl:
                    let object = [
                        "key_id": key.keyID, "username": key.username, "replica": key.replica, "public_key": key.publicKey, "registered_at": key.registeredAt,
                    ]
                    lines.append(
                        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                }
            }
            let end = format == .csv ? "\r\n" : "\n"
            FileHandle.standardOutput.write(Data(lines.map { $0 + end }.joined().utf8))
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the audit trail's hash chains, one per site and one for the accounts; exit 1 at the first broken row.",
            discussion: """
                A row changed, deleted or inserted by hand (with sqlite3 or psql) breaks its chain: the command names the \
                first such row. Rows written by a build before accounts predate the chains: they are counted, not \
                verified. Keep the heads it prints: a later run that shows other heads for the same rows means the trail \
                was rewritten with every hash worked out again (docs/AUDIT.md).
                """
        )

        @OptionGroup var database: DatabaseOptions

        @Flag(help: "One JSON object: rows verified, rows before the chains, each chain's rows and head, the first broken row.")
        var json = false

        func run() async throws {
            let result = try await database.withStore { store in try await AuditVerification.run(store) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(result), as: UTF8.self))
            } else {
                var rows = [["chain", "rows", "head"]]
                for chain in result.chains { rows.append([chain.name, String(chain.rows), chain.head ?? "(empty)"]) }
                print(Table(rows: rows).render(header: false))
                print(
                    "Verified \(result.verified) row\(result.verified == 1 ? "" : "s") in \(result.chains.count) chain\(result.chains.count == 1 ? "" : "s").")
                if result.beforeChain > 0 {
                    print(
                        "\(result.beforeChain) row\(result.beforeChain == 1 ? " was" : "s were") written before accounts, before the chains began: kept and exported, not verifiable."
                    )
                }
            }
            if let broken = result.broken {
                FileHandle.standardError.write(
                    Data("The audit trail is broken: \(broken.table) row \(broken.id) (chain \(broken.chain)) \(broken.problem).\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}

/// Buffers export lines and writes them to standard output in blocks.
final class AuditWriter: @unchecked Sendable {
    // Used from one export at a time, which writes its lines in order.
    private let format: Audit.Format
    private var buffer = Data()
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    init(format: Audit.Format) {
        self.format = format
    }

    func header() {
        if format == .csv { append(AuditFieldChange.csvHeader.map(Self.csvCell).joined(separator: ",") + "\r\n") }
    }

    func write(_ change: AuditFieldChange) throws {
        switch format {
        case .csv: append(change.csvFields.map(Self.csvCell).joined(separator: ",") + "\r\n")
        case .jsonl: append(String(decoding: try encoder.encode(change), as: UTF8.self) + "\n")
        }
        if buffer.count > 1 << 16 { flush() }
    }

    func flush() {
        FileHandle.standardOutput.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    private func append(_ text: String) { buffer.append(contentsOf: text.utf8) }

    /// RFC 4180: quote a cell holding a comma, quote, or line break, doubling its quotes. A cell a
    /// spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
    /// return) is first prefixed with an apostrophe, which spreadsheets show as text: a user name
    /// or a reason cannot run when an inspector opens the export (docs/AUDIT.md).
    static func csvCell(_ text: String) -> String {
        var text = text
        if let first = text.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { text = "'" + text }
        // By bytes: "\r\n" is one Character, equal to neither "\r" nor "\n".
        guard text.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension TimeSpan: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
