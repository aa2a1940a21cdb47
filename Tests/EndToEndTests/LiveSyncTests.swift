import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

/// `sitesync sync --watch` and `SyncEngine.run`: laptops that sync on their own.
@Suite("Live sync")
struct LiveSyncTests {
    /// A `sitesync sync --watch` running in the folder, its output going to files there.
    private struct Watcher {
        let process: Subprocess
        let output: URL
        let errors: URL

        static func start(_ commands: Commands, database: String, arguments: [String] = []) throws -> Watcher {
            let output = commands.directory.appendingPathComponent("\(database).watch.out")
            let errors = commands.directory.appendingPathComponent("\(database).watch.err")
            let out = open(output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            let err = open(errors.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            defer {
                close(out)
                close(err)
            }
            let process = try Subprocess(
                Commands.products.appendingPathComponent("sitesync").path, ["sync", "--watch", "--db", database] + arguments,
                directory: commands.directory.path, environment: ProcessInfo.processInfo.environment.merging(commands.environment) { $1 },
                standardOutput: out, standardError: err
            )
            return Watcher(process: process, output: output, errors: errors)
        }

        var printed: String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
        var complained: String { (try? String(contentsOf: errors, encoding: .utf8)) ?? "" }

        /// The processor time it has used so far, user and system, in clock ticks (1/100 s on Linux).
        var processorTicks: Int {
            let stat = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8)) ?? ""
            // The fields after the command's name, which is in parentheses and may hold spaces.
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            return fields.count > 13 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0
        }

        /// Stops it as Ctrl-C would; its exit status.
        func stop() async -> Int32 {
            kill(process.processIdentifier, SIGINT)
            return await process.exit()
        }
    }

    /// The subjects a replica file holds with `screening_no`, read as another SQLite reader would.
    private static func subjects(_ path: String, _ screeningNumber: String) throws -> Int {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(5)
        let database = try DatabaseQueue(path: path, configuration: configuration)
        return try database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM subjects WHERE screening_no = ?", arguments: [screeningNumber]) ?? 0 }
    }

    /// Waits up to `limit` until `path` holds the subject; how long it took, or nil.
    private static func arrival(_ path: String, _ screeningNumber: String, within limit: Duration) async throws -> Duration? {
        let started = ContinuousClock.now
        while ContinuousClock.now - started < limit {
            if try subjects(path, screeningNumber) > 0 { return ContinuousClock.now - started }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// A server process and two laptops, `a.sqlite` and `b.sqlite`, initialised for S01.
    private static func twoLaptops(_ commands: Commands, port: Int? = nil) async throws -> (server: Subprocess, port: Int, token: String) {
        let (server, port) = try await commands.startServer(database: "server.sqlite", port: port)
        let token = try await commands.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"]).line
        try await initialise(commands, ["a.sqlite": port, "b.sqlite": port], token: token)
        return (server, port, token)
    }

    /// Initialises each replica file for S01 with the server on its port.
    private static func initialise(_ commands: Commands, _ ports: [String: Int], token: String, server database: String = "server.sqlite") async throws {
        for (replica, port) in ports.sorted(by: { $0.key < $1.key }) {
            let initialised = try await commands.sitesync(
                "init", "--db", replica, "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token", token, "--user", "User of \(replica)"
            )
            #expect(initialised.status == 0, "\(initialised.stderr)")
            try await commands.signIn(db: replica, database: database)
        }
    }

    /// Waits until the watcher has made its first sync.
    private static func started(_ watcher: Watcher) async throws {
        for _ in 0..<600 where !watcher.printed.contains("start") { try await Task.sleep(for: .milliseconds(50)) }
    }

    @Test(
        "Behind two instances on one PostgreSQL database, a push on one wakes a pull waiting on the other: the edit arrives within 2 s",
        .enabled(if: StoreKind.all.contains(.postgres))
    )
    func acrossInstances() async throws {
        let database = try await PostgresTestDatabase.create()
        try await Commands.inTemporaryFolder { commands in
            let (first, firstPort) = try await commands.startServer(database: database)
            defer { first.terminate() }
            let (second, secondPort) = try await commands.startServer(database: database)
            defer { second.terminate() }
            let token = try await commands.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", database]).line
            try await Self.initialise(commands, ["a.sqlite": firstPort, "b.sqlite": secondPort], token: token, server: database)
            let a = try Watcher.start(commands, database: "a.sqlite")
            let b = try Watcher.start(commands, database: "b.sqlite")
            try await Self.started(a)
            try await Self.started(b)
            // B's pull waits on the second instance; A pushes through the first.
            try await Task.sleep(for: .milliseconds(500))
            let put = try await commands.sitesync("put", "--db", "a.sqlite", "subjects", "screening_no=S01-201", "sex=F")
            #expect(put.status == 0, "\(put.stderr)")
            let took = try await Self.arrival(commands.directory.appendingPathComponent("b.sqlite").path, "S01-201", within: .seconds(40))
            #expect(took != nil && took! < .seconds(2), "the edit reached the other instance's laptop after \(String(describing: took))")
            #expect(await a.stop() == 0)
            #expect(await b.stop() == 0)
            #expect(b.printed.contains("Pushed 0, pulled 1, conflicts 0 (remote-change)."), "\(b.printed)")
        }
    }

    @Test("Two laptops syncing live see each other's edits within 2 s, each made by a `sitesync put` in another process")
    func twoLaptopsWatching() async throws {
        try await Commands.inTemporaryFolder { commands in
            let (server, _, _) = try await Self.twoLaptops(commands)
            defer { server.terminate() }
            let a = try Watcher.start(commands, database: "a.sqlite")
            let b = try Watcher.start(commands, database: "b.sqlite")
            // Both have made their first sync (and enrolled).
            for watcher in [a, b] {
                for _ in 0..<600 where !watcher.printed.contains("(start)") { try await Task.sleep(for: .milliseconds(50)) }
                #expect(watcher.printed.contains("Pushed 0, pulled 0, conflicts 0 (start)."), "\(watcher.printed)\(watcher.complained)")
            }
            // Idle, waiting for the server's changes, a laptop's live sync uses almost no processor
            // time: its pull waits at the server, not in a loop here.
            let before = a.processorTicks
            try await Task.sleep(for: .seconds(3))
            #expect(a.processorTicks - before < 50, "live sync used \(a.processorTicks - before) of 300 ticks while idle")
            for (from, to, number) in [("a.sqlite", "b.sqlite", "S01-001"), ("b.sqlite", "a.sqlite", "S01-002")] {
                let put = try await commands.sitesync(
                    "put", "--db", from, "subjects", "screening_no=\(number)", "sex=F", "birth_date=1984-03-12", "consent_date=2026-11-02")
                #expect(put.status == 0, "\(put.stderr)")
                let took = try await Self.arrival(commands.directory.appendingPathComponent(to).path, number, within: .seconds(30))
                #expect(took != nil && took! < .seconds(2), "\(number) reached \(to) after \(String(describing: took))")
            }
            #expect(await a.stop() == 0)
            #expect(await b.stop() == 0)
            #expect(a.printed.contains("Pushed 1, pulled 0, conflicts 0 (local-change)."), "\(a.printed)")
            #expect(b.printed.contains("Pushed 0, pulled 1, conflicts 0 (remote-change)."), "\(b.printed)")
            #expect(a.printed.hasSuffix("Stopped; 0 change(s) waiting to be pushed.\n"), "\(a.printed)")
            #expect(a.complained.isEmpty && b.complained.isEmpty, "\(a.complained)\(b.complained)")
        }
    }

    @Test("A server stopped for 10 s and restarted loses nothing: the laptops keep their edits, retry on their own and catch up")
    func serverRestart() async throws {
        try await Commands.inTemporaryFolder { commands in
            var (server, port, _) = try await Self.twoLaptops(commands)
            let a = try Watcher.start(commands, database: "a.sqlite", arguments: ["--max-backoff", "2s"])
            let b = try Watcher.start(commands, database: "b.sqlite", arguments: ["--max-backoff", "2s", "--json"])
            for watcher in [a, b] { try await Self.started(watcher) }
            server.terminate()
            #expect(await server.exit() == 0)
            // Edits on both laptops while the server is away.
            for (database, number) in [("a.sqlite", "S01-101"), ("b.sqlite", "S01-102"), ("a.sqlite", "S01-103")] {
                let put = try await commands.sitesync("put", "--db", database, "subjects", "screening_no=\(number)", "sex=M", "birth_date=1990-01-01")
                #expect(put.status == 0, "\(put.stderr)")
            }
            try await Task.sleep(for: .seconds(10))
            #expect(a.complained.contains("cannot be reached"), "\(a.complained)")
            #expect(b.printed.contains(#""event":"failed""#), "\(b.printed)")
            (server, _) = try await commands.startServer(database: "server.sqlite", port: port)
            defer { server.terminate() }
            // Both laptops hold all three, on their own, with nothing left to push.
            for database in ["a.sqlite", "b.sqlite"] {
                for number in ["S01-101", "S01-102", "S01-103"] {
                    let took = try await Self.arrival(commands.directory.appendingPathComponent(database).path, number, within: .seconds(30))
                    #expect(took != nil, "\(number) never reached \(database)")
                }
            }
            #expect(await a.stop() == 0)
            #expect(await b.stop() == 0)
            for database in ["a.sqlite", "b.sqlite"] {
                let status = try await commands.sitesync("status", "--db", database, "--json")
                #expect(status.stdout.contains(#""pending_changes" : 0"#), "\(status.stdout)")
            }
            // The server holds each record once.
            let store = try SQLiteSyncStore(path: commands.directory.appendingPathComponent("server.sqlite").path, schema: TrialSchema.current)
            #expect(try await StoreContents.count(store, "SELECT count(*) FROM subjects") == 3)
        }
    }

    /// Counts the requests in flight through it, at most, each held a little while.
    private final class CountingTransport: SyncTransport {
        let base: any SyncTransport
        private let counts = Mutex((now: 0, most: 0))

        init(_ base: any SyncTransport) { self.base = base }

        var most: Int { counts.withLock { $0.most } }

        private func counted<T>(_ body: () async throws -> T) async throws -> T {
            counts.withLock {
                $0.now += 1
                $0.most = max($0.most, $0.now)
            }
            defer { counts.withLock { $0.now -= 1 } }
            try await Task.sleep(for: .milliseconds(20))
            return try await body()
        }

        func enrol(_ request: EnrolRequest) async throws -> EnrolResponse { try await counted { try await base.enrol(request) } }
        func push(_ request: PushRequest) async throws -> PushResponse { try await counted { try await base.push(request) } }
        func pull(_ request: PullRequest) async throws -> PullResponse { try await counted { try await base.pull(request) } }
    }

    @Test("Syncs of one replica started at once take turns: one request in flight at a time, every change pushed once")
    func syncsTakeTurns() async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a")
            try await a.sync()
            for index in 0..<300 { try a.replica.put("subjects", ["screening_no": .text("S01-\(index)")]) }
            let counting = CountingTransport(a.transport)
            // Two engines of one replica, as a screen's live sync and a "sync now" button would be,
            // and a second opening of the same file, as another process would have.
            let again = try Replica.open(path: server.directory.appendingPathComponent("a.sqlite").path, schema: TrialSchema.current)
            let engines = [
                a.engine(transport: counting) { $0.pushBatchSize = 50 },
                a.engine(transport: counting) { $0.pushBatchSize = 50 },
                SyncEngine(
                    replica: again, transport: counting,
                    configuration: {
                        var c = SyncEngine.Configuration()
                        c.pushBatchSize = 50
                        return c
                    }()),
            ]
            let reports = try await withThrowingTaskGroup(of: SyncReport.self) { group in
                for engine in engines { group.addTask { try await engine.sync() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(counting.most == 1)
            #expect(reports.map(\.pushed).reduce(0, +) == 300)
            #expect(try a.replica.pendingCount() == 0)
            #expect(try await server.count("SELECT count(*) FROM subjects") == 300)
        }
    }

    @Test("A sync waits while another process holds the replica's sync lock, then runs")
    func syncWaitsForAnotherProcess() async throws {
        try await Commands.inTemporaryFolder { commands in
            let server = try await commands.startServerAndInit(user: "A. Rivera")
            defer { server.terminate() }
            let lock = commands.directory.appendingPathComponent("sitesync.sqlite-sync.lock").path
            // Another process takes the lock, says so, and holds it for 3 s.
            let holder = Task {
                try await Subprocess.run(
                    "/usr/bin/python3",
                    [
                        "-c",
                        """
                        import fcntl, sys, time
                        f = open(sys.argv[1], "a")
                        fcntl.flock(f, fcntl.LOCK_EX)
                        open(sys.argv[1] + ".held", "w").close()
                        time.sleep(3)
                        """, lock,
                    ])
            }
            while !FileManager.default.fileExists(atPath: lock + ".held") { try await Task.sleep(for: .milliseconds(20)) }
            let started = ContinuousClock.now
            let sync = try await commands.sitesync("sync")
            let waited = ContinuousClock.now - started
            #expect(sync.status == 0, "\(sync.stderr)")
            #expect(sync.line == "Pushed 0, pulled 0, conflicts 0.")
            #expect(waited > .seconds(2), "the sync ran while another process held the lock")
            #expect(try await holder.value.status == 0)
        }
    }

    @Test("observe delivers a table at once, then after each commit that changes it: a put, an import, raw SQL, and a pull of another laptop's records")
    func observeTable() async throws {
        try await LiveServer.run { server in
            let a = try server.laptop("a")
            let b = try server.laptop("b")
            try await b.sync()
            // Every version delivered, as the screening numbers it holds.
            final class Seen: Sendable {
                let versions = Mutex<[[String]]>([])
            }
            let seen = Seen()
            let versions = try b.replica.observe("subjects")
            let watching = Task {
                for try await records in versions {
                    let numbers = records.compactMap { $0["screening_no"]?.displayText }.sorted()
                    seen.versions.withLock { $0.append(numbers) }
                }
            }
            defer { watching.cancel() }
            /// Waits up to 10 s for a version holding `numbers`.
            func delivered(_ numbers: [String]) async throws -> Bool {
                for _ in 0..<500 {
                    if seen.versions.withLock({ $0.last == numbers }) { return true }
                    try await Task.sleep(for: .milliseconds(20))
                }
                return false
            }
            #expect(try await delivered([]))
            try b.replica.put("subjects", ["screening_no": .text("S01-001")])
            #expect(try await delivered(["S01-001"]))
            try b.replica.importRecords("subjects", [ImportRow(line: 2, id: nil, values: ["screening_no": .text("S01-002")])])
            #expect(try await delivered(["S01-001", "S01-002"]))
            try await b.replica.writer.write { db in try db.execute(sql: "UPDATE subjects SET screening_no = 'S01-003' WHERE screening_no = 'S01-002'") }
            #expect(try await delivered(["S01-001", "S01-003"]))
            try a.replica.put("subjects", ["screening_no": .text("S01-004")])
            try await a.sync()
            try await b.sync()
            #expect(try await delivered(["S01-001", "S01-003", "S01-004"]), "\(seen.versions.withLock { $0 })")
            #expect(throws: ValidationError.self) { try b.replica.observe("no_such_table") }
        }
    }

    @Test("The getting-started example enters a subject, shows the table as another laptop's edit arrives, and pushes its own")
    func gettingStartedExample() async throws {
        try await Commands.inTemporaryFolder { commands in
            let (server, port) = try await commands.startServer(database: "server.sqlite")
            defer { server.terminate() }
            let token = try await commands.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"]).line
            try token.write(to: commands.directory.appendingPathComponent("s01.token"), atomically: true, encoding: .utf8)
            let initialised = try await commands.sitesync(
                "init", "--db", "b.sqlite", "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token-file", "s01.token", "--user", "B. Chen")
            #expect(initialised.status == 0, "\(initialised.stderr)")
            try await commands.signIn(db: "b.sqlite", database: "server.sqlite")
            let example = Task {
                try await commands.run(
                    "LiveScreenExample",
                    [
                        "--db", "screen.sqlite", "--server", "http://127.0.0.1:\(port)", "--site", "S01", "--user", "E. Xample",
                        // Long enough for the other laptop's two commands on a machine busy with the rest of the suite.
                        "--token-file", "s01.token", "--screening-number", "S01-042", "--seconds", "15",
                    ])
            }
            // Another laptop enters a subject while the example runs.
            try await Task.sleep(for: .seconds(2))
            #expect(try await commands.sitesync("put", "--db", "b.sqlite", "subjects", "screening_no=S01-050", "sex=M").status == 0)
            #expect(try await commands.sitesync("sync", "--db", "b.sqlite").status == 0)
            let ran = try await example.value
            #expect(ran.status == 0, "\(ran.stderr)")
            let lines = ran.stdout.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("entered subject S01-042 as ") }, "\(ran.stdout)")
            #expect(lines.contains("subjects (2): S01-042, S01-050"), "\(ran.stdout)")
            #expect(lines.last == "stopped; 0 change(s) waiting to be pushed", "\(ran.stdout)")
            // Its subject reached the other laptop.
            #expect(try await commands.sitesync("sync", "--db", "b.sqlite").status == 0)
            #expect(try await commands.sitesync("list", "--db", "b.sqlite", "subjects", "--json").stdout.contains("S01-042"))
        }
    }
}
