import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOPosix
import SiteSyncCore
import SiteSyncRules

/// The sync endpoints: `POST /v1/push` and `POST /v1/pull` (docs/PROTOCOL.md).
struct SyncController {
    let store: any SyncStore
    let configuration: ServerConfiguration
    let clock: HybridLogicalClock
    let pending: PendingPushes
    let changes: ChangeNotifier
    let metrics: ServerMetrics
    let reports = ReportsRecorded()

    /// Verifies the push's signatures against the authors' registered keys and accounts
    /// (``AuthorshipCheck``), before anything is written.
    private func checkAuthorship(_ message: PushRequest, _ checked: inout CheckedPush) async throws {
        let signatures = message.signatures ?? []
        guard !signatures.isEmpty else { return }
        let keys = try await store.personKeys(ids: Array(Set(signatures.map(\.keyID))))
        var rights: [String: AuthorRights] = [:]
        for username in Set(signatures.map(\.username)) where keys.contains(where: { $0.username == username }) {
            if let account = try await store.account(username: username) { rights[username] = AuthorRights(account) }
        }
        do {
            try AuthorshipCheck.check(message, &checked, keys: keys, rights: rights)
        } catch {
            throw ServerError(error)
        }
    }

    func addRoutes(to group: RouterGroup<SyncRequestContext>) {
        group.post("push", use: push)
        group.get("push/:id", use: pushOutcome)
        group.get("pull", use: pull)
        group.post("pull", use: pull)
    }

    @Sendable func push(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let message = try await read(request, context) { bytes throws(JSONReadError) in try PushRequest(wireJSON: bytes) }
        let schema = clientSchema(context)
        var validated = try PushValidation.check(
            message,
            principal: principal,
            schema: schema,
            serverMilliseconds: clock.wallMilliseconds,
            maximumSkewMilliseconds: configuration.maximumClockSkewMilliseconds,
            receivedAt: Date().formatted(.iso8601)
        )
        try await checkAuthorship(message, &validated)
        let checked = validated
        let work: @Sendable () async throws -> PushResponse = { [store, clock, changes, metrics, logger = context.logger] in
            let outcome: PushOutcome
            do {
                let started = ContinuousClock.now
                outcome = try await store.push(checked, principal: principal)
                metrics.pushApplied(
                    records: message.recordCount, fieldChanges: outcome.fieldChanges, conflicts: outcome.conflicts, duration: .now - started
                )
            } catch let refusal as SyncRefusal {
                // Logged here too: an asynchronous push's outcome may never be collected.
                logger.info("push refused", metadata: ["sync.replica": "\(message.replica)", "sync.error": "\(refusal.code.rawValue)"])
                throw ServerError(refusal)
            }
            for group in message.groups {
                for row in group.rows { clock.receive(row.seq) }
            }
            if outcome.applied > 0 {
                changes.committed(sites: principal.sites ?? checked.sites, by: message.replica)
            }
            logger.info(
                "push applied",
                metadata: [
                    "sync.replica": "\(message.replica)", "sync.records": "\(message.recordCount)", "sync.applied": "\(outcome.applied)",
                    "sync.conflicts": "\(outcome.conflicts)",
                ]
            )
            return PushResponse(acked: outcome.acked, applied: outcome.applied, conflicts: outcome.conflicts, hlc: clock.tick())
        }
        guard request.headers[SyncProtocol.preferField]?.contains(SyncProtocol.respondAsync) == true else {
            return try JSONResponse.ok(try await work())
        }
        // Answer now, apply in the background: the client then waits for the outcome with a bodiless
        // GET, which URLSession on Linux can wait for without polling the socket for writability.
        let lastSeq = message.groups.lazy.flatMap(\.rows).map(\.seq).max() ?? .zero
        let id = PushID(replica: message.replica, lastSeq: lastSeq, fingerprint: message.fingerprint)
        try await pending.start(id, work)
        let location = "\(SyncProtocol.pushPath)/\(id.text)"
        return Response(
            status: .accepted,
            headers: [.contentType: "application/json", .location: location, SyncProtocol.preferenceAppliedField: SyncProtocol.respondAsync],
            body: .init(byteBuffer: ByteBuffer(string: #"{"push":"\#(id.text)","location":"\#(location)"}"#))
        )
    }

    /// `GET /v1/push/{id}`: answers as the synchronous push would have. A push this instance is
    /// applying is awaited; an applied one is answered from the store, on any instance.
    @Sendable func pushOutcome(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let text = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        let notFound = ServerError(
            .notFound, .notFound,
            "No push \(TextRules.brief(text, maxBytes: 120)) of this replica is applied, or being applied here. Push again: the server applies each change once."
        )
        guard let id = PushID(text), principal.replica == id.replica else { throw notFound }
        if let task = await pending.take(id) {
            return try JSONResponse.ok(try await task.value)
        }
        guard let state = try await store.replicaState(id.replica), state.lastSeq >= id.lastSeq else { throw notFound }
        // Applied: by this very push when it was the replica's last one, else by an earlier one.
        let last = state.lastPush == id.fingerprint
        return try JSONResponse.ok(
            PushResponse(
                acked: state.lastSeq, applied: last ? state.lastApplied : 0, conflicts: last ? state.lastConflicts : 0, hlc: clock.tick()
            ))
    }

    @Sendable func pull(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let message: PullRequest
        if request.method == .get {
            // The bodiless form: URLSession on Linux keeps polling a socket for writability from the
            // first byte of a request body to the end of the response, which costs a core while
            // the server works. Without a body it waits for the answer instead.
            let query = request.uri.queryParameters
            do {
                message = try PullRequest { query.get($0) }
            } catch {
                throw ServerError.validation("\(error.message).")
            }
        } else {
            message = try await decode(PullRequest.self, request, context)
        }
        guard message.limit > 0 else { throw ServerError.validation("The pull limit must be at least 1.") }
        if let wait = message.wait, !(0...PullRequest.maximumWait).contains(wait) {
            throw ServerError.validation("wait must be a whole number of seconds from 0 to \(PullRequest.maximumWait); got \(wait).")
        }
        if let problem = message.report?.problem { throw ServerError.validation(problem) }
        guard principal.canSync else { throw principal.cannotSync }
        try principal.requireReplica(message.replica)
        if principal.role == .site, let site = principal.site, let other = message.cursor.keys.first(where: { $0 != site }) {
            throw ServerError.forbidden("This token reads site \(site) only; the cursor names site \(other).")
        }
        // A pull that asks to wait and finds nothing new waits for a push to commit records it reads.
        let schema = clientSchema(context)
        var readBefore = false
        let batch = try await changes.read(
            sites: principal.sites,
            replica: message.replica,
            timeout: min(.seconds(message.wait ?? 0), configuration.maximumPullWait),
            isEmpty: { $0.groups.isEmpty && !$0.more }
        ) {
            // A pull that waited reads again only if its credential is still good: it may have been
            // revoked, or have expired, while the pull waited.
            if readBefore { try await requireCurrentCredential(context) }
            readBefore = true
            let started = ContinuousClock.now
            let batch = try await store.pull(message, principal: principal, schema: schema, byteBudget: configuration.maximumPullPageBytes)
            metrics.pulled(records: batch.groups.reduce(0) { $0 + $1.rows.count }, duration: .now - started)
            return batch
        }
        // The laptop's report, kept when the pull reaches the end of what waits: a completed sync.
        if let report = message.report, !batch.more, let replica = principal.replica {
            let schemaVersion = context.clientSchemaVersion ?? configuration.schema.version
            let serverMilliseconds = configuration.wallClock()
            let now = Date()
            if reports.shouldRecord(replica, report, schemaVersion: schemaVersion, offsetMilliseconds: report.clock - serverMilliseconds, at: now) {
                try await store.recordReport(
                    report, replica: replica, site: principal.site ?? SiteID.all, schemaVersion: schemaVersion, at: now.formatted(.iso8601),
                    serverMilliseconds: serverMilliseconds
                )
            }
        }
        let response = PullResponse(groups: batch.groups, cursor: batch.cursor, more: batch.more, hlc: clock.tick())
        do {
            return JSONResponse.ok(bytes: try response.wireJSON())
        } catch {
            context.logger.error("pull response not encodable", metadata: ["error": "\(error)"])
            throw ServerError.internalError
        }
    }

    /// Throws the refusal the token middleware would answer now, for a request whose credential
    /// was checked when it arrived.
    private func requireCurrentCredential(_ context: SyncRequestContext) async throws {
        guard let stored = try await store.token(hash: try context.requireTokenHash()) else { throw ServerError.unknownToken }
        if let refusal = stored.refusal(at: Date().formatted(.iso8601)) { throw ServerError(.unauthorized, .unauthorized, refusal) }
    }

    private func clientSchema(_ context: SyncRequestContext) -> Schema {
        let version = context.clientSchemaVersion ?? configuration.schema.version
        return version == configuration.schema.version ? configuration.schema : configuration.schema.restricted(to: version)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: SyncRequestContext) async throws -> T {
        try await request.decodeJSON(type, limit: configuration.maximumBodySize)
    }

    /// Bodies up to this size are read where the request is handled; larger ones on NIO's thread
    /// pool, so that a client sending the largest bodies at once does not hold the threads every
    /// other request is served on (a body at the 4 MiB limit takes up to about 50 ms to read in
    /// a release build, ten times that in a debug one).
    static let inlineReadBytes = 64 * 1024

    /// Reads a bulk message with its wire-format reader (``JSONReader``), straight from the body's bytes.
    private func read<T: Sendable>(
        _ request: Request, _ context: SyncRequestContext, _ reader: @escaping @Sendable (UnsafeRawBufferPointer) throws(JSONReadError) -> T
    ) async throws -> T {
        let buffer = try await collect(request)
        let read = { @Sendable () throws -> T in
            do {
                return try buffer.withUnsafeReadableBytes { bytes in try reader(bytes) }
            } catch let error as JSONReadError {
                throw ServerError.invalidJSON("\(error).")
            }
        }
        return buffer.readableBytes <= Self.inlineReadBytes ? try read() : try await NIOThreadPool.singleton.runIfActive(read)
    }

    private func collect(_ request: Request) async throws -> ByteBuffer {
        try await request.collectBody(limit: configuration.maximumBodySize)
    }
}

extension SyncProtocol {
    static let preferField = HTTPField.Name(preferHeader)!
    static let preferenceAppliedField = HTTPField.Name(preferenceAppliedHeader)!
}
