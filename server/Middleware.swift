import Crypto
import Foundation
import Hummingbird
import Logging
import NIOHTTP1
import SiteSyncCore
import SiteSyncRules
import Synchronization

/// Turns every error into the JSON error body with a stable code; unexpected ones are logged as 500s.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as ServerError {
            throw error
        } catch let refusal as SyncRefusal {
            throw ServerError(refusal)
        } catch let error as HTTPError where error.status == .notFound {
            throw ServerError.notFound(request.uri.path)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw ServerError.bodyTooLarge(limit: context.maxUploadSize)
        } catch is HTTPParserError {
            // The client's fault (a connection closed in the middle of a body, say), not the server's.
            throw Refusals.logged(ServerError(.badRequest, .badRequest, "The request is not valid HTTP/1.1; nothing was written."), request, context.logger)
        } catch let error as StorageError {
            // The store's code and message name the failure without the statement's arguments.
            context.logger.error(
                "request failed",
                metadata: ["sync.error": "\(error.code)", "sync.error.message": "\(error.message)", "http.path": "\(request.uri.path)"]
            )
            throw error.kind == .unavailable ? ServerError.unavailable : ServerError.internalError
        } catch {
            context.logger.error("request failed", metadata: ["sync.error": "\(String(reflecting: type(of: error)))", "http.path": "\(request.uri.path)"])
            throw ServerError.internalError
        }
    }
}

/// Refusals (4xx) in the log, at `notice`: the code, the status and the path, with the token, role,
/// site and replica the logger already carries. Every value that came from the request is cut to
/// 100 bytes and its control characters escaped, so a request cannot forge a log line.
enum Refusals {
    static func logged(_ error: ServerError, _ request: Request, _ logger: Logger) -> ServerError {
        guard error.status.code < 500 else { return error }
        logger.notice(
            "request refused",
            metadata: [
                "sync.error": "\(error.code.rawValue)", "http.status": "\(error.status.code)",
                "http.method": "\(request.method.rawValue)", "http.path": "\(TextRules.quotable(request.uri.path))",
            ]
        )
        return error
    }
}

/// Refuses clients that speak another protocol, or a newer schema than the server's.
struct VersionMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let schemaVersion: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let protocolHeader = request.headers.value(named: SyncProtocol.protocolHeader)
        guard protocolHeader == String(SyncProtocol.version) else {
            throw Refusals.logged(ServerError.protocolVersion(protocolHeader), request, context.logger)
        }
        let schemaHeader = request.headers.value(named: SyncProtocol.schemaHeader)
        guard let version = schemaHeader.flatMap(Int.init), (1...schemaVersion).contains(version) else {
            throw Refusals.logged(ServerError.schemaVersion(client: schemaHeader, server: schemaVersion), request, context.logger)
        }
        var context = context
        context.clientSchemaVersion = version
        return try await next(request, context)
    }
}

/// Resolves the bearer token to a principal; tokens are stored as SHA-256 digests only.
///
/// The store is asked at every request, never a cache, so a token revoked with `sitesync-server
/// token revoke` is refused at its next request on every instance.
struct TokenMiddleware: RouterMiddleware {
    typealias Context = SyncRequestContext
    let store: any CredentialStore
    let inFlight: RequestsInFlight
    let uses = TokenUses()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw Refusals.logged(ServerError.missingToken, request, context.logger)
        }
        let token = header.dropFirst("Bearer ".count).trimmingCharacters(in: .whitespaces)
        let hash = Tokens.hash(token)
        guard !token.isEmpty, let stored = try await store.token(hash: hash) else {
            throw Refusals.logged(ServerError.unknownToken, request, context.logger)
        }
        var context = context
        // The token's id (the start of its digest) names it in the log; the token never appears.
        context.logger[metadataKey: "sync.token"] = "\(stored.id)"
        let now = Date()
        if let refusal = stored.refusal(at: now.formatted(.iso8601)) {
            throw Refusals.logged(ServerError(.unauthorized, .unauthorized, refusal), request, context.logger)
        }
        guard inFlight.enter(hash) else {
            throw Refusals.logged(ServerError.tooManyRequests(inFlight.maximumPerCredential), request, context.logger)
        }
        defer { inFlight.leave(hash) }
        if uses.shouldRecord(hash, at: now) { try await store.recordTokenUse(hash: hash, at: now.formatted(.iso8601)) }
        let principal = stored.principal
        context.principal = principal
        context.tokenHash = hash
        context.logger[metadataKey: "sync.role"] = "\(principal.role.rawValue)"
        context.logger[metadataKey: "sync.site"] = "\(principal.site ?? SiteID.all)"
        if let replica = principal.replica { context.logger[metadataKey: "sync.replica"] = "\(replica)" }
        do {
            return try await next(request, context)
        } catch let error as ServerError {
            throw Refusals.logged(error, request, context.logger)
        } catch let refusal as SyncRefusal {
            throw Refusals.logged(ServerError(refusal), request, context.logger)
        }
    }
}

/// The requests of each credential this instance is serving, bounded per credential.
final class RequestsInFlight: Sendable {
    let maximumPerCredential: Int
    private let counts = Mutex<[String: Int]>([:])

    init(maximumPerCredential: Int) {
        self.maximumPerCredential = maximumPerCredential
    }

    /// Counts a request of the credential whose digest is `hash`, unless it has the most already.
    func enter(_ hash: String) -> Bool {
        counts.withLock { counts in
            let count = counts[hash, default: 0]
            guard count < maximumPerCredential else { return false }
            counts[hash] = count + 1
            return true
        }
    }

    /// Ends a request counted by ``enter(_:)``.
    func leave(_ hash: String) {
        counts.withLock { counts in
            let count = counts[hash, default: 1] - 1
            counts[hash] = count > 0 ? count : nil
        }
    }
}

/// When this instance last recorded each credential's use: at most once a minute, so that a busy
/// laptop's requests do not each write.
final class TokenUses: Sendable {
    private let recorded = Mutex<[String: Date]>([:])

    func shouldRecord(_ hash: String, at now: Date) -> Bool {
        recorded.withLock { recorded in
            if let last = recorded[hash], now.timeIntervalSince(last) < 60 { return false }
            if recorded.count > 100_000 { recorded.removeAll() }
            recorded[hash] = now
            return true
        }
    }
}

/// Bearer tokens: random, shown once, stored as their SHA-256 digest.
public enum Tokens {
    /// A new random token: `prefix` and 64 hex digits (256 bits); `sst_` for enrolment and admin
    /// tokens, `ssr_` for a replica's own credential.
    public static func generate(prefix: String = "sst_") -> String {
        Credential.generate(prefix: prefix)
    }

    /// The SHA-256 hex digest under which a token is stored.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Creates a token with `role` (and `site` for a site token) in `store`; returns the token.
    public static func create(in store: some SyncStore, role: Role, site: String?, label: String? = nil, expiresAt: Date? = nil) async throws -> String {
        switch role {
        case .site:
            guard let site, SiteID.isValid(site) else {
                throw ServerError.validation("A site token needs a valid --site: \(SiteID.rule).")
            }
        case .monitor:
            if let site, !SiteID.isValid(site) { throw ServerError.validation("A monitor token's --site must be a valid site: \(SiteID.rule).") }
        case .reviewer, .admin, .metrics:
            guard site == nil else { throw ServerError.validation("A \(role.rawValue) token covers every site; do not give --site.") }
        }
        let token = generate()
        if let label, let problem = TextRules.problem(label, maxBytes: 200) { throw ServerError.validation("The label \(problem).") }
        try await store.createToken(hash: hash(token), role: role, site: site, label: label, expiresAt: expiresAt?.formatted(.iso8601))
        return token
    }
}

extension HTTPFields {
    /// The first value of the header named `name`, compared case-insensitively.
    func value(named name: String) -> String? {
        first { $0.name.canonicalName == name.lowercased() }?.value
    }
}

/// When this instance last recorded each replica's report, and what it said: a report is written
/// when it says something new (pending changes where there were none or the other way round,
/// another build, schema or user, a clock offset that moved by a second), else at most once a
/// minute, so that laptops pulling often (live sync, pulls between pushes) do not each take the
/// store's writer. A count of pending changes that only grows or shrinks is a minute late at most.
final class ReportsRecorded: Sendable {
    private let recorded = Mutex<[String: (summary: String, at: Date)]>([:])

    static let interval: TimeInterval = 60

    func shouldRecord(_ replica: String, _ report: ReplicaReport, schemaVersion: Int, offsetMilliseconds: Int64, at now: Date) -> Bool {
        let summary = "\(report.pending == 0)\u{1F}\(report.build)\u{1F}\(schemaVersion)\u{1F}\(report.user)\u{1F}\(offsetMilliseconds / 1000)"
        return recorded.withLock { recorded in
            if let last = recorded[replica], last.summary == summary, now.timeIntervalSince(last.at) < Self.interval { return false }
            if recorded.count > 100_000 { recorded.removeAll() }
            recorded[replica] = (summary, now)
            return true
        }
    }
}
