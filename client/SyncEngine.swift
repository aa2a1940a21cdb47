import Foundation
import Logging
import SiteSyncCore

/// What one sync did.
public struct SyncReport: Codable, Sendable, Equatable {
    /// Records pushed to the server.
    public var pushed: Int
    /// Records pulled that changed something here.
    public var pulled: Int
    /// Conflicts the server logged for the pushed changes.
    public var conflicts: Int
    /// Records changed with plain SQL that stay unpushed until a person gives the reason
    /// (``Replica/unexplainedChanges()``).
    public var awaitingReason: Int

    /// Creates a report.
    public init(pushed: Int = 0, pulled: Int = 0, conflicts: Int = 0, awaitingReason: Int = 0) {
        self.pushed = pushed
        self.pulled = pulled
        self.conflicts = conflicts
        self.awaitingReason = awaitingReason
    }

    enum CodingKeys: String, CodingKey {
        case pushed, pulled, conflicts
        case awaitingReason = "awaiting_reason"
    }
}

/// How far a push or a pull has come, reported after each batch (``SyncEngine/Configuration/progress``).
public struct SyncProgress: Sendable, Equatable {
    /// What the engine is doing.
    public enum Phase: String, Sendable {
        /// Sending the outbox.
        case push
        /// Receiving the server's changes.
        case pull
    }

    /// Pushing or pulling.
    public var phase: Phase
    /// Records of this phase sent or received so far.
    public var done: Int
    /// Records the phase handles in all, when known: the outbox when a push starts (or what was
    /// pushed, if edits during the push made it more); nil for a pull, whose size the server does not say.
    public var total: Int?

    /// Creates a report.
    public init(phase: Phase, done: Int, total: Int?) {
        (self.phase, self.done, self.total) = (phase, done, total)
    }
}

/// Runs sync rounds for a replica: push the outbox, then pull, in bounded batches, until both drain;
/// or, with ``run(_:)``, live sync until cancelled.
///
/// Pushes are idempotent (the server applies each per-replica sequence number once), so a batch
/// whose answer was lost is simply sent again. Pulled batches are applied with their cursor, so an
/// interrupted pull resumes where it stopped. Transient failures are retried with bounded
/// exponential backoff. The syncs of one replica take turns, also across processes.
///
/// ```swift
/// let engine = SyncEngine(replica: replica, transport: try HTTPTransport(replica: replica))
/// let report = try await engine.sync()
/// print("pushed \(report.pushed), pulled \(report.pulled)")
/// ```
public struct SyncEngine: Sendable {
    /// Batch sizes, retries and round limits.
    public struct Configuration: Sendable {
        /// Records per push request; at most `SyncProtocol.maximumPushRecords` (5,000) are sent.
        public var pushBatchSize = 2000
        /// The most bytes of JSON a push request's records take: 1 MiB, a quarter of the server's
        /// default body limit. A batch ends before the record that would pass it; a record larger on
        /// its own (the trial's largest is far smaller) is pushed alone.
        public var pushBatchBytes = 1 << 20
        /// Records per pull request.
        public var pullBatchSize = 2000
        /// Attempts per request for transient failures (the first included).
        public var attempts = 4
        /// Delay before the first retry; doubled each time.
        public var initialBackoff: Duration = .milliseconds(200)
        /// Longest delay between retries.
        public var maximumBackoff: Duration = .seconds(5)
        /// Push-then-pull rounds before giving up on a replica that keeps being written.
        public var maximumRounds = 8
        /// Called after each batch pushed or pulled, with how far the phase has come: for a
        /// progress display. Nil (the default) reports nothing.
        public var progress: (@Sendable (SyncProgress) -> Void)?
        /// The build this laptop reports to the server at each sync (`ReplicaReport.build` of
        /// SiteSyncCore), which operators and monitors see: your app's name and version.
        public var build = "SiteSyncClient \(SiteSyncBuild.version)"

        /// The defaults.
        public init() {}
    }

    let replica: Replica
    /// The replica's sync state: outbox, acknowledgements, cursor, enrolment, reports.
    let sync: ReplicaSync
    let transport: any SyncTransport
    let configuration: Configuration
    let logger: Logger

    /// Creates an engine.
    public init(
        replica: Replica, transport: any SyncTransport, configuration: Configuration = .init(),
        logger: Logger = Logger(label: "sitesync.sync", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.replica = replica
        self.sync = ReplicaSync(replica)
        self.transport = transport
        self.configuration = configuration
        self.logger = logger
    }

    /// Registers the replica's id with the server and stores the replica's own credential, unless
    /// that was done already; ``sync()`` does it first.
    ///
    /// - Throws: ``SyncError`` with code `replica_taken` when the id is enrolled by another laptop
    ///   or the copy this file was made from: ``Replica/rejoin(enrolmentToken:)`` gives it a new one.
    @discardableResult
    public func enrol() async throws -> ReplicaIdentity {
        try await replica.state.exclusively { try await enrolInTurn() }
    }

    @discardableResult
    private func enrolInTurn() async throws -> ReplicaIdentity {
        let identity = try replica.requireIdentity()
        guard !identity.isEnrolled else { return identity }
        let request = try await sync.enrolmentRequest()
        let response = try await withRetry("enrol") { try await transport.enrol(request) }
        logger.info("replica enrolled", metadata: ["sync.replica": "\(response.replica)"])
        return try await sync.recordEnrolment(response)
    }

    /// Pushes and pulls until both are drained.
    ///
    /// Syncs of one replica take turns, also across processes: a sync started while another runs
    /// (a `sitesync sync --watch` in another terminal, say) waits for it to finish, and stops
    /// waiting when its task is cancelled.
    public func sync() async throws -> SyncReport {
        try await replica.state.exclusively { try await syncInTurn() }
    }

    func syncInTurn() async throws -> SyncReport {
        try await enrolInTurn()
        var report = SyncReport()
        var completion: ReplicaSync.SyncCompletion?
        for _ in 0..<configuration.maximumRounds where completion == nil {
            let pushed = try await pushInTurn()
            report.pushed += pushed.records
            report.conflicts += pushed.conflicts
            // With nothing left to push, the last page's transaction records the completed sync.
            let pulled = try await pullInTurn(completingSync: true)
            report.pulled += pulled.changed
            completion = pulled.last.completion
        }
        let completed: ReplicaSync.SyncCompletion
        if let completion { completed = completion } else { completed = try await sync.recordSyncCompleted() }
        report.awaitingReason = completed.awaitingReason
        if completed.hasPeople, let people = transport as? any PeopleTransport {
            // A deactivation or a new password reaches the laptop; a failure here leaves it to the next sync.
            do {
                let changed = try await replica.refreshPeople(people)
                if !changed.isEmpty { logger.info("people's accounts changed at the server", metadata: ["sync.people": "\(changed.joined(separator: ","))"]) }
            } catch {
                logger.warning("people's accounts not refreshed", metadata: ["sync.error": "\(error)"])
            }
        }
        logger.info(
            "sync completed", metadata: ["sync.pushed": "\(report.pushed)", "sync.pulled": "\(report.pulled)", "sync.conflicts": "\(report.conflicts)"])
        return report
    }

    /// Pushes the outbox in batches; returns the records pushed and conflicts logged.
    ///
    /// Batches are sent one at a time, in sequence order, as the server's exactly-once rule requires.
    /// The next batch is read while one travels, and is sent as soon as the answer arrives, while the
    /// answered batch is acknowledged. When the next batch holds a record of the answered one (edited
    /// again during its push), the acknowledgement comes first and rebases it, and the next batch is
    /// read again, so its bases are the versions just pushed.
    public func push() async throws -> (records: Int, conflicts: Int) {
        try await replica.state.exclusively { try await pushInTurn() }
    }

    private func pushInTurn() async throws -> (records: Int, conflicts: Int) {
        // The server refuses a push of more records than the protocol allows.
        let batchSize = min(max(configuration.pushBatchSize, 1), SyncProtocol.maximumPushRecords)
        guard var current = try await sync.nextBatchToSend(limit: batchSize, byteBudget: configuration.pushBatchBytes) else { return (0, 0) }
        let total = configuration.progress == nil ? nil : try await replica.writer.read(Replica.pendingCount)
        // The batch in flight is the one child of this group: leaving the group, by an error or a
        // cancellation, cancels and awaits it.
        return try await withThrowingTaskGroup(of: PushResponse.self) { inFlight in
            var records = 0
            var conflicts = 0
            send(current, in: &inFlight)
            while true {
                var next = try await sync.nextBatchToSend(limit: batchSize, byteBudget: configuration.pushBatchBytes, after: current.lastSeq)
                guard let answer = try await inFlight.next() else { preconditionFailure("a batch is always in flight here") }
                records += current.count
                conflicts += answer.conflicts
                logger.debug("pushed batch", metadata: ["sync.records": "\(current.count)", "sync.acked": "\(answer.acked)"])
                configuration.progress?(SyncProgress(phase: .push, done: records, total: total.map { max($0, records) }))
                if let ready = next, ready.isDisjoint(with: current) {
                    send(ready, in: &inFlight)
                    try await sync.acknowledge(current, answer)
                } else {
                    if try await sync.acknowledge(current, answer) > 0 {
                        next = try await sync.nextBatchToSend(limit: batchSize, byteBudget: configuration.pushBatchBytes, after: current.lastSeq)
                    }
                    guard let ready = next else { return (records, conflicts) }
                    send(ready, in: &inFlight)
                }
                current = next!
            }
        }
    }

    /// Starts pushing one batch, with retries, as a child of `group`. The batch was recorded as
    /// sent when it was read (``ReplicaSync/nextBatchToSend(limit:byteBudget:after:)``), so that a
    /// retry after a lost answer is recognised as this replica's (``PushRequest/sent``).
    private func send(_ batch: OutboxBatch, in group: inout ThrowingTaskGroup<PushResponse, any Error>) {
        let request = batch.request
        group.addTask { [self] in try await withRetry("push") { try await transport.push(request) } }
    }

    /// Pulls until the server has nothing more; returns the records that changed here.
    public func pull() async throws -> Int {
        try await replica.state.exclusively { try await pullInTurn(completingSync: false).changed }
    }

    /// Pulls until the server has nothing more; returns the records that changed here, and what
    /// applying the last page did (with `completingSync`, ``ReplicaSync/apply(_:completingSync:)``).
    private func pullInTurn(completingSync: Bool) async throws -> (changed: Int, last: ReplicaSync.AppliedPage) {
        var changed = 0
        var received = 0
        func applied(_ response: PullResponse) async throws -> ReplicaSync.AppliedPage {
            let applied = try await sync.apply(response, completingSync: completingSync && !response.more)
            changed += applied.changed
            received += response.groups.reduce(0) { $0 + $1.rows.count }
            configuration.progress?(SyncProgress(phase: .pull, done: received, total: nil))
            return applied
        }
        var request = try await sync.pullRequest(limit: configuration.pullBatchSize, acked: true, build: configuration.build)
        let first = request
        var response = try await withRetry("pull") { try await transport.pull(first) }
        while true {
            guard response.more else {
                let page = try await applied(response)
                return (changed, page)
            }
            // Fetch the next batch while this one is applied.
            request.cursor = response.cursor
            let nextRequest = request
            async let next = withRetry("pull") { try await transport.pull(nextRequest) }
            _ = try await applied(response)
            response = try await next
        }
    }

    /// Runs `body`, again after a transient failure, up to ``Configuration/attempts`` times, with
    /// the jittered ``Backoff`` between attempts; a cancellation ends the wait at once.
    private func withRetry<T: Sendable>(_ operation: String, _ body: @Sendable () async throws -> T) async throws -> T {
        var backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maximumBackoff)
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch let error as SyncError where error.isTransient && attempt < configuration.attempts {
                try Task.checkCancellation()
                logger.info(
                    "sync request failed; retrying", metadata: ["sync.operation": "\(operation)", "sync.attempt": "\(attempt)", "sync.error": "\(error)"])
                try await Task.sleep(for: backoff.next())
                attempt += 1
            }
        }
    }
}
