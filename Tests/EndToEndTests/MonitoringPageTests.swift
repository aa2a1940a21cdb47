import Foundation
import SiteSyncCore
import SiteSyncTestSupport
import Testing
import TrialRecords

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The operators' and monitors' tools against a real `sitesync-server` process and real laptops:
/// `replicas list`, `--metrics-port` read by a Prometheus parser, `--log-format json`, and the
/// monitoring page in headless Chromium (Tests/Browser/monitor.py).
@Suite("Monitoring, end to end", .serialized)
struct MonitoringPageTests {
    /// The Python that reads `/metrics` with `prometheus_client`: `SITESYNC_TEST_PYTHON` (`.ci/run`
    /// makes a virtual environment with it), else `python3`.
    static let python = ProcessInfo.processInfo.environment["SITESYNC_TEST_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/bin/python3"
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Browser/monitor.py").standardized.path
    static let images = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/images").standardized

    /// Whether the browser and the parser are here. In CI (`CI` set) the tests run regardless, so
    /// that a missing Chromium or `prometheus_client` fails them instead of skipping them.
    static let available: Bool = {
        if ProcessInfo.processInfo.environment["CI"] != nil { return true }
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].contains { FileManager.default.isExecutableFile(atPath: $0) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", "import prometheus_client"]
        process.standardError = FileHandle.nullDevice
        guard chromium, (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// Scrapes `url` through `prometheus_client`'s parser: every sample by `name{label=value,…}`.
    static func scrape(_ url: String) async throws -> [String: Double] {
        let (status, stdout, stderr) = try await Subprocess.run(python, [script, "metrics", url])
        #expect(status == 0, "\(String(decoding: stderr, as: UTF8.self))")
        return try JSONDecoder().decode([String: Double].self, from: stdout)
    }

    @Test("replicas list shows each laptop's last sync and report; JSON logs carry the request ids of error bodies; /metrics on its port parses and moves")
    func operators() async throws {
        try await Commands.inTemporaryFolder { cli in
            let metricsPort = try Commands.freePort()
            let (server, port) = try await cli.startServer(
                database: "server.sqlite", arguments: ["--metrics-port", String(metricsPort), "--log-format", "json"], log: "server.log"
            )
            defer { server.terminate() }
            let url = "http://127.0.0.1:\(port)"
            let token = try await cli.run("sitesync-server", ["token", "create", "--role", "site", "--site", "S01", "--database", "server.sqlite"]).line
            #expect(try await cli.sitesync("init", "--db", "a.sqlite", "--site", "S01", "--server", url, "--token", token, "--user", "A. Rivera").status == 0)
            #expect(try await cli.sitesync("init", "--db", "b.sqlite", "--site", "S01", "--server", url, "--token", token, "--user", "B. Chen").status == 0)
            for replica in ["a.sqlite", "b.sqlite"] { try await cli.signIn(db: replica, database: "server.sqlite") }
            let scraped = "http://127.0.0.1:\(metricsPort)/metrics"
            let before = try await Self.scrape(scraped)
            #expect(try await cli.sitesync("put", "--db", "a.sqlite", "subjects", "screening_no=S01-001", "sex=F").status == 0)
            #expect(try await cli.sitesync("put", "--db", "a.sqlite", "subjects", "screening_no=S01-002", "sex=M").status == 0)
            #expect(try await cli.sitesync("sync", "--db", "a.sqlite").status == 0)
            let after = try await Self.scrape(scraped)
            #expect(after["sitesync_push_records_total"]! - before["sitesync_push_records_total"]! == 2)
            #expect(
                after["sitesync_field_changes_total"]! - before["sitesync_field_changes_total"]! == Double(2 * TrialSchema.subjects.columns.count),
                "every field of each new subject, the empty ones included"
            )
            #expect((after["sitesync_http_requests_total{method=POST,route=/v1/push,status=200}"] ?? 0) >= 1)
            #expect(after["sitesync_push_apply_duration_seconds_count"]! - before["sitesync_push_apply_duration_seconds_count"]! == 1)

            let listed = try await cli.run("sitesync-server", ["replicas", "list", "--database", "server.sqlite"])
            #expect(listed.status == 0)
            let lines = listed.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("replica") == true && lines.last == "2 laptops")
            let rivera = try #require(lines.first { $0.contains("A. Rivera") })
            #expect(rivera.contains("S01") && rivera.contains("sitesync \(SiteSyncBuild.version)") && rivera.contains("  0  "), "pending 0 after its sync")
            #expect(lines.contains { $0.contains("never") }, "B. Chen's laptop has not synced")

            let json = try await cli.run("sitesync-server", ["replicas", "list", "--database", "server.sqlite", "--json"])
            let objects = try json.stdout.split(separator: "\n").map { try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(objects.count == 2)
            let report = try #require(objects.compactMap { $0["report"] as? [String: Any] }.first)
            #expect(report["user"] as? String == "A. Rivera" && report["pending"] as? Int == 0 && report["schema_version"] as? Int == TrialSchema.version)
            #expect(abs(report["clock_offset_ms"] as? Int ?? .max) < 5000, "the same clock, give or take the request's time")

            #expect(try await cli.run("sitesync-server", ["replicas", "list", "--database", "server.sqlite", "--site", "S02"]).stdout.hasSuffix("0 laptops\n"))
            #expect(
                try await cli.run("sitesync-server", ["replicas", "list", "--database", "server.sqlite", "--stale", "1d"]).stdout.contains(
                    "0 laptops without a completed sync for more than 1d"))
            try await Task.sleep(for: .milliseconds(1100))
            #expect(
                try await cli.run("sitesync-server", ["replicas", "list", "--database", "server.sqlite", "--stale", "1s"]).stdout.contains("2 laptops without"))
            let bad = try await cli.run("sitesync-server", ["replicas", "list", "--database", "server.sqlite", "--site", "S 01"])
            #expect(bad.status != 0 && bad.stderr.contains("--site must be a site id"))

            // An error's request id finds its line in the JSON log.
            var request = URLRequest(url: URL(string: "\(url)/v1/pull?limit=0")!)
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            request.setValue("1", forHTTPHeaderField: SyncProtocol.protocolHeader)
            request.setValue("1", forHTTPHeaderField: SyncProtocol.schemaHeader)
            let (body, _) = try await URLSession.shared.data(for: request)
            let id = try #require(try JSONDecoder().decode(ErrorResponse.self, from: body).error.requestID)
            let log = try String(contentsOf: cli.directory.appendingPathComponent("server.log"), encoding: .utf8)
            let entries = try log.split(separator: "\n").map { line in
                try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "every line is a JSON object: \(line)")
            }
            #expect(entries.contains { $0["request_id"] == id && $0["message"] == "request refused" })
            // The laptop's error names the request too, for the operator to look up.
            let revoked = try await cli.run(
                "sitesync-server", ["token", "revoke", "--replica", try #require(objects.first?["replica"] as? String), "--database", "server.sqlite"])
            #expect(revoked.status == 0)
            let refused = try await cli.sitesync("sync", "--db", objects.first?["report"] == nil ? "b.sqlite" : "a.sqlite")
            #expect(refused.status != 0)
            // Hummingbird's request ids are hex without a fixed width: the random high half drops
            // its leading zeros.
            let quoted = try #require(refused.stderr.range(of: #"Request [0-9a-f]+ in the server's log"#, options: .regularExpression), "\(refused.stderr)")
            let refusedID = String(refused.stderr[quoted].dropFirst("Request ".count).prefix { $0.isHexDigit })
            let again = try String(contentsOf: cli.directory.appendingPathComponent("server.log"), encoding: .utf8)
            #expect(again.contains(#""request_id":"\#(refusedID)""#))
            #expect(entries.contains { $0["message"] == "push applied" && $0["sync.records"] == "2" })
        }
    }

    @Test("A monitor logs in with Chromium, opens the overview, the site and a conflict, and logs out", .enabled(if: available))
    func browser() async throws {
        try await Commands.inTemporaryFolder { cli in
            let (server, port) = try await cli.startServer(database: "server.sqlite", log: "server.log")
            defer { server.terminate() }
            let url = "http://127.0.0.1:\(port)"
            func serverCommand(_ arguments: String...) async throws -> String {
                try await cli.run("sitesync-server", arguments + ["--database", "server.sqlite"]).line
            }
            let token = try await serverCommand("token", "create", "--role", "site", "--site", "S01")
            let monitor = try await serverCommand("token", "create", "--role", "monitor", "--site", "S01", "--label", "Dr. M. Keller (CRA)")
            #expect(try await cli.sitesync("init", "--db", "a.sqlite", "--site", "S01", "--server", url, "--token", token, "--user", "A. Rivera").status == 0)
            #expect(try await cli.sitesync("init", "--db", "b.sqlite", "--site", "S01", "--server", url, "--token", token, "--user", "B. Chen").status == 0)
            // Two people, one on each laptop: the conflict names each by their full name.
            try await cli.signIn("ana.lima", name: "Ana Lima", db: "a.sqlite", database: "server.sqlite")
            try await cli.signIn("ben.okafor", name: "Ben Okafor", db: "b.sqlite", database: "server.sqlite")
            let subject = try await cli.sitesync(
                "put", "--db", "a.sqlite", "subjects", "screening_no=SCR-0042", "sex=F", "birth_date=1971-05-02", "consent_date=2026-09-01", "status=enrolled"
            ).line
            #expect(try await cli.sitesync("put", "--db", "a.sqlite", "infusions", "subject_id=\(subject)", "date=2026-10-01", "lot=IC19-2291").status == 0)
            #expect(
                try await cli.sitesync(
                    "put", "--db", "a.sqlite", "adverse_events", "subject_id=\(subject)", "term=Cytokine release syndrome", "onset_date=2026-10-11", "grade=3",
                    "category=crs"
                ).status == 0)
            #expect(
                try await cli.sitesync(
                    "put", "--db", "a.sqlite", "adverse_events", "subject_id=\(subject)", "term=Headache", "onset_date=2026-10-03", "grade=1"
                ).status == 0)
            #expect(try await cli.sitesync("sync", "--db", "a.sqlite").status == 0)
            #expect(try await cli.sitesync("sync", "--db", "b.sqlite").status == 0)
            // The same screening number changed on both laptops offline: one value is kept, the other logged.
            #expect(
                try await cli.sitesync(
                    "put", "--db", "a.sqlite", "subjects", "--id", subject, "screening_no=<script>alert('x')</script>", "--reason", "Transcription"
                ).status == 0)
            try await Task.sleep(for: .milliseconds(5))
            #expect(
                try await cli.sitesync("put", "--db", "b.sqlite", "subjects", "--id", subject, "screening_no=SCR-0042-A", "--reason", "Site log").status == 0)
            for db in ["a.sqlite", "b.sqlite"] { #expect(try await cli.sitesync("sync", "--db", db).status == 0) }
            let conflict = try await cli.sitesync("conflicts", "list", "--db", "b.sqlite", "--ids").line
            #expect(!conflict.isEmpty)

            let (status, stdout, stderr) = try await Subprocess.run(Self.python, [Self.script, "browse", url, monitor, conflict, Self.images.path])
            #expect(status == 0, "\(String(decoding: stderr, as: UTF8.self))")
            let pages = try #require(try JSONSerialization.jsonObject(with: stdout) as? [String: Any])
            func page(_ name: String) -> (url: String, text: String) {
                let page = pages[name] as? [String: String]
                return (page?["url"] ?? "", page?["text"] ?? "")
            }
            #expect(page("login").url == "/monitor/login", "sent to the login first")
            #expect(page("overview").url == "/monitor")
            #expect(
                page("overview").text.contains("S01") && page("overview").text.contains("2 laptop(s)") && page("overview").text.contains("1 open conflict(s)"))
            #expect(page("overview").text.contains("Dr. M. Keller (CRA) · monitor, site S01"))
            let site = page("site")
            #expect(site.url == "/monitor/sites/S01")
            #expect(site.text.contains("A. Rivera") && site.text.contains("B. Chen") && site.text.contains("sitesync \(SiteSyncBuild.version)"))
            #expect(site.text.contains("Cytokine release syndrome, grade 3") && site.text.contains("DLT candidate") && site.text.contains("day 10"))
            #expect(!site.text.contains("Headache"))
            #expect(site.text.contains("Open conflicts (1)"))
            let detail = page("conflict")
            #expect(detail.url == "/monitor/conflicts/\(conflict)")
            #expect(detail.text.contains("Conflict on subjects \(subject), field screening_no"))
            #expect(detail.text.contains("Kept\n\nSCR-0042-A\n\nBy Ben Okafor"), "\(detail.text)")
            #expect(detail.text.contains("Overwritten\n\n<script>alert('x')</script>\n\nBy Ana Lima"), "the value shows as text, never run")
            let cookie = try #require((pages["cookies"] as? [[String: Any]])?.first)
            #expect(cookie["httpOnly"] as? Bool == true && cookie["sameSite"] as? String == "Strict" && cookie["path"] as? String == "/monitor")
            #expect(page("logout").url == "/monitor/login" && page("after_logout").url == "/monitor/login")
            for image in ["monitor-login", "monitor-overview", "monitor-site", "monitor-conflict"] {
                let size = try FileManager.default.attributesOfItem(atPath: Self.images.appendingPathComponent("\(image).png").path)[.size] as? Int
                #expect((size ?? 0) > 10_000, "\(image).png")
            }
        }
    }
}
