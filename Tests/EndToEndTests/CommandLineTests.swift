import Foundation
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs the built `sitesync` and `sitesync-server` executables as a person would.
struct Commands {
    let directory: URL
    let environment: [String: String]

    /// Where `swift build` put the executables: beside the test bundle.
    static let products: URL = {
        var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(), Bundle.main.bundleURL.deletingLastPathComponent()]
        candidates += candidates.map { $0.deletingLastPathComponent() }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("sitesync").path) } ?? candidates[0]
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var line: String { stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// Runs a product and waits for it to exit, with its output read and its exit waited for on
    /// threads of their own: blocking a thread of Swift's cooperative pool (two on a 2-core machine)
    /// would stall every other test's server in this process meanwhile.
    @discardableResult
    func run(_ executable: String, _ arguments: [String], input: Data? = nil) async throws -> Result {
        let (status, stdout, stderr) = try await Subprocess.run(
            Self.products.appendingPathComponent(executable).path, arguments, directory: directory.path,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, input: input
        )
        return Result(status: status, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }

    func sitesync(_ arguments: String...) async throws -> Result { try await run("sitesync", arguments) }

    /// The password of the people ``signIn(_:name:db:database:role:site:)`` adds.
    static let password = "a long test password"

    /// Adds the person `username` to the server's database (unless there already) and signs them
    /// in on the replica `db` (this folder's default when nil), whose server must answer: reading
    /// and writing records need a signed-in person.
    func signIn(
        _ username: String = "coordinator", name: String? = nil, db: String? = nil, database: String = "sitesync-server.sqlite", role: String = "coordinator",
        site: String = "S01"
    ) async throws {
        let added = try await run(
            "sitesync-server", ["user", "add", username, "--name", name ?? "Person \(username)", "--role", role, "--site", site, "--database", database],
            input: Data((Self.password + "\n").utf8))
        guard added.status == 0 || added.stderr.contains("is taken") else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "user add failed: \(added.stderr)"])
        }
        let login = try await run("sitesync", ["login", username] + (db.map { ["--db", $0] } ?? []), input: Data((Self.password + "\n").utf8))
        guard login.status == 0 else {
            throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "sitesync login failed: \(login.stderr)"])
        }
    }

    /// Runs `body` with commands working in a new temporary folder, removed afterwards.
    static func inTemporaryFolder(_ body: (Commands) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await body(
            Commands(directory: directory, environment: ["SITESYNC_DB": "", "SITESYNC_SESSION_DIR": directory.appendingPathComponent("sessions").path]))
    }

    /// Starts `sitesync-server serve` on `port` (a free loopback port when nil) and waits until it answers.
    /// With `log`, the server logs at `trace` into that file of the folder instead of at `warning`
    /// to the tests' output.
    func startServer(database: String, port: Int? = nil, arguments: [String] = [], log: String? = nil) async throws -> (Subprocess, Int) {
        let port = try port ?? Self.freePort()
        // The log file, appended to; else the tests' own standard error.
        let output = log.map { open(directory.appendingPathComponent($0).path, O_WRONLY | O_APPEND | O_CREAT, 0o644) } ?? STDERR_FILENO
        guard output >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { if log != nil { close(output) } }
        let process = try Subprocess(
            Self.products.appendingPathComponent("sitesync-server").path,
            ["serve", "--database", database, "--port", String(port), "--log-level", log == nil ? "warning" : "trace"] + arguments,
            directory: directory.path, environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
            standardOutput: output, standardError: output
        )
        // Over HTTPS, whose certificate URLSession would not trust, a connection is enough.
        let tls = arguments.contains("--tls-cert")
        for _ in 0..<100 {
            if tls {
                if Self.accepts(port) { return (process, port) }
            } else if let (_, response) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/healthz")!),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                return (process, port)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.terminate()
        throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "sitesync-server did not start"])
    }

    /// Starts a server on a new SQLite database (``startServer(database:port:arguments:log:)``) and
    /// initialises this folder's default replica for site S01, as `user`, with a token from it.
    func startServerAndInit(user: String, personName: String? = nil) async throws -> Subprocess {
        let (server, port) = try await startServer(database: "sitesync-server.sqlite")
        do {
            let token = try await run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "sitesync-server.sqlite"]).line
            let initialised = try await sitesync("init", "--site", "S01", "--server", "http://127.0.0.1:\(port)", "--token", token, "--user", user)
            guard initialised.status == 0 else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "sitesync init failed: \(initialised.stderr)"])
            }
            try await signIn(name: personName)
            return server
        } catch {
            server.terminate()
            throw error
        }
    }

    /// This folder's default replica, initialised for site S01 as `user` with a server that then
    /// stops, with a person signed in while it ran: a laptop offline from then on.
    func offlineLaptop(user: String = "A") async throws {
        let server = try await startServerAndInit(user: user)
        server.terminate()
        await server.exit()
    }

    /// Whether something accepts connections on `port` of 127.0.0.1.
    static func accepts(_ port: Int) -> Bool {
        guard let fd = Loopback.connect(port) else { return false }
        close(fd)
        return true
    }

    /// A port nothing listens on now, on 127.0.0.1.
    static func freePort() throws -> Int { Loopback.freePort() }
}

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("The README walk-through, run as commands", .serialized)
struct CommandLineTests {
    private func withFolder(_ body: (Commands) async throws -> Void) async throws {
        try await Commands.inTemporaryFolder(body)
    }

    private func json(_ result: Commands.Result) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
    }

    @Test("Token, two laptops, offline records, sync, a conflict")
    func walkThrough() async throws {
        try await withFolder { cli in
            let (server, port) = try await cli.startServer(database: "sitesync-server.sqlite")
            defer { server.terminate() }
            let url = "http://127.0.0.1:\(port)"

            let token = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "sitesync-server.sqlite"])
            #expect(token.status == 0)
            #expect(token.line.hasPrefix("sst_") && !token.line.contains("\n"), "the token alone on stdout")

            #expect(
                try await cli.sitesync("init", "--db", "a.sqlite", "--site", "S01", "--server", url, "--token", token.line, "--user", "A. Rivera").status == 0)
            #expect(
                try await cli.sitesync("init", "--db", "b.sqlite", "--site", "S01", "--server", url, "--token", token.line, "--user", "B. Chen").status == 0)

            // Two people, each signed in on a laptop.
            for (username, name, db) in [("ana.lima", "Ana Lima", "a.sqlite"), ("ben.okafor", "Ben Okafor", "b.sqlite")] {
                let password = Data("\(name) has a long password\n".utf8)
                let added = try await cli.run(
                    "sitesync-server",
                    ["user", "add", username, "--name", name, "--role", "coordinator", "--site", "S01", "--database", "sitesync-server.sqlite"], input: password
                )
                #expect(added.status == 0, "\(added.stderr)")
                let login = try await cli.run("sitesync", ["login", "--db", db, username], input: password)
                #expect(login.status == 0 && login.stdout.contains("Signed in as \(username) (\(name)), coordinator, until"), "\(login.stderr)")
            }
            #expect(try await cli.sitesync("whoami", "--db", "a.sqlite").stdout.contains("Ana Lima"))

            let subject = try await cli.sitesync(
                "put", "--db", "a.sqlite", "subjects", "screening_no=S01-001", "sex=F", "birth_date=1984-03-12", "consent_date=2026-11-02")
            #expect(subject.status == 0)
            let id = subject.line
            #expect(UUID(uuidString: id) != nil)
            let event = try await cli.sitesync(
                "put", "--db", "a.sqlite", "adverse_events", "subject_id=\(id)", "term=Cytokine release syndrome", "onset_date=2026-11-20", "grade=2",
                "serious=1")
            #expect(event.status == 0)

            // A bad value is refused, names the field and rule, and writes nothing
            let bad = try await cli.sitesync("put", "--db", "a.sqlite", "adverse_events", "subject_id=\(id)", "term=Rash", "grade=7", "onset_date=2026-13-45")
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("adverse_events.grade: must be a whole number from 1 to 5; got 7"))
            #expect(bad.stderr.contains("adverse_events.onset_date: must be a calendar date written YYYY-MM-DD"))

            let status = try json(try await cli.sitesync("status", "--db", "a.sqlite", "--json")) as? [String: Any]
            #expect(status?["pending_changes"] as? Int == 2)
            #expect(status?["site"] as? String == "S01")

            let syncA = try json(try await cli.sitesync("sync", "--db", "a.sqlite", "--json")) as? [String: Int]
            #expect(syncA == ["pushed": 2, "pulled": 0, "conflicts": 0, "awaiting_reason": 0])
            let syncB = try json(try await cli.sitesync("sync", "--db", "b.sqlite", "--json")) as? [String: Int]
            #expect(syncB == ["pushed": 0, "pulled": 2, "conflicts": 0, "awaiting_reason": 0])

            let listed = try json(try await cli.sitesync("list", "--db", "b.sqlite", "adverse_events", "--json")) as? [[String: Any]]
            #expect(listed?.count == 1)
            #expect(listed?.first?["grade"] as? Int == 2, "numbers are JSON numbers")
            #expect(listed?.first?["site_id"] as? String == "S01")
            let table = try await cli.sitesync("list", "--db", "b.sqlite", "subjects")
            #expect(table.stdout.contains("S01-001") && table.stdout.contains("1 record"))

            // Plain SQL from the sqlite3 shell, tracked like the library's own writes; a synced value
            // it changed waits for a person's reason before it is pushed
            let shell = try await Subprocess.run(
                "/usr/bin/sqlite3",
                [
                    cli.directory.appendingPathComponent("a.sqlite").path,
                    "UPDATE adverse_events SET term = 'Cytokine release syndrome (CRS)' WHERE subject_id = '\(id)'",
                ]
            )
            #expect(shell.status == 0, "\(String(decoding: shell.stderr, as: UTF8.self))")
            let held = try await cli.sitesync("sync", "--db", "a.sqlite")
            #expect(held.status == 0 && held.stdout.contains("Pushed 0, pulled 0, conflicts 0."), "\(held.stdout)")
            #expect(held.stderr.contains("1 record changed with plain SQL waits for a reason for change"), "\(held.stderr)")
            let statusText = try await cli.sitesync("status", "--db", "a.sqlite")
            #expect(statusText.stdout.contains("1 (1 wait for a reason: sitesync explain)"), "\(statusText.stdout)")
            let waiting = try json(try await cli.sitesync("explain", "--db", "a.sqlite", "--json")) as? [[String: Any]]
            #expect(waiting?.count == 1 && waiting?.first?["table"] as? String == "adverse_events" && waiting?.first?["fields"] as? [String] == ["term"])
            let heldEvent = try #require(waiting?.first?["id"] as? String)
            let missing = try await cli.sitesync("explain", "--db", "a.sqlite", "adverse_events", heldEvent)
            #expect(missing.status != 0 && missing.stderr.contains("Missing --reason"), "\(missing.stderr)")
            let explained = try await cli.sitesync("explain", "--db", "a.sqlite", "adverse_events", heldEvent, "--reason", "Term as written in the source")
            #expect(explained.status == 0 && explained.stdout.contains("Explained term of adverse_events"), "\(explained.stderr)")
            #expect(try await cli.sitesync("explain", "--db", "a.sqlite").stdout.contains("No change waits for a reason."))
            let syncShell = try json(try await cli.sitesync("sync", "--db", "a.sqlite", "--json")) as? [String: Int]
            #expect(syncShell == ["pushed": 1, "pulled": 0, "conflicts": 0, "awaiting_reason": 0])

            // The same field edited on both laptops while offline
            #expect(try await cli.sitesync("put", "--db", "a.sqlite", "subjects", "--id", id, "status=enrolled", "--reason", "Consent signed").status == 0)
            try await Task.sleep(for: .milliseconds(5))
            #expect(
                try await cli.sitesync("put", "--db", "b.sqlite", "subjects", "--id", id, "status=screen_failed", "--reason", "Failed criterion 3").status == 0)
            for db in ["a.sqlite", "b.sqlite", "a.sqlite"] {
                #expect(try await cli.sitesync("sync", "--db", db).status == 0)
            }

            let record = try json(try await cli.sitesync("get", "--db", "a.sqlite", "subjects", id, "--json")) as? [String: Any]
            #expect(record?["status"] as? String == "screen_failed")
            let conflicts = try json(try await cli.sitesync("conflicts", "list", "--db", "a.sqlite", "--json")) as? [[String: Any]]
            #expect(conflicts?.count == 1)
            let conflict = conflicts?.first
            #expect(conflict?["field"] as? String == "status")
            #expect((conflict?["winner"] as? [String: Any])?["value"] as? String == "screen_failed")
            #expect((conflict?["winner"] as? [String: Any])?["user"] as? String == "Ben Okafor")
            #expect((conflict?["loser"] as? [String: Any])?["value"] as? String == "enrolled")
            #expect((conflict?["loser"] as? [String: Any])?["user"] as? String == "Ana Lima")
            #expect(Set(conflict?.keys.map { $0 } ?? []) == ["id", "site_id", "table", "record_id", "field", "winner", "loser", "status", "detected_at"])
            let readable = try await cli.sitesync("conflicts", "list", "--db", "b.sqlite")
            #expect(readable.stdout.contains("screen_failed") && readable.stdout.contains("enrolled") && readable.stdout.contains("1 conflict"))

            #expect(try await cli.sitesync("status", "--db", "a.sqlite").stdout.contains("open conflicts   1"))

            // Review: show both sides, resolve with a reason, and every laptop follows
            let conflictID = try await cli.sitesync("conflicts", "list", "--db", "a.sqlite", "--ids").line
            #expect(conflictID == conflict?["id"] as? String)
            let shown = try await cli.sitesync("conflicts", "show", "--db", "a.sqlite", conflictID)
            #expect(
                shown.status == 0 && shown.stdout.contains("screen_failed") && shown.stdout.contains("enrolled")
                    && shown.stdout.contains("current value: screen_failed"))
            #expect(!shown.stdout.contains("\u{1B}["), "no colour when stdout is not a terminal")
            let noReason = try await cli.sitesync("conflicts", "resolve", "--db", "a.sqlite", conflictID, "--take-loser")
            #expect(noReason.status != 0 && noReason.stderr.contains("--reason"))
            let resolve = try await cli.sitesync(
                "conflicts", "resolve", "--db", "a.sqlite", conflictID, "--take-loser", "--reason", "Enrolment confirmed on the signed CRF")
            #expect(resolve.status == 0, "\(resolve.stderr)")
            let again = try await cli.sitesync("conflicts", "resolve", "--db", "a.sqlite", conflictID, "--keep-winner", "--reason", "again")
            #expect(again.status != 0 && again.stderr.contains("already resolved"))
            for db in ["a.sqlite", "b.sqlite"] {
                #expect(try await cli.sitesync("sync", "--db", db).status == 0)
            }
            let afterResolve = try json(try await cli.sitesync("get", "--db", "b.sqlite", "subjects", id, "--json")) as? [String: Any]
            #expect(afterResolve?["status"] as? String == "enrolled")
            let resolvedList = try json(try await cli.sitesync("conflicts", "list", "--db", "b.sqlite", "--all", "--json")) as? [[String: Any]]
            #expect(resolvedList?.first?["status"] as? String == "resolved")
            #expect((resolvedList?.first?["resolution"] as? [String: Any])?["reason"] as? String == "Enrolment confirmed on the signed CRF")
            let history = try await cli.sitesync("history", "--db", "b.sqlite", "subjects", id)
            #expect(history.status == 0)
            #expect(history.stdout.contains("screening -> enrolled") && history.stdout.contains("superseded") == false)
            #expect(history.stdout.contains("resolved: take_loser") && history.stdout.contains(conflictID))
            #expect(history.stdout.contains("Consent signed") && history.stdout.contains("Failed criterion 3"), "each change shows its reason")
            #expect(history.stdout.contains("conflict resolution: take_loser (conflict \(conflictID)): Enrolment confirmed on the signed CRF"))
            let historyJSON = try json(try await cli.sitesync("history", "--db", "b.sqlite", "subjects", id, "--json")) as? [String: Any]
            #expect((historyJSON?["entries"] as? [Any])?.count == 5, "created, enrolled, screen_failed, the resolution's write, the resolution")

            #expect(try await cli.sitesync("delete", "--db", "a.sqlite", "subjects", id, "--reason", "Consent withdrawn before screening").status == 0)
            let remaining = try json(try await cli.sitesync("list", "--db", "a.sqlite", "subjects", "--json")) as? [Any]
            #expect(remaining?.isEmpty == true)
            #expect(try await cli.sitesync("sync", "--db", "a.sqlite").status == 0)

            // A reviewer laptop pulls every site
            let reviewerToken = try await cli.run("sitesync-server", ["token", "create", "--role", "reviewer", "--database", "sitesync-server.sqlite"])
            #expect(
                try await cli.sitesync("init", "--db", "r.sqlite", "--site", "*", "--server", url, "--token", reviewerToken.line, "--user", "D. Monitor").status
                    == 0)
            try await cli.signIn("dana.dm", db: "r.sqlite", role: "data-manager", site: "*")
            let reviewerSync = try json(try await cli.sitesync("sync", "--db", "r.sqlite", "--json")) as? [String: Int]
            #expect(reviewerSync?["pulled"] == 3, "the subject, the adverse event and the conflict")
            #expect(try await cli.sitesync("conflicts", "list", "--db", "r.sqlite", "--all", "--site", "S01", "--ids").line == conflictID)
            let deleted = try json(try await cli.sitesync("get", "--db", "r.sqlite", "subjects", id, "--json")) as? [String: Any]
            #expect(deleted?["_deleted"] as? String == "Consent withdrawn before screening")

            // The inspector's export of the audit trail
            let csv = try await cli.run("sitesync-server", ["audit", "export", "--format", "csv"])
            #expect(csv.status == 0)
            let lines = csv.stdout.split(separator: "\r\n")
            #expect(
                lines.first
                    == "received_at,changed_at,site_id,replica,user,username,table,record_id,field,old_value,new_value,reason,outcome,conflict_id,seq,hlc,base_hlc,base_replica"
            )
            #expect(
                lines.contains { $0.contains(",Ana Lima,ana.lima,subjects,\(id),status,\"\"\"screening\"\"\",\"\"\"enrolled\"\"\",Consent signed,applied,,") })
            #expect(
                lines.contains {
                    $0.contains(
                        ",Ben Okafor,ben.okafor,subjects,\(id),status,\"\"\"enrolled\"\"\",\"\"\"screen_failed\"\"\",Failed criterion 3,applied,\(conflictID),")
                })
            #expect(
                lines.contains {
                    $0.contains(
                        ",status,\"\"\"screen_failed\"\"\",\"\"\"enrolled\"\"\",conflict resolution: take_loser (conflict \(conflictID)): Enrolment confirmed on the signed CRF,applied,,"
                    )
                })
            let jsonl = try await cli.run("sitesync-server", ["audit", "export", "--format", "jsonl", "--site", "S01", "--since", "2000-01-01"])
            let entries = jsonl.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(entries.count == lines.count - 1)
            #expect(entries.contains { $0["field"] as? String == "grade" && $0["new_value"] as? Int == 2 })
            let none = try await cli.run("sitesync-server", ["audit", "export", "--format", "jsonl", "--since", "2999-01-01"])
            #expect(none.status == 0 && none.stdout.isEmpty)
            let badSince = try await cli.run("sitesync-server", ["audit", "export", "--format", "csv", "--since", "yesterday"])
            #expect(badSince.status != 0 && badSince.stderr.contains("--since must be a date"))
        }
    }

    @Test("A synced value is changed with a reason for change, which history and the audit export show")
    func reasonForChange() async throws {
        try await withFolder { cli in
            let server = try await cli.startServerAndInit(user: "A. Rivera")
            defer { server.terminate() }
            let subject = try await cli.sitesync("put", "subjects", "screening_no=S01-001").line
            let event = try await cli.sitesync("put", "adverse_events", "subject_id=\(subject)", "term=Neutropenia", "onset_date=2026-11-20", "grade=2").line
            // Not synced yet: corrections need no reason.
            #expect(try await cli.sitesync("put", "adverse_events", "--id", event, "grade=3").status == 0)
            #expect(try await cli.sitesync("sync").status == 0)

            let refused = try await cli.sitesync("put", "adverse_events", "--id", event, "grade=4")
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("adverse_events.grade of record \(event) was synced already") && refused.stderr.contains("--reason"))
            #expect(try await cli.sitesync("get", "adverse_events", event, "--json").stdout.contains("\"grade\" : 3"))
            let blank = try await cli.sitesync("put", "adverse_events", "--id", event, "grade=4", "--reason", " ")
            #expect(blank.status != 0 && blank.stderr.contains("must not be empty"))
            #expect(try await cli.sitesync("put", "adverse_events", "--id", event, "grade=4", "--reason", "Grade corrected from the lab report").status == 0)
            // Filling in an empty field is first entry.
            #expect(try await cli.sitesync("put", "adverse_events", "--id", event, "outcome=recovering").status == 0)
            #expect(try await cli.sitesync("sync").status == 0)

            let history = try await cli.sitesync("history", "adverse_events", event)
            #expect(history.status == 0)
            #expect(history.stdout.contains("3 -> 4") && history.stdout.contains("Grade corrected from the lab report"))

            let csv = try await cli.run("sitesync-server", ["audit", "export", "--format", "csv", "--record", event])
            #expect(csv.status == 0, "\(csv.stderr)")
            let lines = csv.stdout.split(separator: "\r\n").map(String.init)
            #expect(lines.dropFirst().allSatisfy { $0.contains(",adverse_events,\(event),") }, "only the record asked for")
            let grade = try #require(lines.first { $0.contains(",grade,3,4,") })
            #expect(grade.contains(",Person coordinator,coordinator,adverse_events,\(event),grade,3,4,Grade corrected from the lab report,applied,,"))
            let cells = grade.split(separator: ",", omittingEmptySubsequences: false)
            #expect(cells[0].hasSuffix("Z") && cells[1].hasSuffix("Z") && cells[1].contains("."), "received_at, and changed_at with milliseconds")
            let jsonl = try await cli.run("sitesync-server", ["audit", "export", "--format", "jsonl", "--table", "subjects"])
            let tables = Set(
                jsonl.stdout.split(separator: "\n").compactMap {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["table"] as? String
                })
            #expect(tables == ["subjects"])
            let keys = jsonl.stdout.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?.keys }
            #expect(!keys.isEmpty && keys.allSatisfy { Set($0).isSuperset(of: ["changed_at", "reason", "conflict_id", "base"]) }, "every line has every key")
            let both = try await cli.run("sitesync-server", ["audit", "export", "--format", "csv", "--table", "subjects", "--record", event])
            #expect(both.status == 0 && both.stdout.split(separator: "\r\n").count == 1, "the header only")
            let badTable = try await cli.run("sitesync-server", ["audit", "export", "--format", "csv", "--table", "patients"])
            #expect(badTable.status != 0 && badTable.stderr.contains("no table patients"))
        }
    }

    @Test("Sync with the server unreachable says so, exits non-zero and loses nothing")
    func unreachable() async throws {
        try await withFolder { cli in
            try await cli.offlineLaptop()
            #expect(try await cli.sitesync("put", "subjects", "screening_no=S01-001").status == 0)
            let sync = try await cli.sitesync("sync")
            #expect(sync.status != 0)
            #expect(sync.stderr.contains("cannot be reached"))
            let status = try json(try await cli.sitesync("status", "--json")) as? [String: Any]
            #expect(status?["pending_changes"] as? Int == 1)
            #expect(status?["server_answers"] as? Bool == false && (status?["server_problem"] as? String)?.contains("cannot be reached") == true)
            #expect(status?["stale"] as? Bool == true, "never synced")
            let readable = try await cli.sitesync("status")
            #expect(readable.status == 0 && readable.stdout.contains("(does not answer)"))
            #expect(
                readable.stderr.contains("warning: The server does not answer") && readable.stderr.contains("This replica has never synced. 1 change waits"),
                "\(readable.stderr)")
            #expect(FileManager.default.fileExists(atPath: cli.directory.appendingPathComponent("sitesync.sqlite").path), "./sitesync.sqlite is the default")
        }
    }

    @Test("status says whether the server answers, and warns when the last successful sync is older than --stale-after")
    func staleStatus() async throws {
        try await withFolder { cli in
            let server = try await cli.startServerAndInit(user: "A")
            defer { server.terminate() }
            #expect(try await cli.sitesync("sync").status == 0)
            let fresh = try await cli.sitesync("status")
            #expect(fresh.stdout.contains("(answers)") && fresh.stderr.isEmpty, "\(fresh.stdout)\(fresh.stderr)")
            #expect(fresh.stdout.contains("s ago)"))

            // Four days without a sync: warned at the default 3 days, not at 5.
            let old = Date().addingTimeInterval(-4 * 86_400 - 7_200).formatted(.iso8601)
            let set = try await Subprocess.run(
                "/usr/bin/sqlite3", [cli.directory.appendingPathComponent("sitesync.sqlite").path, "UPDATE _sitesync_meta SET last_sync = '\(old)'"])
            #expect(set.status == 0)
            let stale = try await cli.sitesync("status")
            #expect(stale.status == 0 && stale.stdout.contains("(4 d 2 h ago)"), "\(stale.stdout)")
            #expect(stale.stderr.contains("warning: The last successful sync was 4 d 2 h ago, longer than 3d."), "\(stale.stderr)")
            #expect(try await cli.sitesync("status", "--stale-after", "5d").stderr.isEmpty)
            let report = try json(try await cli.sitesync("status", "--json")) as? [String: Any]
            #expect(report?["stale"] as? Bool == true && report?["server_answers"] as? Bool == true)
            #expect((report?["last_sync_age_s"] as? Int).map { $0 >= 4 * 86_400 + 7_200 } == true)
            let bad = try await cli.sitesync("status", "--stale-after", "3 days")
            #expect(bad.status != 0 && bad.stderr.contains("stale-after"))
        }
    }

    @Test("Tables align by the columns characters take on a terminal: wide characters, combining marks and emoji")
    func displayWidthTables() async throws {
        try await withFolder { cli in
            try await cli.offlineLaptop()
            let numbers = ["S01-001", "S01-日本語", "S01-Zoe\u{308}", "S01-e\u{301}\u{301}", "S01-👩‍⚕️", "S01-Ｆｕｌｌ"]
            for number in numbers {
                #expect(try await cli.sitesync("put", "subjects", "screening_no=\(number)").status == 0)
            }
            let list = try await cli.sitesync("list", "subjects")
            #expect(list.status == 0, "\(list.stderr)")
            // Every row's status cell ("screening") starts in the same terminal column.
            let rows = list.stdout.split(separator: "\n").filter { $0.contains("S01-") }
            #expect(rows.count == numbers.count)
            let starts = Set(rows.map { row in TextRules.displayWidth(String(row[..<row.range(of: "  screening")!.lowerBound])) })
            #expect(starts.count == 1, "\(list.stdout)")
            for number in numbers { #expect(list.stdout.contains(number), "\(number) is shown whole") }
        }
    }

    @Test("Imports and syncs longer than a second show progress on a terminal, and never with --json or through a pipe")
    func progress() async throws {
        try await withFolder { cli in
            let server = try await cli.startServerAndInit(user: "A")
            defer { server.terminate() }
            let rows = (0..<20_000).map { "s\($0),Fever,2026-03-02,1,other,CTCAE 5.0" }
            try (["subject_id,term,onset_date,grade,category,grading_scale"] + rows).joined(separator: "\n")
                .write(to: cli.directory.appendingPathComponent("big.csv"), atomically: true, encoding: .utf8)
            /// Runs `sitesync` on a pseudo-terminal (util-linux `script`); what the terminal showed.
            func onTerminal(_ arguments: String) async throws -> String {
                let sitesync = Commands.products.appendingPathComponent("sitesync").path
                let run = try await Subprocess.run(
                    "/usr/bin/script", ["-qec", "\(sitesync) \(arguments)", "/dev/null"], directory: cli.directory.path,
                    environment: ProcessInfo.processInfo.environment.merging(cli.environment) { $1 }
                )
                #expect(run.status == 0, "\(arguments): \(String(decoding: run.stdout, as: UTF8.self))")
                return String(decoding: run.stdout, as: UTF8.self)
            }
            let imported = try await onTerminal("import adverse_events big.csv")
            #expect(imported.contains("Checked and wrote") && imported.contains("of 20,000 records") && imported.contains("/s"), "\(imported.suffix(300))")
            #expect(imported.contains("Imported 20000 records into adverse_events."))
            let synced = try await onTerminal("sync")
            #expect(synced.contains("Pushed") && synced.contains("of 20,000 records"), "\(synced.suffix(300))")
            #expect(synced.contains("Pushed 20000, pulled 0, conflicts 0."))
            // Through a pipe: no progress, and nothing but the result.
            let piped = try await cli.sitesync("import", "adverse_events", "big.csv")
            #expect(piped.status == 0 && piped.stderr.isEmpty && piped.stdout == "Imported 20000 records into adverse_events.\n")
            // With --json on a terminal: the JSON alone, though 20,000 records are pushed.
            let json = try await onTerminal("sync --json")
            #expect(!json.contains("Pushed") && json.contains("\"pushed\" : 20000"), "\(json.suffix(300))")
        }
    }

    @Test("Both commands print shell completion scripts that bash loads, as README.md shows")
    func completionScripts() async throws {
        try await withFolder { cli in
            for command in ["sitesync", "sitesync-server"] {
                for shell in ["bash", "zsh", "fish"] {
                    let script = try await cli.run(command, ["--generate-completion-script", shell])
                    #expect(script.status == 0 && script.stdout.contains(command), "\(command) \(shell): \(script.stderr)")
                }
                let script = cli.directory.appendingPathComponent("\(command).bash").path
                try await cli.run(command, ["--generate-completion-script", "bash"]).stdout.write(toFile: script, atomically: true, encoding: .utf8)
                let loaded = try await Subprocess.run("/bin/bash", ["-c", "source \(script) && complete -p \(command)"])
                #expect(
                    loaded.status == 0 && String(decoding: loaded.stdout, as: UTF8.self).contains("complete"),
                    "\(String(decoding: loaded.stderr, as: UTF8.self))")
            }
        }
    }

    @Test("Screening offline: one eligible and one ineligible subject")
    func screening() async throws {
        try await withFolder { cli in
            try await cli.offlineLaptop()
            let eligible = try await cli.sitesync(
                "put", "subjects", "screening_no=S01-002", "sex=F", "birth_date=1990-04-02", "weight_kg=58", "childbearing_potential=1",
                "survival_over_3_months=1"
            ).line
            let screening = try await cli.sitesync(
                "put", "screenings", "subject_id=\(eligible)", "date=2026-11-20", "sledai_2k=12", "ana_positive=1", "anti_dsdna_positive=1",
                "anti_sm_positive=0",
                "prednisone_mg_day=15", "on_immunosuppressant_or_biologic=0", "neutrophils_1e9_per_l=2.1", "platelets_1e9_per_l=180", "hemoglobin_g_per_l=112",
                "alt_u_per_l=28", "alt_uln=40", "ast_u_per_l=31", "ast_uln=40", "tbil_umol_per_l=9", "tbil_uln=21", "gilbert_syndrome=0",
                "creatinine_umol_per_l=72", "creatinine_uln=97", "inr=1.0", "inr_uln=1.2", "pt_s=12.1", "pt_uln_s=13.5", "lvef_pct=62",
                "hemodynamically_stable=1", "spo2_pct=98", "pregnancy_test=negative", "lactating=0", "contraception_agreed=1", "consent_signed=1"
            )
            #expect(screening.status == 0, "\(screening.stderr)")
            let readable = try await cli.sitesync("eligibility", eligible)
            #expect(readable.status == 0 && readable.stdout.contains("verdict: ELIGIBLE"))
            let report = try json(try await cli.sitesync("eligibility", eligible, "--json")) as? [String: Any]
            #expect(report?["verdict"] as? String == "eligible")
            #expect((report?["criteria"] as? [[String: Any]])?.allSatisfy { $0["result"] as? String == "pass" } == true)

            let ineligible = try await cli.sitesync(
                "put", "subjects", "screening_no=S01-003", "sex=M", "birth_date=1949-01-20", "weight_kg=72", "survival_over_3_months=1"
            ).line
            #expect(
                try await cli.sitesync(
                    "put", "screenings", "subject_id=\(ineligible)", "date=2026-11-21", "sledai_2k=6", "ana_positive=1", "prednisone_mg_day=10",
                    "neutrophils_1e9_per_l=1.4", "platelets_1e9_per_l=42", "hemoglobin_g_per_l=101", "consent_signed=1"
                ).status == 0)
            let refused = try json(try await cli.sitesync("eligibility", ineligible, "--json")) as? [String: Any]
            #expect(refused?["verdict"] as? String == "ineligible")
            let results = Dictionary(
                uniqueKeysWithValues: ((refused?["criteria"] as? [[String: Any]]) ?? []).map { ($0["id"] as? String ?? "", $0["result"] as? String ?? "") })
            #expect(results["age"] == "fail" && results["sledai"] == "fail" && results["platelets"] == "fail")
            #expect(results["neutrophils"] == "pass" && results["lvef"] == "missing")
            let bad = try await cli.sitesync("put", "screenings", "subject_id=\(ineligible)", "date=2026-11-22", "sledai_2k=106", "pregnancy_test=maybe")
            #expect(bad.status != 0 && bad.stderr.contains("screenings.sledai_2k: must be a whole number from 0 to 105; got 106"))
            #expect(bad.stderr.contains("screenings.pregnancy_test: must be one of negative, positive, not_applicable"))
            let unknown = try await cli.sitesync("eligibility", "nobody")
            #expect(unknown.status != 0 && unknown.stderr.contains("No record nobody in subjects"))
        }
    }

    @Test("Safety flags of adverse events in get, list and safety")
    func safety() async throws {
        try await withFolder { cli in
            try await cli.offlineLaptop()
            let subject = try await cli.sitesync("put", "subjects", "screening_no=S01-010", "sex=F").line
            let early = try await cli.sitesync("put", "infusions", "subject_id=\(subject)", "date=2026-03-01")
            #expect(early.status != 0 && early.stderr.contains("is screening, not enrolled"))
            #expect(try await cli.sitesync("put", "subjects", "--id", subject, "status=enrolled").status == 0)
            #expect(try await cli.sitesync("put", "infusions", "subject_id=\(subject)", "date=2026-03-01", "dose_cells_per_kg=1000000", "lot=L-42").status == 0)
            let day28 = try await cli.sitesync(
                "put", "adverse_events", "subject_id=\(subject)", "term=Neutropenia", "onset_date=2026-03-29", "grade=3", "category=other",
                "grading_scale=CTCAE 5.0"
            ).line
            let day29 = try await cli.sitesync(
                "put", "adverse_events", "subject_id=\(subject)", "term=Pneumonia", "onset_date=2026-03-30", "grade=3", "category=other",
                "grading_scale=CTCAE 5.0"
            ).line

            let first = try json(try await cli.sitesync("get", "adverse_events", day28, "--json")) as? [String: Any]
            #expect(first?["days_after_infusion"] as? Int == 28)
            #expect(first?["dlt_window"] as? Bool == true && first?["dlt_candidate"] as? Bool == true && first?["src_review"] as? Bool == false)
            let listed = try json(try await cli.sitesync("list", "adverse_events", "--json")) as? [[String: Any]]
            let second = listed?.first { $0["id"] as? String == day29 }
            #expect(second?["dlt_window"] as? Bool == false && second?["dlt_candidate"] as? Bool == false && second?["src_review"] as? Bool == true)
            let report = try json(try await cli.sitesync("safety", subject, "--json")) as? [String: Any]
            #expect(report?["infusion_date"] as? String == "2026-03-01")
            #expect((report?["events"] as? [[String: Any]])?.map { $0["term"] as? String } == ["Neutropenia", "Pneumonia"])
            let readable = try await cli.sitesync("safety", subject)
            #expect(
                readable.status == 0 && readable.stdout.contains("day 28") && readable.stdout.contains("day 29") && readable.stdout.contains("2 adverse events")
            )
            #expect(try await cli.sitesync("list", "adverse_events").stdout.contains("dlt_candidate"))
        }
    }

    @Test("Import writes every row or none, reporting each bad row by line and field")
    func importCSV() async throws {
        try await withFolder { cli in
            try await cli.offlineLaptop()
            let bad = """
                subject_id,term,onset_date,grade,category,grading_scale,outcome
                s1,Fever,2026-03-02,1,other,CTCAE 5.0,recovered
                s1,"Rash, maculopapular",2026-03-04,7,other,CTCAE 5.0,"said ""itchy""
                resolved"
                s1,Cytokine release syndrome,2026-03-05,5,crs,ASTCT 2019,
                s1,Headache,2026-03-06
                """
            try bad.write(to: cli.directory.appendingPathComponent("bad.csv"), atomically: true, encoding: .utf8)
            let refused = try await cli.sitesync("import", "adverse_events", "bad.csv")
            #expect(refused.status != 0)
            #expect(refused.stderr.contains("line 3: adverse_events.grade: must be a whole number from 1 to 5; got 7"), "\(refused.stderr)")
            #expect(refused.stderr.contains("line 6: has 3 cells for 7 fields"))
            #expect((try json(try await cli.sitesync("list", "adverse_events", "--json")) as? [Any])?.isEmpty == true, "nothing written")

            // Rows that pass field rules but break a record rule are reported too, still writing nothing
            let ruled = """
                subject_id,term,onset_date,grade,category,grading_scale
                s1,Fever,2026-03-02,1,other,CTCAE 5.0
                s1,Cytokine release syndrome,2026-03-05,5,crs,ASTCT 2019
                """
            try ruled.write(to: cli.directory.appendingPathComponent("ruled.csv"), atomically: true, encoding: .utf8)
            let second = try await cli.sitesync("import", "adverse_events", "ruled.csv")
            #expect(second.status != 0 && second.stderr.contains("line 3: adverse_events.grade: must be from 1 to 4 for CRS (ASTCT 2019); got 5"))
            #expect((try json(try await cli.sitesync("list", "adverse_events", "--json")) as? [Any])?.isEmpty == true)

            // Malformed CSV is refused with its line, not read some way: text after a closing quote,
            // and a quoted cell left open.
            for (name, text, message) in [
                ("after-quote.csv", "subject_id,term\ns1,Fever\ns1,\"Ra\"sh\n", "Line 3: not valid CSV"),
                ("open-quote.csv", "subject_id,term\ns1,Fever\ns1,\"Rash\nand more\n", "Line 3: a quoted cell is not closed."),
            ] {
                try text.write(to: cli.directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
                let malformed = try await cli.sitesync("import", "adverse_events", name)
                #expect(malformed.status != 0 && malformed.stderr.contains(message), "\(name): \(malformed.stderr)")
            }
            #expect((try json(try await cli.sitesync("list", "adverse_events", "--json")) as? [Any])?.isEmpty == true)

            let good = bad.replacingOccurrences(of: ",7,", with: ",2,").replacingOccurrences(of: ",5,crs", with: ",4,crs").replacingOccurrences(
                of: "2026-03-06", with: "2026-03-06,1,other,CTCAE 5.0,")
            try good.write(to: cli.directory.appendingPathComponent("good.csv"), atomically: true, encoding: .utf8)
            let imported = try await cli.sitesync("import", "adverse_events", "good.csv")
            #expect(imported.status == 0 && imported.line == "Imported 4 records into adverse_events.", "\(imported.stderr)")
            let records = try json(try await cli.sitesync("list", "adverse_events", "--json")) as? [[String: Any]]
            #expect(records?.count == 4)
            #expect(records?.contains { $0["term"] as? String == "Rash, maculopapular" && $0["outcome"] as? String == "said \"itchy\"\nresolved" } == true)
            #expect(try json(try await cli.sitesync("status", "--json")) as? [String: Any] != nil)
        }
    }

    @Test("Processes opening a new database at once migrate it once, without failing")
    func concurrentFirstOpen() async throws {
        try await withFolder { cli in
            for round in 0..<3 {
                let results = try await withThrowingTaskGroup(of: Commands.Result.self) { group in
                    for _ in 0..<8 {
                        group.addTask {
                            try await cli.run("sitesync-server", ["token", "create", "--role", "reviewer", "--database", "fresh-\(round).sqlite"])
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
                #expect(Set(results.map(\.line)).count == 8)
            }
        }
    }

    @Test("Usage errors and unknown records exit non-zero with a message on stderr")
    func errors() async throws {
        try await withFolder { cli in
            let uninitialised = try await cli.sitesync("put", "subjects", "screening_no=x")
            #expect(uninitialised.status != 0 && uninitialised.stderr.contains("not initialised"))
            try await cli.offlineLaptop()
            let missing = try await cli.sitesync("get", "subjects", "nope")
            #expect(missing.status != 0 && missing.stderr.contains("No record nope in subjects"))
            let table = try await cli.sitesync("list", "labs")
            #expect(table.status != 0 && table.stderr.contains("labs: is not a known table"))
            let reviewerToken = try await cli.run("sitesync-server", ["token", "create", "--role", "reviewer", "--site", "S01"])
            #expect(reviewerToken.status != 0 && reviewerToken.stderr.contains("do not give --site"))
            let reviewer = try await cli.run("sitesync-server", ["token", "create", "--role", "reviewer"])
            #expect(reviewer.status == 0 && reviewer.line.hasPrefix("sst_"))
        }
    }
}
