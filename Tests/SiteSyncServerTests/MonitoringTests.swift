import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SiteSyncCore
import SiteSyncRules
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

@testable import SiteSyncPostgresStore
@testable import SiteSyncSQLiteStore
@testable import SiteSyncServer

/// `/metrics`, `/readyz`, request ids, laptops' reports and the monitoring page, on both stores.
@Suite("Monitoring")
struct MonitoringTests {
    // MARK: Metrics

    @Test("/metrics takes a metrics or admin token, and its counters move with pushes, pulls and refusals", arguments: StoreKind.all)
    func metrics(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let scraper = try await Tokens.create(in: server.store, role: .metrics, site: nil)
        try await server.test { client in
            try await client.execute(uri: "/metrics", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(server.s01)"]) { response in
                #expect(response.status == .forbidden)
            }
            let before = try await Self.scrape(client, scraper)
            #expect(before["sitesync_push_records_total"] == 0)
            let now = HybridLogicalClock.systemMilliseconds()
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01),
                body: try json(subjectPush(ids: ["a", "b", "c"], milliseconds: now - 20))
            ) { #expect($0.status == .ok) }
            // Replica r1b, which never saw r1's b, changes its status later: a conflict at S01.
            let edit = PushRequest(
                replica: "r1b",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "B", columns: ["status"],
                        rows: [
                            ChangeRow(id: "b", seq: HLC(milliseconds: now - 10), values: [.text("enrolled")], bases: [nil])
                        ])
                ])
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01b), body: try json(edit)) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v1/pull?limit=100", method: .get, headers: syncHeaders(server.s02)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/pull?limit=100&replica=r1", method: .get, headers: syncHeaders(server.s01)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/pull?limit=0", method: .get, headers: syncHeaders(server.s01)) { #expect($0.status == .unprocessableContent) }
            let after = try await Self.scrape(client, scraper)
            #expect(after["sitesync_push_records_total"] == 4)
            #expect(after["sitesync_field_changes_total"] == 10, "3 fields in each of 3 new records, and a status")
            #expect(after["sitesync_conflicts_total"] == 1, "r1's status of b, overwritten by r1b's")
            #expect(after["sitesync_pull_records_total"] == 2, "S02 pulled none, r1 b and the conflict's record: its own a and c are skipped")
            #expect(after[#"sitesync_open_conflicts{site="S01"}"#] == 1)
            #expect(after[#"sitesync_http_requests_total{method="POST",route="/v1/push",status="200"}"#] == 2)
            #expect(after[#"sitesync_http_requests_total{method="GET",route="/v1/pull",status="422"}"#] == 1)
            #expect(after[#"sitesync_refusals_total{code="validation_failed"}"#] == 1)
            #expect(after[#"sitesync_refusals_total{code="forbidden"}"#] == 1)
            #expect(after["sitesync_push_apply_duration_seconds_count"] == 2)
            #expect(after["sitesync_pull_duration_seconds_count"] == 2)
        }
    }

    /// Scrapes `/metrics` and reads every sample (`name{labels} value`) into a dictionary.
    static func scrape(_ client: any TestClientProtocol, _ token: String) async throws -> [String: Double] {
        try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(token)"]) { response in
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            var samples: [String: Double] = [:]
            for line in String(buffer: response.body).split(separator: "\n") where !line.hasPrefix("#") {
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
                samples[String(line[..<space])] = value
            }
            return samples
        }
    }

    // MARK: Health

    @Test("/readyz is ready on a migrated store, and not ready with a migration missing", arguments: StoreKind.all)
    func readiness(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            // A probe asks again when the store did not answer in time: on a machine loaded by the
            // other suites, PostgreSQL can take longer than the check's 5 s.
            func readiness() async throws -> (HTTPResponse.Status, String) {
                for attempt in 1... {
                    let (status, body) = try await client.execute(uri: "/readyz", method: .get) { ($0.status, String(buffer: $0.body)) }
                    if !body.contains("store_timeout") || attempt == 10 { return (status, body) }
                }
                preconditionFailure("unreachable")
            }
            #expect(try await readiness() == (.ok, #"{"status":"ready"}"#))
            switch server.store {
            case let sqlite as SQLiteSyncStore:
                try await sqlite.writer.write { try $0.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'server-v5-monitoring'") }
            case let postgres as PostgresSyncStore:
                try await postgres.execute("DELETE FROM sitesync_migrations WHERE name = 'server-v4-monitoring'")
            default:
                Issue.record("unknown store")
            }
            #expect(try await readiness() == (.serviceUnavailable, #"{"status":"not_ready","reason":"migrations_pending"}"#))
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok, "alive all the same") }
        }
    }

    @Test("/readyz is not ready when PostgreSQL cannot be reached")
    func unreachable() async throws {
        let store = try PostgresSyncStore(
            url: "postgres://nobody@127.0.0.1:1/nothing", schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
        let running = Task { try await store.run() }
        defer { running.cancel() }
        var configuration = ServerConfiguration(schema: TrialSchema.current)
        configuration.port = 0
        try await buildApplication(configuration, store: store).test(.router) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = String(buffer: response.body)
                #expect(body.contains(#""status":"not_ready""#) && (body.contains("store_unreachable") || body.contains("store_timeout")), "\(body)")
            }
        }
    }

    // MARK: Request ids

    @Test("An error's request_id is its X-Request-ID, and the JSON log line of the request carries it")
    func requestID() async throws {
        let lines = Mutex<[String]>([])
        let logger = Logger(label: "sitesync.server") { label in JSONLogHandler(label: label) { line in lines.withLock { $0.append(line) } } }
        let server = try await TestServer.make()
        try await buildApplication(server.configuration, store: server.store, logger: logger).test(.router) { client in
            try await client.execute(uri: "/v1/pull?limit=0", method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .unprocessableContent)
                let error = try decode(ErrorResponse.self, response.body)
                let id = try #require(error.error.requestID)
                #expect(response.headers[HTTPField.Name("X-Request-ID")!] == id)
                let logged = lines.withLock { $0 }.filter { $0.contains(id) }
                let line = try #require(logged.first, "a log line names the request")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
                #expect(object["request_id"] == id)
                #expect(object["sync.error"] == "validation_failed")
                #expect(object["level"] == "notice")
                #expect(object["time"]?.hasSuffix("Z") == true)
            }
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(isRequestID(response.headers[HTTPField.Name("X-Request-ID")!]))
            }
        }
        // A logger that keeps no metadata (the bench's, embedding apps') still gets ids.
        let silent = Logger(label: "sitesync.server") { _ in SwiftLogNoOpLogHandler() }
        try await buildApplication(server.configuration, store: server.store, logger: silent).test(.router) { client in
            try await client.execute(uri: "/v1/pull?limit=0", method: .get, headers: syncHeaders(server.s01)) { response in
                let id = try #require(try decode(ErrorResponse.self, response.body).error.requestID)
                #expect(response.headers[HTTPField.Name("X-Request-ID")!] == id && isRequestID(id))
            }
        }
    }

    // MARK: Laptops' reports

    @Test("A pull's report is kept at the end of a sync, with the laptop's clock offset; a bad one is refused naming the field", arguments: StoreKind.all)
    func reports(store: StoreKind) async throws {
        let serverClock: Int64 = 1_800_000_000_000
        let server = try await TestServer.make(store) { $0.wallClock = { serverClock } }
        try await server.test { client in
            let report = ReplicaReport(pending: 4, build: "ClinicApp 2.3 (412)", clock: serverClock + 90_500, user: "B. Okafor")
            let query = PullRequest(cursor: [:], limit: 10, replica: "r1", report: report).queryItems
                .map { "\($0.name)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }.joined(separator: "&")
            try await client.execute(uri: "/v1/pull?\(query)", method: .get, headers: syncHeaders(server.s01, schema: "2")) { #expect($0.status == .ok) }
            let laptops = try await server.store.replicaFreshness(site: "S01")
            #expect(laptops.map(\.replica) == ["r1", "r1b"])
            let kept = try #require(laptops[0].report)
            #expect(kept.user == "B. Okafor" && kept.build == "ClinicApp 2.3 (412)" && kept.pending == 4 && kept.schemaVersion == 2)
            #expect(kept.clockOffsetMilliseconds == 90_500)
            #expect(laptops[1].report == nil, "r1b never synced")
            // A laptop pulling often is recorded when its report says something new, else once a minute.
            func pull(_ report: ReplicaReport) async throws {
                let query = PullRequest(cursor: [:], limit: 10, replica: "r1", report: report).queryItems
                    .map { "\($0.name)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }.joined(separator: "&")
                try await client.execute(uri: "/v1/pull?\(query)", method: .get, headers: syncHeaders(server.s01, schema: "2")) { #expect($0.status == .ok) }
            }
            try await Task.sleep(for: .milliseconds(1100))
            try await pull(report)
            #expect(try await server.store.replicaFreshness(site: "S01")[0].report == kept, "nothing new: not written again")
            var more = report
            more.pending = 9
            try await pull(more)
            #expect(try await server.store.replicaFreshness(site: "S01")[0].report == kept, "a count that grew is a minute late at most")
            var emptied = report
            emptied.pending = 0
            try await pull(emptied)
            let again = try #require(try await server.store.replicaFreshness(site: "S01")[0].report)
            #expect(again.pending == 0 && again.lastSyncAt > kept.lastSyncAt)
            #expect(try await server.store.replicaFreshness(site: "S02").map(\.replica) == ["r2"])

            let before = try await server.dump()
            for (bad, named) in [
                ("report_pending=-1&report_build=x&report_clock=1&report_user=u", "report.pending"),
                ("report_pending=1&report_build=&report_clock=1&report_user=u", "report.build"),
                ("report_pending=1&report_build=x&report_clock=1", "report_user"),
                ("report_pending=1&report_build=x&report_clock=soon&report_user=u", "report_clock"),
                // Control characters: a line break, an escape, a bidirectional override.
                ("report_pending=1&report_build=app%0A1.0&report_clock=1&report_user=u", "report.build must not contain control characters"),
                ("report_pending=1&report_build=app%1B%5B31m&report_clock=1&report_user=u", "report.build must not contain control characters"),
                ("report_pending=1&report_build=app%E2%80%AE1.0&report_clock=1&report_user=u", "report.build must not contain control characters"),
            ] {
                try await client.execute(uri: "/v1/pull?limit=10&replica=r1&\(bad)", method: .get, headers: syncHeaders(server.s01)) { response in
                    #expect(response.status == .unprocessableContent)
                    let message = try decode(ErrorResponse.self, response.body).error.message
                    #expect(message.contains(named), "\(bad): \(message)")
                }
            }
            #expect(try await server.dump() == before)
            #expect(try await server.store.replicaFreshness(site: "S01")[0].report == again, "nothing written")
        }
    }

    // MARK: The monitoring page

    /// A server with S01 and S02 data: subjects (one screening number is `<script>`), a conflict at
    /// each site, and at S01 an infusion and a grade 3 event 10 days after it (a DLT candidate).
    static func populated(_ kind: StoreKind) async throws -> (TestServer, s01Monitor: String, allMonitor: String, conflicts: [String: String]) {
        let server = try await TestServer.make(kind) { $0.monitorAlerts = MonitorAlerts(tables: Safety.monitorTables, alerts: Safety.monitorAlerts) }
        let now = HybridLogicalClock.systemMilliseconds()
        func push(_ token: String, _ request: PushRequest) async throws {
            try await server.test { client in
                try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(token, schema: "2"), body: try json(request)) {
                    response in
                    #expect(response.status == .ok, "\(String(buffer: response.body))")
                }
            }
        }
        func row(_ id: String, _ milliseconds: Int64, _ values: [FieldValue]) -> ChangeRow {
            ChangeRow(id: id, seq: HLC(milliseconds: milliseconds, counter: 0), values: values)
        }
        let subjectColumns = ["site_id", "screening_no", "status"]
        try await push(
            server.s01,
            PushRequest(
                replica: "r1",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "A. Rivera", columns: subjectColumns,
                        rows: [
                            row("S01-001", now - 20, [.text("S01"), .text("<script>alert(1)</script>"), .text("enrolled")])
                        ]),
                    ChangeGroup(
                        table: "infusions", user: "A. Rivera", columns: ["site_id", "subject_id", "date"],
                        rows: [
                            row("INF-1", now - 20, [.text("S01"), .text("S01-001"), .text("2026-10-01")])
                        ]),
                    ChangeGroup(
                        table: "adverse_events", user: "A. Rivera", columns: ["site_id", "subject_id", "term", "onset_date", "grade", "category"],
                        rows: [
                            row(
                                "AE-1", now - 20,
                                [.text("S01"), .text("S01-001"), .text("Cytokine release syndrome"), .text("2026-10-11"), .integer(3), .text("crs")]),
                            row("AE-2", now - 20, [.text("S01"), .text("S01-001"), .text("Headache"), .text("2026-10-12"), .integer(1), .text("other")]),
                        ]),
                ]))
        // r1b never saw r1's screening number and writes its own later: r1's is overwritten and logged.
        try await push(
            server.s01b,
            PushRequest(
                replica: "r1b",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "<b>Mallory</b>", columns: ["screening_no"],
                        rows: [
                            ChangeRow(id: "S01-001", seq: HLC(milliseconds: now - 10), values: [.text("SCR-<i>17</i>")], bases: [nil])
                        ])
                ]))
        try await push(server.s02, subjectPush(replica: "r2", site: "S02", ids: ["S02-001"], milliseconds: now - 20))
        try await push(
            server.reviewer,
            PushRequest(
                replica: "rv",
                groups: [
                    ChangeGroup(
                        table: "subjects", user: "C. Chen", columns: ["screening_no"],
                        rows: [
                            ChangeRow(id: "S02-001", seq: HLC(milliseconds: now - 10), values: [.text("SCR-2")], bases: [nil])
                        ])
                ]))
        var conflicts: [String: String] = [:]
        for site in ["S01", "S02"] {
            let page = try await server.store.conflicts(ConflictFilter(status: .open, site: site), principal: Principal(role: .reviewer, site: nil))
            conflicts[site] = try #require(page.conflicts.first { $0.field == "screening_no" }).id
        }
        let s01Monitor = try await Tokens.create(in: server.store, role: .monitor, site: "S01", label: "Monitor <Ann>")
        let allMonitor = try await Tokens.create(in: server.store, role: .monitor, site: nil, label: "Lead monitor")
        return (server, s01Monitor, allMonitor, conflicts)
    }

    /// The attributes of a `Set-Cookie` header, in any order: `HttpOnly`, `Path=/monitor`, …
    static func attributes(_ cookie: String?) -> Set<String> {
        Set((cookie ?? "").split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// Opens the login form; returns its form token, which its cookie holds too.
    static func loginForm(_ client: any TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/monitor/login", method: .get) { response in
            let cookie = try #require(response.headers[.setCookie])
            #expect(cookie.hasPrefix("sitesync_login=") && Self.attributes(cookie).isSuperset(of: ["HttpOnly", "SameSite=Strict"]))
            let value = String(try #require(cookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last))
            #expect(String(buffer: response.body).contains(#"<input type="hidden" name="csrf" value="\#(value)">"#))
            return value
        }
    }

    /// POSTs the login form with `token`, as a browser that opened the form would.
    static func postLogin<T>(_ client: any TestClientProtocol, _ token: String, form: String? = nil, _ check: @escaping (TestResponse) async throws -> T)
        async throws -> T
    {
        let form = if let form { form } else { try await loginForm(client) }
        return try await client.execute(
            uri: "/monitor/login", method: .post,
            headers: [.contentType: "application/x-www-form-urlencoded", .cookie: "sitesync_login=\(form)"],
            body: ByteBuffer(string: "token=\(token)&csrf=\(form)"), testCallback: check
        )
    }

    /// Logs in with `token`; returns the session cookie's value.
    static func logIn(_ client: any TestClientProtocol, _ token: String) async throws -> String {
        try await postLogin(client, token) { response in
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/monitor")
            let cookie = try #require(response.headers[.setCookie])
            #expect(Self.attributes(cookie).isSuperset(of: ["HttpOnly", "SameSite=Strict", "Path=/monitor"]))
            let value = try #require(cookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last)
            return String(value)
        }
    }

    /// GETs a page with the session cookie; returns its status and HTML.
    static func page(_ client: any TestClientProtocol, _ path: String, _ session: String?) async throws -> (HTTPResponse.Status, String) {
        var headers: HTTPFields = [:]
        if let session { headers[.cookie] = "sitesync_session=\(session)" }
        return try await client.execute(uri: path, method: .get, headers: headers) { response in
            if response.status == .ok {
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(response.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
            }
            return (response.status, response.status == .seeOther ? response.headers[.location] ?? "" : String(buffer: response.body))
        }
    }

    @Test(
        "A site's monitor sees its site, its laptops, conflicts, flagged events, counts and chart, escaped; another site's pages are refused",
        arguments: StoreKind.all)
    func sitePages(store: StoreKind) async throws {
        let (server, s01Monitor, _, conflicts) = try await Self.populated(store)
        try await server.test { client in
            let session = try await Self.logIn(client, s01Monitor)
            let (status, overview) = try await Self.page(client, "/monitor", session)
            #expect(status == .ok)
            #expect(overview.contains(#"<a href="/monitor/sites/S01">S01</a>"#))
            #expect(!overview.contains("S02"), "an S01 monitor never sees S02")
            #expect(overview.contains("Monitor &lt;Ann&gt;"), "the label is escaped")

            let (siteStatus, site) = try await Self.page(client, "/monitor/sites/S01", session)
            #expect(siteStatus == .ok)
            #expect(site.contains("<td>r1</td>") && site.contains("<td>r1b</td>"), "both laptops")
            #expect(site.contains("never"), "neither has reported a completed sync")
            #expect(!site.contains("· stale"), "enrolled just now")
            #expect(site.contains("Open conflicts (1)"))
            #expect(site.contains("/monitor/conflicts/\(conflicts["S01"]!)"))
            #expect(site.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "a record's value is text")
            #expect(!site.contains("<script>"), "and never markup")
            #expect(site.contains("&lt;b&gt;Mallory&lt;/b&gt;"))
            #expect(site.contains("Cytokine release syndrome, grade 3") && site.contains("DLT candidate") && site.contains("day 10"))
            #expect(!site.contains("Headache"), "a grade 1 event is not flagged")
            #expect(site.contains("<tr><td>subjects</td><td class=\"num\">1</td></tr>"))
            #expect(site.contains("<tr><td>adverse_events</td><td class=\"num\">2</td></tr>"))
            let today = Date().formatted(Date.ISO8601FormatStyle().year().month().day())
            #expect(site.contains("<title>\(today): 5 change(s)</title>"), "4 records from r1 and 1 from r1b today")

            let (conflictStatus, conflict) = try await Self.page(client, "/monitor/conflicts/\(conflicts["S01"]!)", session)
            #expect(conflictStatus == .ok)
            let kept = try #require(conflict.range(of: "<h3>Kept</h3>"))
            let overwritten = try #require(conflict.range(of: "<h3>Overwritten</h3>"))
            #expect(conflict[kept.upperBound..<overwritten.lowerBound].contains("SCR-&lt;i&gt;17&lt;/i&gt;"))
            #expect(conflict[kept.upperBound..<overwritten.lowerBound].contains("By &lt;b&gt;Mallory&lt;/b&gt; on replica r1b"))
            #expect(conflict[overwritten.upperBound...].contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(conflict[overwritten.upperBound...].contains("By A. Rivera on replica r1"))
            #expect(conflict.contains("Current value: <span class=\"value\">SCR-&lt;i&gt;17&lt;/i&gt;</span>"))
            #expect(!conflict.contains("<script>") && !conflict.contains("<i>17"))

            #expect(try await Self.page(client, "/monitor/sites/S02", session).0 == .forbidden)
            let (otherStatus, other) = try await Self.page(client, "/monitor/conflicts/\(conflicts["S02"]!)", session)
            #expect(otherStatus == .notFound)
            #expect(!other.contains("S02-001") && !other.contains("SCR-2"))
            #expect(try await Self.page(client, "/monitor/sites/S0%3Cx", session).0 == .notFound)
        }
    }

    /// The site's page and a conflict's page of a server whose records and people carry `text`.
    private static func pages(carrying text: @Sendable (String) -> String) async throws -> [String] {
        let server = try await TestServer.make { $0.monitorAlerts = MonitorAlerts(tables: Safety.monitorTables, alerts: Safety.monitorAlerts) }
        let now = HybridLogicalClock.systemMilliseconds()
        @Sendable func row(_ id: String, _ milliseconds: Int64, _ values: [FieldValue], bases: [Version?]? = nil) -> ChangeRow {
            ChangeRow(id: id, seq: HLC(milliseconds: milliseconds, counter: 0), values: values, bases: bases)
        }
        return try await server.test { client in
            for (token, request) in [
                (
                    server.s01,
                    PushRequest(
                        replica: "r1",
                        groups: [
                            ChangeGroup(
                                table: "subjects", user: text("user"), columns: ["site_id", "screening_no", "status"],
                                rows: [
                                    row("S01-001", now - 20, [.text("S01"), .text(text("screening")), .text("enrolled")])
                                ]),
                            ChangeGroup(
                                table: "infusions", user: text("user"), columns: ["site_id", "subject_id", "date"],
                                rows: [
                                    row("INF-1", now - 20, [.text("S01"), .text("S01-001"), .text("2026-10-01")])
                                ]),
                            ChangeGroup(
                                table: "adverse_events", user: text("user"), columns: ["site_id", "subject_id", "term", "onset_date", "grade", "category"],
                                rows: [
                                    row(
                                        "AE-1", now - 20, [.text("S01"), .text("S01-001"), .text(text("term")), .text("2026-10-11"), .integer(3), .text("crs")])
                                ]),
                        ])
                ),
                (
                    server.s01b,
                    PushRequest(
                        replica: "r1b",
                        groups: [
                            ChangeGroup(
                                table: "subjects", user: text("other"), columns: ["screening_no"],
                                rows: [
                                    row("S01-001", now - 10, [.text(text("overwriting"))], bases: [nil])
                                ])
                        ])
                ),
            ] {
                try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(token, schema: "2"), body: try json(request)) {
                    response in
                    #expect(response.status == .ok, "\(String(buffer: response.body))")
                }
            }
            let conflict = try #require(
                try await server.store.conflicts(ConflictFilter(status: .open, site: "S01"), principal: Principal(role: .reviewer, site: nil)).conflicts.first
            )
            let session = try await logIn(client, try await Tokens.create(in: server.store, role: .monitor, site: nil, label: text("label")))
            var pages: [String] = []
            for path in ["/monitor", "/monitor/sites/S01", "/monitor/conflicts/\(conflict.id)"] {
                let (status, html) = try await page(client, path, session)
                #expect(status == .ok, "\(path)")
                pages.append(html)
            }
            return pages
        }
    }

    /// Every element of `html` as an HTML5 parser builds it (html5lib): tag and attribute names.
    private static func elements(_ html: String) async throws -> [[String]] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-page-\(UUID().uuidString).html")
        try Data(html.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let (status, stdout, stderr) = try await Subprocess.run(TestPython.path, [TestPython.browserScript, "elements", file.path])
        #expect(status == 0, "\(String(decoding: stderr, as: UTF8.self))")
        let parsed = try JSONSerialization.jsonObject(with: stdout) as? [[Any]] ?? []
        return parsed.map { element in [element[0] as? String ?? ""] + ((element[1] as? [String]) ?? []).map { "@" + $0 } }
    }

    @Test(
        "Markup hidden in grapheme clusters (a `<` after U+0600, a `>` or `\"` before a combining mark) parses to no element the templates did not write",
        .enabled(if: TestPython.has("html5lib"))
    )
    func markupInClusters() async throws {
        let meta = "\u{600}<meta http-equiv=refresh content=0;url=https://example.org/>\u{301}"
        let style = "\u{600}<style>*{display:none}\u{600}</style>\u{301}"
        let link = "\u{600}<a href=https://example.org/ style=position:fixed;inset:0>\u{301}x\u{600}</a>\u{301}"
        let attribute = "x\"\u{301} onmouseover=alert(1) \"\u{301}"
        // Each where a site user can put it: a screening number, an AE term, a user name, a label.
        let payloads = ["screening": style, "overwriting": attribute, "term": meta + " " + link, "user": link, "other": meta, "label": style + attribute]
        let hostile = try await Self.pages { payloads[$0] ?? meta }
        let benign = try await Self.pages { "plain \($0)" }
        for (index, (page, baseline)) in zip(hostile, benign).enumerated() {
            let found = try await Self.elements(page)
            let expected = try await Self.elements(baseline)
            #expect(found == expected, "page \(index): elements differ from the templates' own:\n\(found)\n\(expected)")
            #expect(!page.contains("\u{600}<"), "page \(index) holds a raw <")
        }
    }

    @Test("Laptops without a completed sync for longer than the stale limit are marked, on the overview and the site's page")
    func stale() async throws {
        let server = try await TestServer.make { $0.staleAfter = .zero }
        let monitor = try await Tokens.create(in: server.store, role: .monitor, site: "S01")
        try await Task.sleep(for: .milliseconds(10))
        try await server.test { client in
            let session = try await Self.logIn(client, monitor)
            let (_, overview) = try await Self.page(client, "/monitor", session)
            #expect(overview.contains("2 laptop(s), <span class=\"stale\">2 stale</span>"), "\(overview)")
            let (_, site) = try await Self.page(client, "/monitor/sites/S01", session)
            #expect(site.components(separatedBy: "· stale</span>").count == 3, "r1 and r1b")
        }
    }

    @Test("A monitor of every site sees both; a site token, a replica's credential or a bad token cannot log in", arguments: StoreKind.all)
    func logins(store: StoreKind) async throws {
        let (server, _, allMonitor, conflicts) = try await Self.populated(store)
        try await server.test { client in
            for (token, message) in [
                ("sst_nonsense", "The token is not valid."), (server.s01Enrolment, "A site token cannot open the monitoring page"),
                (server.s01, "A replica&#39;s own token cannot"), ("", "or paste a token"),
            ] {
                try await Self.postLogin(client, token) { response in
                    #expect(response.status == .unauthorized)
                    #expect(response.headers[.setCookie]?.hasPrefix("sitesync_login=") == true, "a new form, and no session")
                    #expect(String(buffer: response.body).contains(message), "\(String(buffer: response.body))")
                }
            }
            let session = try await Self.logIn(client, allMonitor)
            let (_, overview) = try await Self.page(client, "/monitor", session)
            #expect(overview.contains("/monitor/sites/S01") && overview.contains("/monitor/sites/S02"))
            #expect(try await Self.page(client, "/monitor/conflicts/\(conflicts["S02"]!)", session).0 == .ok)
            let reviewer = try await Tokens.create(in: server.store, role: .reviewer, site: nil)
            #expect(try await Self.page(client, "/monitor/sites/S02", try await Self.logIn(client, reviewer)).0 == .ok)
        }
    }

    /// POSTs the login form with a person's username and password, as a browser that opened the form would.
    static func postPersonLogin<T>(
        _ client: any TestClientProtocol, _ username: String, _ password: String, headers extra: HTTPFields = [:],
        _ check: @escaping (TestResponse) async throws -> T
    ) async throws -> T {
        let form = try await loginForm(client)
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "sitesync_login=\(form)"]
        headers.append(contentsOf: extra)
        let body = "username=\(username)&password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&token=&csrf=\(form)"
        return try await client.execute(uri: "/monitor/login", method: .post, headers: headers, body: ByteBuffer(string: body), testCallback: check)
    }

    @Test(
        "Monitors and data managers sign in with username and password: scoped to their sites, a session cookie HttpOnly, SameSite=Strict and Secure over HTTPS; others refused; five wrong passwords lock the person out",
        arguments: StoreKind.all)
    func personLogins(store: StoreKind) async throws {
        let (server, _, _, conflicts) = try await Self.populated(store)
        let password = "correct horse battery"
        let hash = try PasswordHash(password: password, cost: .init(logN: 10, blockSize: 8, parallelism: 1)).encoded
        for (username, name, role, sites) in [
            ("mona", "Mona Lisa", PersonRole.monitor, ["S01"]), ("dana", "Dana Scully", .dataManager, ["S01", "S02"]),
            ("cora", "Cora Rivera", .coordinator, ["S01"]),
            ("gone", "Gone Away", .monitor, ["S01"]),
        ] {
            _ = try await server.store.changeAccount(
                username, .create(fullName: name, role: role, sites: sites, passwordHash: hash), at: Date().formatted(.iso8601), by: "test")
        }
        _ = try await server.store.changeAccount("gone", .deactivate(reason: "Left"), at: Date().formatted(.iso8601), by: "test")
        try await server.test { client in
            func session(_ username: String) async throws -> String {
                try await Self.postPersonLogin(client, username, password, headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"]) { response in
                    #expect(response.status == .seeOther, "\(String(buffer: response.body))")
                    let cookie = try #require(response.headers[.setCookie])
                    #expect(Self.attributes(cookie).isSuperset(of: ["HttpOnly", "SameSite=Strict", "Path=/monitor", "Secure"]), "\(cookie)")
                    return String(try #require(cookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last))
                }
            }
            // A monitor of S01: S01 only, named on every page.
            let mona = try await session("mona")
            let (_, overview) = try await Self.page(client, "/monitor", mona)
            #expect(overview.contains("/monitor/sites/S01") && !overview.contains("/monitor/sites/S02"))
            #expect(overview.contains("Mona Lisa (mona)"))
            #expect(try await Self.page(client, "/monitor/sites/S02", mona).0 == .forbidden)
            #expect(try await Self.page(client, "/monitor/conflicts/\(conflicts["S02"]!)", mona).0 == .notFound)
            #expect(try await Self.page(client, "/monitor/conflicts/\(conflicts["S01"]!)", mona).0 == .ok)
            // A data manager of two sites sees both.
            let dana = try await session("dana")
            let (_, both) = try await Self.page(client, "/monitor", dana)
            #expect(both.contains("/monitor/sites/S01") && both.contains("/monitor/sites/S02"))
            #expect(try await Self.page(client, "/monitor/sites/S02", dana).0 == .ok)

            // Refused, naming why, with a new form and no session.
            for (username, status, message) in [
                ("cora", HTTPResponse.Status.forbidden, "for monitors and data managers"), ("gone", .forbidden, "deactivated"),
                ("nobody", .unauthorized, "The username or the password is wrong."),
            ] {
                try await Self.postPersonLogin(client, username, password) { response in
                    #expect(response.status == status)
                    #expect(response.headers[.setCookie]?.hasPrefix("sitesync_login=") == true)
                    #expect(String(buffer: response.body).contains(message), "\(String(buffer: response.body))")
                }
            }
            // Five wrong passwords lock mona out of the page, the right one included, for 15 minutes.
            for _ in 1...5 {
                try await Self.postPersonLogin(client, "mona", "not the password") { #expect($0.status == .unauthorized) }
            }
            try await Self.postPersonLogin(client, "mona", password) { response in
                #expect(response.status == .tooManyRequests && response.headers[.retryAfter] != nil)
            }
            // Logging out ends the session.
            try await client.execute(uri: "/monitor/logout", method: .post, headers: [.cookie: "sitesync_session=\(dana)"]) { #expect($0.status == .seeOther) }
            #expect(try await Self.page(client, "/monitor", dana).0 == .seeOther)
        }
    }

    @Test(
        "A login posted without the form's token is refused; failed logins are counted, and past ten from one address refused for a while",
        arguments: StoreKind.all)
    func loginGuarded(store: StoreKind) async throws {
        let (server, s01Monitor, _, _) = try await Self.populated(store)
        let admin = try await Tokens.create(in: server.store, role: .admin, site: nil)
        try await server.test { client in
            func refusals(_ code: String) async throws -> Int {
                try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(admin)"]) { response in
                    let line = String(buffer: response.body).split(separator: "\n").first { $0.hasPrefix("sitesync_refusals_total{code=\"\(code)\"}") }
                    return line.flatMap { $0.split(separator: " ").last }.flatMap { Int(Double($0) ?? 0) } ?? 0
                }
            }
            // Posted from another page: no form cookie, or a form token that is not the cookie's.
            let form = try await Self.loginForm(client)
            for (cookie, field) in [(nil, form), (form, "ssf_other"), (form, nil)] as [(String?, String?)] {
                var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
                if let cookie { headers[.cookie] = "sitesync_login=\(cookie)" }
                let body = "token=\(s01Monitor)" + (field.map { "&csrf=\($0)" } ?? "")
                try await client.execute(uri: "/monitor/login", method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .forbidden)
                    #expect(response.headers[.setCookie]?.hasPrefix("sitesync_session") != true, "no session")
                    #expect(String(buffer: response.body).contains("The login form expired or came from elsewhere"))
                }
            }
            #expect(try await refusals("forbidden") >= 3)
            // Ten failures from one address, then even a good token waits.
            for attempt in 0..<10 {
                try await Self.postLogin(client, "sst_wrong\(attempt)") { #expect($0.status == .unauthorized) }
            }
            #expect(try await refusals("unauthorized") == 10)
            try await Self.postLogin(client, s01Monitor) { response in
                #expect(response.status == .tooManyRequests)
                #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 > 0)
                #expect(String(buffer: response.body).contains("Too many failed logins"))
            }
            #expect(try await refusals("too_many_requests") == 1)
        }
    }

    @Test("One token keeps at most 20 sessions: the oldest end as new ones start", arguments: StoreKind.all)
    func sessionsBounded(store: StoreKind) async throws {
        let (server, s01Monitor, _, _) = try await Self.populated(store)
        try await server.test { client in
            var sessions: [String] = []
            for _ in 0..<25 { sessions.append(try await Self.logIn(client, s01Monitor)) }
            let kept = try await StoreContents.count(server.store, "SELECT count(*) FROM monitor_sessions WHERE token_hash = '\(Tokens.hash(s01Monitor))'")
            #expect(kept == MonitorController.sessionsPerToken)
            #expect(try await Self.page(client, "/monitor", sessions.last!).0 == .ok, "the newest works")
        }
    }

    @Test("Failed logins are counted per address and per token, for the window only")
    func loginGuardWindow() {
        let guardian = LoginGuard(maximumFailures: 3, window: .seconds(60))
        let start = ContinuousClock.now
        for second in 0..<3 { guardian.fail(["10.0.0.1", "token a"], at: start + .seconds(second)) }
        #expect(guardian.wait(["10.0.0.1"], at: start + .seconds(3)) == .seconds(57))
        #expect(guardian.wait(["10.0.0.2", "token a"], at: start + .seconds(3)) != nil, "the token waits from any address")
        #expect(guardian.wait(["10.0.0.2", "token b"], at: start + .seconds(3)) == nil)
        #expect(guardian.wait(["10.0.0.1"], at: start + .seconds(61)) == nil, "the window passed")
        guardian.succeed("token a")
        #expect(guardian.wait(["10.0.0.2", "token a"], at: start + .seconds(3)) == nil)
    }

    @Test("Without a session every page sends to the login; logging out, or revoking the token, ends the session", arguments: StoreKind.all)
    func sessions(store: StoreKind) async throws {
        let (server, s01Monitor, _, _) = try await Self.populated(store)
        try await server.test { client in
            for path in ["/monitor", "/monitor/sites/S01", "/monitor/conflicts/x"] {
                #expect(try await Self.page(client, path, nil) == (.seeOther, "/monitor/login"))
                #expect(try await Self.page(client, path, "sss_forged") == (.seeOther, "/monitor/login"))
            }
            let (loginStatus, login) = try await Self.page(client, "/monitor/login", nil)
            #expect(loginStatus == .ok && login.contains(#"<form class="login" method="post" action="/monitor/login">"#))

            let session = try await Self.logIn(client, s01Monitor)
            #expect(try await Self.page(client, "/monitor/login", session) == (.seeOther, "/monitor"), "logged in already")
            try await client.execute(uri: "/monitor/logout", method: .post, headers: [.cookie: "sitesync_session=\(session)"]) { response in
                #expect(response.status == .seeOther)
                let cookie = try #require(response.headers[.setCookie])
                #expect(cookie.hasPrefix("sitesync_session=;") && Self.attributes(cookie).isSuperset(of: ["Path=/monitor", "Max-Age=0"]))
            }
            #expect(try await Self.page(client, "/monitor", session) == (.seeOther, "/monitor/login"), "the old cookie is dead")

            let again = try await Self.logIn(client, s01Monitor)
            #expect(try await Self.page(client, "/monitor", again).0 == .ok)
            _ = try await server.store.revokeTokens(hashes: [Tokens.hash(s01Monitor)], at: Date().formatted(.iso8601))
            #expect(try await Self.page(client, "/monitor", again) == (.seeOther, "/monitor/login"))
        }
    }

    @Test("The session cookie is Secure under TLS or behind a TLS proxy, and a monitor token cannot sync or enrol")
    func secureCookieAndReadOnly() async throws {
        let server = try await TestServer.make { $0.secureCookies = true }
        let monitor = try await Tokens.create(in: server.store, role: .monitor, site: "S01")
        try await server.test { client in
            try await client.execute(
                uri: "/monitor/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"], body: ByteBuffer(string: "token=\(monitor)")
            ) { response in
                #expect(Self.attributes(response.headers[.setCookie]).isSuperset(of: ["HttpOnly", "SameSite=Strict", "Secure"]))
            }
            // Behind a TLS proxy that says so, without --insecure-http.
            try await buildApplication(ServerConfiguration(schema: TrialSchema.current), store: server.store).test(.router) { plain in
                try await plain.execute(
                    uri: "/monitor/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                    body: ByteBuffer(string: "token=\(monitor)")
                ) {
                    let attributes = Self.attributes($0.headers[.setCookie])
                    #expect(attributes.contains("SameSite=Strict") && !attributes.contains("Secure"), "plain HTTP on loopback")
                }
                try await plain.execute(
                    uri: "/monitor/login", method: .post,
                    headers: [.contentType: "application/x-www-form-urlencoded", HTTPField.Name("X-Forwarded-Proto")!: "https"],
                    body: ByteBuffer(string: "token=\(monitor)")
                ) { #expect(Self.attributes($0.headers[.setCookie]).isSuperset(of: ["SameSite=Strict", "Secure"])) }
            }
            let before = try await server.dump()
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(monitor), body: try json(subjectPush(ids: ["a"]))) {
                response in
                #expect(response.status == .forbidden)
                let message = try decode(ErrorResponse.self, response.body).error.message
                #expect(message.contains("A monitor token reads records and conflicts"), "\(message)")
            }
            try await client.execute(uri: "/v1/pull?limit=10", method: .get, headers: syncHeaders(monitor)) { #expect($0.status == .forbidden) }
            try await client.execute(
                uri: "/v1/replicas", method: .post, headers: syncHeaders(monitor),
                body: try json(EnrolRequest(replica: nil, user: "x", credential: Credential.generate(prefix: Credential.replicaPrefix)))
            ) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/conflicts?site=S02", method: .get, headers: syncHeaders(monitor)) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/conflicts?site=S01", method: .get, headers: syncHeaders(monitor)) { #expect($0.status == .ok) }
            #expect(try await server.dump() == before)
        }
    }
}

/// Hummingbird's request ids: a random 64-bit half in hex without leading zeros, then a counter
/// in 16 hex digits.
private func isRequestID(_ id: String?) -> Bool {
    guard let id else { return false }
    return (17...32).contains(id.count) && id.allSatisfy(\.isHexDigit) && id == id.lowercased()
}
