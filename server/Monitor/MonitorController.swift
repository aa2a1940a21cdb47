import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOPosix
import SiteSyncCore
import SiteSyncRules

/// `/monitor`: the monitoring page for trial monitors and data managers (docs/MONITORING.md).
///
/// Server-rendered HTML, no script. A person (a monitor or a data manager) signs in at
/// `/monitor/login` with username and password, or a reviewer or monitor token is pasted there
/// once; the server then keeps a session, named by an `HttpOnly`, `SameSite=Strict`
/// cookie (`Secure` when the server or its proxy speaks HTTPS) whose digest alone is stored, so
/// any instance serves it and logging out ends it everywhere. Every page is scoped like the API: a
/// site's monitor sees that site and nothing of another.
struct MonitorController {
    let store: any SyncStore
    let configuration: ServerConfiguration
    let metrics: ServerMetrics
    /// Failed sign-ins per address and per token tried.
    let guardian = LoginGuard()
    /// Wrong passwords per person: five in a row lock the person out of the page for 15 minutes,
    /// as on a laptop.
    let people = LoginGuard(maximumFailures: 5, window: .seconds(900))

    /// The login form's cookie, whose value the form repeats (`csrf`): a sign-in posted from another
    /// site's page carries neither the cookie (`SameSite=Strict`) nor the value.
    static let formCookie = "sitesync_login"
    /// Sessions one token keeps at once; the oldest end as new ones start.
    static let sessionsPerToken = 20

    /// The session cookie's name.
    static let cookie = "sitesync_session"
    /// The most records of a table the alerts read per site, and the most open conflicts listed.
    static let alertRecordLimit = 20_000
    static let conflictListLimit = 100
    /// The days of the chart of changes.
    static let chartDays = 30

    func addRoutes(to router: Router<SyncRequestContext>) {
        let monitor = router.group("monitor")
        monitor.get(use: overview)
        monitor.get("login", use: loginPage)
        monitor.post("login", use: login)
        monitor.post("logout", use: logout)
        monitor.get("sites/:site", use: site)
        monitor.get("conflicts/:id", use: conflict)
    }

    // MARK: Logging in and out

    @Sendable func loginPage(_ request: Request, context: SyncRequestContext) async throws -> Response {
        if try await session(request) != nil { return Self.redirect("/monitor") }
        return loginForm(request, problem: nil, status: .ok)
    }

    /// The login form, with a new form token in its cookie and in a hidden field.
    private func loginForm(_ request: Request, problem: String?, status: HTTPResponse.Status) -> Response {
        let form = Tokens.generate(prefix: "ssf_")
        let content = MonitorPages.Login(hours: Int(configuration.sessionLifetime.components.seconds / 3600), csrf: form, problem: problem)
        var response = page("login", title: "Log in", who: nil, content)
        response.status = status
        response.setCookie(cookie(Self.formCookie, form, path: "/monitor/login", maxAge: 3600, request))
        return response
    }

    @Sendable func login(_ request: Request, context: SyncRequestContext) async throws -> Response {
        var request = request
        let body = String(buffer: try await request.collectBody(upTo: 16 * 1024))
        // A body that is no form is a form without fields: refused below like an empty one.
        let fields = (try? URLEncodedFormDecoder().decode(LoginForm.self, from: body)) ?? LoginForm()
        let token = fields.token?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        let address = context.remoteAddress ?? "unknown"
        let tokenKey = "token " + Tokens.hash(token)
        func refused(_ code: ErrorCode, _ reason: String, _ problem: String, status: HTTPResponse.Status = .unauthorized) -> Response {
            // Logged and counted like any refusal; the token never appears, only the start of its digest.
            context.logger.notice(
                "monitor login refused",
                metadata: [
                    "sync.error": "\(code.rawValue)", "monitor.reason": "\(reason)", "http.remote": "\(address)",
                    "sync.token": "\(String(Tokens.hash(token).prefix(12)))",
                ]
            )
            metrics.refusal(code.rawValue)
            return loginForm(request, problem: problem, status: status)
        }
        // The form token: the cookie the form set, repeated in the form.
        guard let form = request.cookies[Self.formCookie]?.value, !form.isEmpty, fields.csrf == form else {
            return refused(.forbidden, "form", "The login form expired or came from elsewhere; log in from this page.", status: .forbidden)
        }
        if let wait = guardian.wait([address, tokenKey]) {
            var response = refused(
                .tooManyRequests, "rate", "Too many failed logins; try again in \(Int(wait.components.seconds) / 60 + 1) minutes.", status: .tooManyRequests
            )
            response.headers[.retryAfter] = String(max(Int(wait.components.seconds), 1))
            return response
        }
        func failed(_ reason: String, _ problem: String) -> Response {
            guardian.fail([address, tokenKey])
            return refused(.unauthorized, reason, problem)
        }
        let username = fields.username?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        if !username.isEmpty {
            return try await signIn(username, password: fields.password ?? "", request: request, context: context, address: address, refused: refused)
        }
        guard !token.isEmpty else { return failed("empty", "Sign in with your username and password, or paste a token.") }
        let now = Date()
        guard let stored = try await store.token(hash: Tokens.hash(token)) else { return failed("unknown", "The token is not valid.") }
        if let refusal = stored.refusal(at: now.formatted(.iso8601)) { return failed("revoked or expired", refusal) }
        guard stored.replica == nil, [Role.reviewer, .monitor].contains(stored.role) else {
            return failed(
                "role",
                "A \(stored.replica == nil ? stored.role.rawValue : "replica's own") token cannot open the monitoring page: log in with a reviewer or monitor token."
            )
        }
        guardian.succeed(tokenKey)
        let secret = Tokens.generate(prefix: "sss_")
        let expiresAt = now.addingTimeInterval(TimeInterval(configuration.sessionLifetime.components.seconds))
        try await store.createSession(
            hash: Tokens.hash(secret), tokenHash: stored.hash, at: now.formatted(.iso8601), expiresAt: expiresAt.formatted(.iso8601),
            keeping: Self.sessionsPerToken
        )
        context.logger.info("monitor login", metadata: ["sync.token": "\(stored.id)", "sync.role": "\(stored.role.rawValue)", "http.remote": "\(address)"])
        var response = Self.redirect("/monitor")
        response.setCookie(cookie(Self.cookie, secret, path: "/monitor", maxAge: Int(configuration.sessionLifetime.components.seconds), request))
        return response
    }

    /// A person's sign-in: a monitor or a data manager, with the password checked against the
    /// account's scrypt digest off the event loop. Wrong passwords count toward the person's
    /// lockout and the address's bound.
    private func signIn(
        _ username: String, password: String, request: Request, context: SyncRequestContext, address: String,
        refused: (ErrorCode, String, String, HTTPResponse.Status) -> Response
    ) async throws -> Response {
        let personKey = MonitorSessionOwner.person(username)
        if let wait = people.wait([personKey]) ?? guardian.wait([address]) {
            var response = refused(
                .tooManyRequests, "rate", "Too many wrong passwords; try again in \(Int(wait.components.seconds) / 60 + 1) minutes.", .tooManyRequests)
            response.headers[.retryAfter] = String(max(Int(wait.components.seconds), 1))
            return response
        }
        let account = Username.isValid(username) ? try await store.account(username: username) : nil
        let encoded = account?.passwordHash
        let matches =
            password.utf8.count <= AccountRules.maximumPasswordBytes
            ? try await NIOThreadPool.singleton.runIfActive { PeopleController.verify(password, against: encoded) } : false
        guard let account, matches else {
            people.fail([personKey])
            guardian.fail([address])
            return refused(.signInFailed, "password", "The username or the password is wrong.", .unauthorized)
        }
        guard account.state == .active else {
            return refused(.forbidden, "deactivated", "The account \(account.username) is deactivated.", .forbidden)
        }
        guard [.monitor, .dataManager].contains(account.role) else {
            return refused(
                .forbidden, "role", "The monitoring page is for monitors and data managers; \(account.username) is a \(account.role.rawValue).", .forbidden)
        }
        people.succeed(personKey)
        let now = Date()
        let secret = Tokens.generate(prefix: "sss_")
        let expiresAt = now.addingTimeInterval(TimeInterval(configuration.sessionLifetime.components.seconds))
        try await store.createSession(
            hash: Tokens.hash(secret), tokenHash: personKey, at: now.formatted(.iso8601), expiresAt: expiresAt.formatted(.iso8601),
            keeping: Self.sessionsPerToken)
        context.logger.info(
            "monitor login", metadata: ["sync.person": "\(account.username)", "sync.role": "\(account.role.rawValue)", "http.remote": "\(address)"])
        var response = Self.redirect("/monitor")
        response.setCookie(cookie(Self.cookie, secret, path: "/monitor", maxAge: Int(configuration.sessionLifetime.components.seconds), request))
        return response
    }

    @Sendable func logout(_ request: Request, context: SyncRequestContext) async throws -> Response {
        if let secret = request.cookies[Self.cookie]?.value, !secret.isEmpty {
            try await store.deleteSession(hash: Tokens.hash(secret))
        }
        var response = Self.redirect("/monitor/login")
        response.setCookie(cookie(Self.cookie, "", path: "/monitor", maxAge: 0, request))
        return response
    }

    /// A cookie of the page: `HttpOnly`, `SameSite=Strict`, and `Secure` when this server speaks
    /// TLS, when it is told it sits behind a TLS proxy (`--insecure-http`), or when the proxy says
    /// the browser came over HTTPS (`X-Forwarded-Proto: https`).
    private func cookie(_ name: String, _ value: String, path: String, maxAge: Int, _ request: Request) -> Cookie {
        let forwarded = request.headers[HTTPField.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
        let secure = configuration.secureCookies || configuration.tls != nil || forwarded
        return Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: secure, httpOnly: true, sameSite: .strict)
    }

    /// The login form's fields, `application/x-www-form-urlencoded`.
    struct LoginForm: Decodable {
        /// A person's username and password.
        var username: String?
        var password: String?
        /// The token pasted instead.
        var token: String?
        /// The form token the page repeated from its cookie.
        var csrf: String?
    }

    /// Who is looking at the page: what they may read, and how the page names them.
    struct Viewer {
        let principal: Principal
        let who: String
    }

    /// The person or credential behind the request's session cookie, when the session is still
    /// valid and its person is active (a monitor or a data manager) or its credential valid and
    /// allowed to read.
    private func session(_ request: Request) async throws -> Viewer? {
        guard let secret = request.cookies[Self.cookie]?.value, !secret.isEmpty, secret.utf8.count <= 128 else { return nil }
        let now = Date().formatted(.iso8601)
        let hash = Tokens.hash(secret)
        if let stored = try await store.sessionToken(hash: hash, at: now) {
            guard stored.refusal(at: now) == nil, stored.principal.canRead else { return nil }
            return Viewer(principal: stored.principal, who: Self.who(stored))
        }
        guard let account = try await store.sessionPerson(hash: hash, at: now), account.state == .active,
            [.monitor, .dataManager].contains(account.role)
        else { return nil }
        let scope = account.sites == [SiteID.all] ? "every site" : "site\(account.sites.count == 1 ? "" : "s") \(account.sites.joined(separator: ", "))"
        return Viewer(principal: .person(account), who: "\(account.fullName) (\(account.username)) · \(account.role.rawValue), \(scope)")
    }

    /// Runs `body` for a signed-in person or credential; sends anyone else to the login page.
    private func authenticated(_ request: Request, _ body: (Viewer) async throws -> Response) async throws -> Response {
        guard let viewer = try await session(request) else { return Self.redirect("/monitor/login") }
        return try await body(viewer)
    }

    // MARK: Pages

    @Sendable func overview(_ request: Request, context: SyncRequestContext) async throws -> Response {
        try await authenticated(request) { viewer in
            let principal = viewer.principal
            let now = Date()
            let only = principal.sites.flatMap { $0.count == 1 ? $0.first : nil }
            let laptops = try await store.replicaFreshness(site: only).filter { principal.canAccess(site: $0.site) }
            let conflicts = try await store.openConflictCounts()
            let sites = try await store.siteIDs().filter { principal.canAccess(site: $0) }
            let cards = sites.map { site in
                let own = laptops.filter { $0.site == site }
                let stale = own.filter { $0.isStale(after: configuration.staleAfter, at: now) }.count
                return MonitorPages.Overview.Site(
                    site: site, laptops: own.count, stale: stale > 0 ? stale : nil, openConflicts: conflicts[site] ?? 0,
                    lastSync: own.compactMap(\.report?.lastSyncAt).max().map(Self.time) ?? "never")
            }
            let content = MonitorPages.Overview(sites: cards, now: Self.time(now.formatted(.iso8601)), staleAfter: Self.span(configuration.staleAfter))
            return page("overview", title: "Sites", who: viewer.who, content)
        }
    }

    @Sendable func site(_ request: Request, context: SyncRequestContext) async throws -> Response {
        try await authenticated(request) { viewer in
            let site = try context.parameters.require("site")
            guard SiteID.isValid(site) else { return error(.notFound, "No such site", "There is no site by that name.", viewer) }
            guard viewer.principal.canAccess(site: site) else {
                return error(.forbidden, "Not your site", "You may not see site \(site).", viewer)
            }
            let now = Date()
            let laptops = try await store.replicaFreshness(site: site).map { laptop in
                let report = laptop.report
                return MonitorPages.Site.Laptop(
                    replica: laptop.replica, user: report?.user ?? "—", lastSync: report.map { Self.time($0.lastSyncAt) } ?? "never",
                    age: laptop.secondsSinceLastSeen(at: now).map(Self.age) ?? "—", stale: laptop.isStale(after: configuration.staleAfter, at: now),
                    pending: report.map { String($0.pending) } ?? "—", build: report?.build ?? "—",
                    schema: report.map { String($0.schemaVersion) } ?? "—", clockOffset: report.map { Self.offset($0.clockOffsetMilliseconds) } ?? "—")
            }
            let page = try await store.conflicts(ConflictFilter(status: .open, site: site, limit: Self.conflictListLimit), principal: viewer.principal)
            let openCount = try await store.openConflictCounts()[site] ?? 0
            let conflicts = page.conflicts.map { conflict in
                MonitorPages.Site.Conflict(
                    id: conflict.id, table: conflict.table, recordID: conflict.recordID, field: conflict.field,
                    winner: Self.text(conflict.winner.value), winnerUser: conflict.winner.user ?? "", loser: Self.text(conflict.loser.value),
                    loserUser: conflict.loser.user ?? "", detectedAt: Self.time(conflict.detectedAt))
            }
            var alerts: [MonitorPages.Site.Alert] = []
            if let rules = configuration.monitorAlerts {
                var records: [String: [[String: FieldValue]]] = [:]
                for name in rules.tables {
                    guard let table = try? configuration.schema.table(name) else { continue }
                    records[name] = try await store.liveRecords(table, site: site, limit: Self.alertRecordLimit)
                }
                alerts = rules.alerts(records).map { alert in
                    MonitorPages.Site.Alert(subject: alert.subject, title: alert.title, id: alert.id, date: alert.date ?? "—", flags: alert.flags)
                }
            }
            let days = ChangesChart.days(endingAt: now, count: Self.chartDays)
            let activity = try await store.siteActivity(site: site, from: days[0])
            let content = MonitorPages.Site(
                site: site, laptops: laptops, conflicts: conflicts, openConflictCount: openCount,
                moreConflicts: openCount > conflicts.count, shownConflicts: conflicts.count, alerts: alerts,
                tables: configuration.schema.tables.map { MonitorPages.Site.Table(name: $0.name, count: activity.recordsByTable[$0.name] ?? 0) },
                chart: ChangesChart(days: days, counts: activity.changesByDay).svg)
            return self.page("site", title: "Site \(site)", who: viewer.who, content)
        }
    }

    @Sendable func conflict(_ request: Request, context: SyncRequestContext) async throws -> Response {
        try await authenticated(request) { viewer in
            let id = try context.parameters.require("id")
            guard let detail = try await store.conflict(id: id, principal: viewer.principal) else {
                return error(.notFound, "No such conflict", "There is no conflict by that id that you may see.", viewer)
            }
            let conflict = detail.conflict
            func side(_ side: Conflict.Side) -> MonitorPages.Conflict.Side {
                MonitorPages.Conflict.Side(
                    value: Self.text(side.value), user: side.user ?? "an unknown user", replica: side.replica,
                    time: Self.time(side.hlc.iso8601))
            }
            let resolution = conflict.resolution.map { resolution in
                MonitorPages.Conflict.Resolution(
                    decision: resolution.decision.rawValue.replacingOccurrences(of: "_", with: " "), reviewer: resolution.reviewer,
                    reason: resolution.reason, resolvedAt: Self.time(resolution.resolvedAt))
            }
            let content = MonitorPages.Conflict(
                id: conflict.id, site: conflict.site, table: conflict.table, recordID: conflict.recordID, field: conflict.field,
                open: conflict.isOpen, detectedAt: Self.time(conflict.detectedAt), current: detail.current.map(Self.text) ?? "unknown",
                winner: side(conflict.winner), loser: side(conflict.loser), resolution: resolution)
            return page("conflict", title: "Conflict \(conflict.id)", who: viewer.who, content)
        }
    }

    // MARK: Rendering

    private func page<Content: Sendable>(_ template: String, title: String, who: String?, _ content: Content) -> Response {
        let html = MonitorTemplates.library.render(MonitorPages.Frame(title: title, who: who, content: content), withTemplate: template) ?? ""
        return Response(status: .ok, headers: Self.htmlHeaders, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    private func error(_ status: HTTPResponse.Status, _ title: String, _ message: String, _ viewer: Viewer) -> Response {
        var response = page("error", title: title, who: viewer.who, MonitorPages.Error(message: message))
        response.status = status
        return response
    }

    /// No script may run, nothing is cached, no other site may frame the page.
    static let htmlHeaders: HTTPFields = [
        .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
        .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff", HTTPField.Name("Referrer-Policy")!: "no-referrer",
    ]

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func who(_ stored: StoredToken) -> String {
        let scope = stored.site.map { "site \($0)" } ?? "every site"
        return "\(stored.label ?? "token \(stored.id)") · \(stored.role.rawValue), \(scope)"
    }

    /// A value as a page shows it: its text, or "(empty)".
    static func text(_ value: FieldValue) -> String { value.displayText ?? "(empty)" }

    /// An ISO 8601 time to the minute, as `2026-12-01 09:30`.
    static func time(_ iso: String) -> String {
        guard iso.count >= 16 else { return iso }
        return iso.prefix(10) + " " + iso.dropFirst(11).prefix(5)
    }

    /// How long ago a laptop was last seen, from its age in seconds.
    static func age(_ seconds: Int) -> String {
        seconds < 60 ? "just now" : describeDuration(seconds)
    }

    /// A limit, such as the staleness one.
    static func span(_ duration: Duration) -> String {
        describeDuration(Int(duration.components.seconds))
    }

    /// A clock offset, signed, in the unit that reads best.
    static func offset(_ milliseconds: Int64) -> String {
        let sign = milliseconds < 0 ? "−" : "+"
        let magnitude = milliseconds.magnitude
        switch magnitude {
        case ..<1000: return "\(sign)\(magnitude) ms"
        case ..<120_000: return "\(sign)\(magnitude / 1000) s"
        case ..<7_200_000: return "\(sign)\(magnitude / 60_000) min"
        default: return "\(sign)\(magnitude / 3_600_000) h"
        }
    }
}
