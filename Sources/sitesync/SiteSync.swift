import ArgumentParser
import CommandLineOutput
import Foundation
import SiteSyncClient
import SiteSyncCore
import Synchronization
import TrialRecords

@main
struct SiteSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitesync",
        abstract: "Record trial data offline on a site laptop and sync it with the SiteSync server.",
        discussion: "Every command works on the local replica; only `sync` needs the network.",
        version: "sitesync \(SiteSyncBuild.version)",
        subcommands: [
            Init.self, Login.self, Logout.self, WhoAmI.self, Put.self, Get.self, List.self, Delete.self, Explain.self, Status.self, Sync.self,
            ClockCommand.self, Conflicts.self, History.self,
            EligibilityCommand.self, SafetyCommand.self, ImportCommand.self,
        ]
    )
}

/// The replica database every command opens.
struct ReplicaOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Path of the local replica.", discussion: "Default: $SITESYNC_DB, else ./sitesync.sqlite."))
    var db: String?

    var path: String {
        db ?? ProcessInfo.processInfo.environment["SITESYNC_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "sitesync.sqlite"
    }

    func open() throws -> Replica {
        try Replica.open(path: path, schema: TrialSchema.current)
    }

    /// What a command does with the records, which decides who may run it.
    enum Need {
        /// Reads records, conflicts, histories: anyone signed in.
        case read
        /// Enters, corrects or deletes records: coordinators and investigators.
        case write
        /// Resolves conflicts: anyone but a monitor.
        case resolve
    }

    /// Opens the replica for a command of a signed-in person whose role allows `need` at the
    /// laptop's site; refuses anyone else, naming the reason, before anything is read or written.
    /// The sign-in is extended by its idle timeout.
    func open(for need: Need) throws -> Replica {
        let replica = try open()
        let identity = try replica.requireIdentity()
        let person = try replica.requireSignedIn()
        let covers = identity.site == SiteID.all ? person.sites == [SiteID.all] : person.sites == [SiteID.all] || person.sites.contains(identity.site)
        guard covers else {
            throw ReplicaError.signInRequired(
                "\(person.username) works at \(person.sites.joined(separator: ", ")), not at this laptop's site \(identity.site). Nothing was written.")
        }
        switch need {
        case .read: break
        case .write where !person.role.entersRecords:
            throw ReplicaError.signInRequired(
                "\(person.username) is a \(person.role.rawValue): entering, correcting and deleting records needs a coordinator or an investigator (sitesync login USERNAME). Nothing was written."
            )
        case .resolve where !person.role.resolvesConflicts:
            throw ReplicaError.signInRequired(
                "\(person.username) is a \(person.role.rawValue): resolving conflicts needs a coordinator, an investigator or a data manager (sitesync login USERNAME). Nothing was written."
            )
        default: break
        }
        return replica
    }
}

/// The record a command works on.
struct RecordArguments: ParsableArguments {
    @Argument(help: "The table, e.g. subjects or adverse_events.")
    var table: String

    @Argument(help: "The record id.")
    var id: String
}

/// The `--json` flag.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set up this laptop's replica: its site, server, enrolment token and user, and enrol it with the server.",
        discussion: """
            The server registers the replica and issues it a credential of its own, which the laptop then \
            syncs with. Offline, the replica is set up all the same and enrols at its first sync.

            --rejoin gives an existing replica file a new replica id: run it when the server says the \
            file is a copy of another laptop's (replica_taken, replica_diverged). Its pending changes are \
            pushed under the new id and nothing is lost. It needs an enrolment token (--token-file): an \
            enrolled replica file keeps none, so that a copy of it, or a laptop whose credential was \
            revoked, cannot enrol itself again.
            """
    )

    @OptionGroup var replica: ReplicaOptions

    @Option(help: "The site this laptop records, e.g. S01; '*' for a reviewer laptop that sees every site.")
    var site: String?

    @Option(help: "The sync server's URL, e.g. http://127.0.0.1:8080.")
    var server: String?

    @Option(
        name: .customLong("token-file"),
        help: "Read the enrolment token from this file, or from standard input with '-' (so it is not in argv, ps or shell history)."
    )
    var tokenFile: String?

    @Option(help: ArgumentHelp("The enrolment token itself; prefer --token-file, since arguments are visible to other users in ps.", visibility: .hidden))
    var token: String?

    @Option(help: "Your name, recorded on every change made here.")
    var user: String?

    @Option(
        name: .customLong("ca-cert"),
        help: "PEM certificate of the private certificate authority that signed the server's HTTPS certificate; it alone is then trusted."
    )
    var caCertificate: String?

    @Flag(help: "Enrol this existing replica file again under a new replica id (a copied or restored file).")
    var rejoin = false

    @Flag(
        name: .customLong("insecure-http"),
        help: "Allow an http:// server that is not a loopback address: the credential and the trial's data then cross the network in clear."
    )
    var insecureHTTP = false

    func validate() throws {
        if rejoin {
            guard site == nil, server == nil, user == nil else {
                throw ValidationError("--rejoin keeps the replica's site, server and user; give only --db and --token-file.")
            }
            guard token != nil || tokenFile != nil else {
                throw ValidationError(
                    "--rejoin needs an enrolment token from the operator (--token-file FILE, or - for standard input): the replica file keeps none once enrolled."
                )
            }
        } else {
            guard site != nil, server != nil, token != nil || tokenFile != nil, user != nil else {
                throw ValidationError("Give --site, --server, --token-file and --user (or --rejoin for an existing replica).")
            }
        }
        if token != nil, tokenFile != nil { throw ValidationError("Give the token once: --token-file or --token.") }
        if let server {
            guard let url = URL(string: server), let scheme = url.scheme, ["http", "https"].contains(scheme), let host = url.host else {
                throw ValidationError("--server must be an http:// or https:// URL, e.g. http://127.0.0.1:8080.")
            }
            if scheme == "http", !insecureHTTP, !Loopback.isAddress(host) {
                throw ValidationError(
                    "--server \(server) is plain HTTP to \(host), which is not a loopback address: the credential and the trial's data would cross the network in clear. Use https://, or --insecure-http if a trusted network in between protects them."
                )
            }
        }
        if let token, token.isEmpty { throw ValidationError("--token must not be empty.") }
    }

    /// The token from --token-file (standard input for '-'), else --token: its first line, trimmed.
    private func enrolmentToken() throws -> String? {
        guard let tokenFile else { return token }
        let data: Data
        if tokenFile == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: tokenFile) else {
                throw ValidationError("Cannot read the token file \(tokenFile).")
            }
            data = contents
        }
        let text = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let token = text.trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { throw ValidationError("The token file \(tokenFile == "-" ? "(standard input)" : tokenFile) holds no token.") }
        return token
    }

    func run() async throws {
        let token = try enrolmentToken()
        var authority: String?
        if let caCertificate {
            guard let data = FileManager.default.contents(atPath: caCertificate) else {
                throw ValidationError("Cannot read the certificate authority file \(caCertificate).")
            }
            authority = String(decoding: data, as: UTF8.self)
            try HTTPTransport.checkCertificateAuthority(authority!)
        }
        let replica = try replica.open()
        let identity: ReplicaIdentity
        if rejoin {
            let old = try replica.requireIdentity()
            identity = try replica.rejoin(enrolmentToken: token!)
            print("Replica \(old.replicaID) is now replica \(identity.replicaID) at \(self.replica.path); its pending changes will be pushed under the new id.")
        } else {
            identity = try replica.initialize(site: site!, user: user!, serverURL: URL(string: server!)!, token: token!)
            print("Initialised replica \(identity.replicaID) for site \(identity.site) at \(self.replica.path).")
        }
        if let authority {
            try replica.trustCertificateAuthority(authority)
            print("The server's certificate must be signed by the authority in \(caCertificate ?? "").")
        }
        do {
            try await SyncEngine(replica: replica, transport: HTTPTransport(replica: replica), configuration: .command).enrol()
            print("Enrolled with \(identity.serverURL.absoluteString).")
        } catch let error as SyncError where error.isUnreachable {
            print("The server cannot be reached now; the replica enrols at its first sync.")
        }
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a record, or change fields of one; prints the record id.",
        discussion: """
            Example: sitesync put adverse_events subject_id=ID term='Cytokine release syndrome' grade=2. An empty value \
            (field=) clears the field.

            Changing a value that was synced already needs --reason (a reason for change, kept in the audit \
            trail): sitesync put adverse_events --id ID grade=3 --reason 'Grade corrected from source document'. \
            Filling in an empty field, or editing a value not yet synced, needs none.
            """
    )

    @OptionGroup var replica: ReplicaOptions

    @Argument(help: "The table, e.g. subjects or adverse_events.")
    var table: String

    @Option(help: "The id of the record to change; a new record gets a new id.")
    var id: String?

    @Argument(help: "FIELD=VALUE pairs.")
    var assignments: [String] = []

    @Option(help: "Why synced values change; required for them, kept in the audit trail.")
    var reason: String?

    func validate() throws {
        guard !assignments.isEmpty else { throw ValidationError("Give at least one FIELD=VALUE.") }
        if reason != nil, id == nil { throw ValidationError("--reason explains a change of an existing record: give its --id.") }
        for assignment in assignments where !assignment.contains("=") {
            throw ValidationError("'\(assignment)' is not FIELD=VALUE.")
        }
    }

    func run() throws {
        let replica = try replica.open(for: .write)
        let values = try replica.schema.table(table).parse(
            assignments.map { assignment in
                let parts = assignment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (field: String(parts[0]), text: String(parts[1]))
            })
        print(try replica.put(table, id: id, values, reason: reason))
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one record, deleted or not.")

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var record: RecordArguments

    func run() throws {
        let replica = try replica.open(for: .read)
        guard let record = try replica.get(record.table, id: record.id) else {
            throw ReplicaError.recordNotFound(table: self.record.table, id: self.record.id)
        }
        let safety = try SafetyFlags(replica).flags(record)
        if output.json {
            try printJSON(RecordJSON(record, safety: safety))
        } else {
            var rows = [["id", record.id]] + record.fields.map { [$0.name, $0.value.displayText ?? ""] }
            if let safety {
                rows += [
                    ["days_after_infusion", safety.day.map(String.init) ?? "unknown"], ["dlt_window", SafetyFlags.text(safety.dltWindow)],
                    ["dlt_candidate", SafetyFlags.text(safety.dltCandidate)], ["src_review", SafetyFlags.text(safety.srcReview)],
                ]
            }
            print(Table(rows: rows).render(header: false))
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the records of a table; deleted ones are hidden.")

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The table.")
    var table: String

    func run() throws {
        let replica = try replica.open(for: .read)
        let records = try replica.list(table)
        let safety = try SafetyFlags(replica)
        if output.json {
            try printJSON(records.map { RecordJSON($0, safety: safety.flags($0)) })
        } else {
            let columns = try replica.schema.table(table).columnNames.filter { $0 != TableSchema.deletedColumn }
            let flagged = table == TrialSchema.adverseEvents.name
            let rows = records.map { record in
                [record.id] + columns.map { record[$0]?.displayText ?? "" }
                    + (flagged
                        ? safety.flags(record).map { [SafetyFlags.text($0.dltWindow), SafetyFlags.text($0.dltCandidate), SafetyFlags.text($0.srcReview)] } ?? []
                        : [])
            }
            print(Table(rows: [["id"] + columns + (flagged ? ["dlt_window", "dlt_candidate", "src_review"] : [])] + rows).render(header: true))
            print("\(records.count) record\(records.count == 1 ? "" : "s")")
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Soft-delete a record with a reason; the delete syncs like any edit.")

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var record: RecordArguments

    @Option(help: "Why the record is deleted; kept in the audit trail.")
    var reason: String

    func run() throws {
        try replica.open(for: .write).delete(record.table, id: record.id, reason: reason)
        print("Deleted \(record.table) \(record.id).")
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this replica's site, what waits to sync and open conflicts, and whether the server answers.",
        discussion: "Warns on standard error when the last successful sync is older than --stale-after, or when there was none."
    )

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "Warn when the last successful sync is older than this: 3d, 12h, 30m.")
    var staleAfter = TimeSpan("3d")!

    /// How long the server has to answer its liveness check.
    static let serverTimeout: TimeInterval = 5

    /// What `status --json` prints: the replica's status, and the two checks.
    struct Report: Encodable {
        var status: ReplicaStatus
        /// Nil when the server answered; else why not.
        var serverProblem: String?
        /// Seconds since the last successful sync; nil if there was none.
        var lastSyncAgeSeconds: Int?
        var stale: Bool

        enum Keys: String, CodingKey {
            case serverAnswers = "server_answers", serverProblem = "server_problem", lastSyncAgeSeconds = "last_sync_age_s", stale
        }

        func encode(to encoder: any Encoder) throws {
            try status.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(serverProblem == nil, forKey: .serverAnswers)
            try container.encode(serverProblem, forKey: .serverProblem)
            try container.encode(lastSyncAgeSeconds, forKey: .lastSyncAgeSeconds)
            try container.encode(stale, forKey: .stale)
        }
    }

    func run() async throws {
        let replica = try replica.open(for: .read)
        let status = try replica.status()
        var serverProblem: String?
        do {
            try await HTTPTransport(replica: replica, timeout: Self.serverTimeout).checkServer()
        } catch {
            serverProblem = (error as? SyncError)?.message ?? "\(error)"
        }
        let age = status.lastSync.flatMap { try? Date($0, strategy: .iso8601) }.map { max(0, Int(Date().timeIntervalSince($0))) }
        let report = Report(status: status, serverProblem: serverProblem, lastSyncAgeSeconds: age, stale: age.map { $0 > staleAfter.seconds } ?? true)
        if output.json {
            try printJSON(report)
        } else {
            print(
                Table(rows: [
                    ["site", status.site],
                    ["replica", status.replica],
                    ["user", status.user],
                    ["server", status.server + (serverProblem == nil ? " (answers)" : " (does not answer)")],
                    ["enrolled", status.enrolled ? "yes" : "no: it enrols at the next sync"],
                    [
                        "pending changes",
                        String(status.pendingChanges) + (status.awaitingReason == 0 ? "" : " (\(status.awaitingReason) wait for a reason: sitesync explain)"),
                    ],
                    ["open conflicts", String(status.openConflicts)],
                    ["last sync", status.lastSync.map { lastSync in age.map { "\(lastSync) (\(describeDuration($0)) ago)" } ?? lastSync } ?? "never"],
                    ["clock offset", status.clockOffsetMilliseconds.map { "\($0) ms (server minus laptop)" } ?? "unknown"],
                ]).render(header: false))
        }
        var warnings: [String] = []
        if let serverProblem { warnings.append("The server does not answer: \(serverProblem)") }
        if report.stale {
            let pending =
                switch status.pendingChanges {
                case 0: ""
                case 1: " 1 change waits to be pushed."
                case let count: " \(count) changes wait to be pushed."
                }
            warnings.append(
                (age.map { "The last successful sync was \(describeDuration($0)) ago, longer than \(staleAfter)." } ?? "This replica has never synced.")
                    + pending + " Run `sitesync sync` where the server can be reached."
            )
        }
        if !output.json {
            for warning in warnings { FileHandle.standardError.write(Data("warning: \(TextRules.escapingControls(warning))\n".utf8)) }
        }
    }

}

extension TimeSpan: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push local changes and pull the server's until both are drained.",
        discussion: """
            With --watch, keep syncing until interrupted (Ctrl-C or SIGTERM): shortly after every change \
            to the replica, from this tool or any other SQLite client, and as soon as another laptop's \
            change reaches the server. While the server is unreachable, edits wait in the outbox and \
            syncing is retried with growing delays, up to --max-backoff.
            """
    )

    @OptionGroup var replica: ReplicaOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Keep syncing live until interrupted; one line per sync that moved something.")
    var watch = false

    @Option(name: .customLong("max-backoff"), help: "With --watch: the longest wait between retries while the server is unreachable (30s, 2m).")
    var maximumBackoff = TimeSpan("30s")!

    func validate() throws {
        if !watch, maximumBackoff != TimeSpan("30s")! { throw ValidationError("--max-backoff applies to --watch only.") }
    }

    func run() async throws {
        let replica = try replica.open()
        if watch {
            try await watchLive(replica)
            return
        }
        let progress = ProgressLine(json: output.json)
        var configuration = SyncEngine.Configuration.command
        configuration.progress = { report in
            progress.update(report.phase == .push ? "Pushed" : "Pulled", done: report.done, total: report.total)
        }
        let report: SyncReport
        do {
            report = try await SyncEngine(replica: replica, transport: HTTPTransport(replica: replica), configuration: configuration).sync()
            progress.finish()
        } catch {
            progress.finish()
            throw error
        }
        if output.json {
            try printJSON(report)
        } else {
            print("Pushed \(report.pushed), pulled \(report.pulled), conflicts \(report.conflicts).")
        }
        if report.awaitingReason > 0 {
            printLine(Self.awaitingReason(report.awaitingReason), to: .standardError)
        }
    }

    /// The notice that records changed with plain SQL were not pushed.
    static func awaitingReason(_ count: Int) -> String {
        let records = count == 1 ? "1 record changed with plain SQL waits" : "\(count) records changed with plain SQL wait"
        return "\(records) for a reason for change and stays on this laptop: `sitesync explain` lists what, and gives the reason."
    }

    /// Runs live sync until SIGINT or SIGTERM, printing each sync that moved something (every one
    /// with --json, as JSON lines) and each failure.
    private func watchLive(_ replica: Replica) async throws {
        var live = SyncEngine.LiveConfiguration()
        live.maximumBackoff = .seconds(maximumBackoff.seconds)
        let json = output.json
        // A failure is printed when it starts, and again only when the reason changes.
        let lastFailure = Mutex<String?>(nil)
        // So is the notice of records waiting for a reason, when their number changes.
        let lastAwaiting = Mutex(0)
        live.events = { event in
            switch event {
            case .synced(let report, let cause):
                lastFailure.withLock { $0 = nil }
                let awaitingChanged = lastAwaiting.withLock { last in
                    defer { last = report.awaitingReason }
                    return last != report.awaitingReason
                }
                if json {
                    printJSONLine(
                        LiveLine(
                            event: "synced", cause: cause.rawValue, pushed: report.pushed, pulled: report.pulled, conflicts: report.conflicts,
                            awaitingReason: report.awaitingReason
                        ))
                    return
                }
                if report.pushed + report.pulled + report.conflicts > 0 || cause == .start {
                    printLine("\(clockTime()) Pushed \(report.pushed), pulled \(report.pulled), conflicts \(report.conflicts) (\(cause.rawValue)).")
                }
                if awaitingChanged, report.awaitingReason > 0 {
                    printLine("\(clockTime()) \(Self.awaitingReason(report.awaitingReason))", to: .standardError)
                }
            case .failed(let message, let delay):
                let repeated = lastFailure.withLock { last in
                    defer { last = message }
                    return last == message
                }
                if json {
                    printJSONLine(LiveLine(event: "failed", error: message, retryInMs: Int(delay.wholeMilliseconds)))
                } else if !repeated {
                    printLine("\(clockTime()) \(message) Retrying in \(describeDuration(max(Int(delay.wholeMilliseconds / 1000), 1))).", to: .standardError)
                }
            }
        }
        if !json { printLine("Syncing live with \(try replica.requireIdentity().serverURL.absoluteString); Ctrl-C stops.") }
        let engine = SyncEngine(replica: replica, transport: try HTTPTransport(replica: replica), configuration: .command)
        let running = Task { try await engine.run(live) }
        // SIGINT and SIGTERM stop live sync between requests: the outbox and cursor stay consistent.
        let stops = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { running.cancel() }
            source.resume()
            return source
        }
        defer { stops.forEach { $0.cancel() } }
        try await running.value
        if !json { printLine("Stopped; \(try replica.pendingCount()) change(s) waiting to be pushed.") }
    }
}

/// One line of `sync --watch --json`.
private struct LiveLine: Encodable {
    var event: String
    var cause: String? = nil
    var pushed: Int? = nil
    var pulled: Int? = nil
    var conflicts: Int? = nil
    var awaitingReason: Int? = nil
    var error: String? = nil
    var retryInMs: Int? = nil

    enum CodingKeys: String, CodingKey {
        case event, cause, pushed, pulled, conflicts, error
        case awaitingReason = "awaiting_reason"
        case retryInMs = "retry_in_ms"
    }
}

/// The local time of day, `14:03:27`, for the lines of a long-running command.
private func clockTime() -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.dateFormat = "HH:mm:ss"
    return formatter.string(from: Date())
}

extension SyncEngine.Configuration {
    /// The engine's defaults, reporting this command's build to the server.
    static var command: Self {
        var configuration = Self()
        configuration.build = "sitesync \(SiteSyncBuild.version)"
        return configuration
    }
}
