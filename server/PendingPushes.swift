import Foundation
import ServiceLifecycle
import SiteSyncCore

/// What names an asynchronous push and finds its outcome on any instance: the pushing replica, the
/// greatest sequence number of the batch, and the batch's ``PushRequest/fingerprint``.
///
/// The store's state of the replica says whether the batch is applied (its last sequence number
/// reached the batch's) and, when the batch was the replica's last push, what it applied; so the
/// outcome of an applied push never depends on the memory of the instance that accepted it.
struct PushID: Hashable, Sendable {
    var replica: String
    var lastSeq: HLC
    var fingerprint: String

    init(replica: String, lastSeq: HLC, fingerprint: String) {
        self.replica = replica
        self.lastSeq = lastSeq
        self.fingerprint = fingerprint
    }

    /// Reads the id of a `Location`; nil for text no server made.
    init?(_ text: String) {
        let parts = text.split(separator: "-", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, let seq = Int64(parts[0]), seq > 0, parts[1].count == 16,
            parts[1].allSatisfy(\.isHexDigit), ReplicaID.isValid(String(parts[2]))
        else { return nil }
        self.init(replica: String(parts[2]), lastSeq: HLC(rawValue: seq), fingerprint: String(parts[1]))
    }

    var text: String { "\(lastSeq.rawValue)-\(fingerprint)-\(replica)" }
}

/// Pushes accepted with `Prefer: respond-async` on this instance, applied in the background (docs/PROTOCOL.md,
/// "Asynchronous push").
///
/// An applied push's outcome is read from the store by any instance; what only this instance knows
/// is the refusal of a push it applied, which `GET /v1/push/{id}` collects once from here. An
/// outcome nobody collects is dropped after ``retention``: the push itself is applied (or refused)
/// either way, and a client that lost track of it sends it again, which the server applies only once.
///
/// As a service of the application, it applies each push in a child task of its own ``run()``,
/// and holds the instance's graceful shutdown until every push it accepted is applied or refused:
/// the server stops taking requests first, then the pushes finish.
actor PendingPushes: Service {
    /// A push's outcome, once: the push's child task yields it, and the `GET` that collects the
    /// push awaits it.
    typealias Outcome = AsyncThrowingStream<PushResponse, any Error>

    private struct Entry {
        var outcome: Outcome
        var accepted: ContinuousClock.Instant
        var finished = false
    }

    /// A push to apply, and where its outcome goes.
    private struct Job: Sendable {
        var id: PushID
        var work: @Sendable () async throws -> PushResponse
        var outcome: Outcome.Continuation
    }

    /// How long an uncollected outcome is kept.
    let retention: Duration
    /// How many pushes of one replica may be applying at once here; the next is refused with `429`.
    let maximumPerReplica: Int
    /// How many finished, uncollected outcomes of one replica are kept; older ones are dropped (an
    /// applied push's outcome is in the store anyway; a refusal is found again when it is resent).
    let keptPerReplica: Int
    private var entries: [PushID: Entry] = [:]
    private let jobs: AsyncStream<Job>
    private let submit: AsyncStream<Job>.Continuation

    init(retention: Duration = .seconds(600), maximumPerReplica: Int = 8, keptPerReplica: Int = 32) {
        self.retention = retention
        self.maximumPerReplica = maximumPerReplica
        self.keptPerReplica = keptPerReplica
        (jobs, submit) = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .unbounded)
    }

    /// Starts applying the push `id`, unless ``maximumPerReplica`` pushes of its replica are
    /// still applying here.
    ///
    /// - Throws: ``ServerError`` `too_many_pending` (429), or `unavailable` (503) once the
    ///   instance is shutting down, having started nothing.
    func start(_ id: PushID, _ work: @escaping @Sendable () async throws -> PushResponse) throws {
        let now = ContinuousClock.now
        entries = entries.filter { now - $0.value.accepted < retention }
        let mine = entries.filter { $0.key.replica == id.replica && $0.key != id }
        let applying = mine.values.filter { !$0.finished }.count
        if applying >= maximumPerReplica { throw ServerError.tooManyPending(applying) }
        let (outcome, continuation) = Outcome.makeStream(bufferingPolicy: .bufferingNewest(1))
        guard case .enqueued = submit.yield(Job(id: id, work: work, outcome: continuation)) else { throw ServerError.unavailable }
        let finished = mine.filter { $0.value.finished }.sorted { $0.value.accepted < $1.value.accepted }
        for (old, _) in finished.dropLast(max(keptPerReplica - 1, 0)) { entries[old] = nil }
        entries[id] = Entry(outcome: outcome, accepted: now)
    }

    private func finish(_ id: PushID) {
        entries[id]?.finished = true
    }

    /// Removes the push `id` if this instance accepted it, and returns its outcome, to be awaited.
    func take(_ id: PushID) -> Outcome? {
        entries.removeValue(forKey: id)?.outcome
    }

    /// Applies each push accepted, in a child task, until graceful shutdown; then stops accepting
    /// and returns once every push accepted is applied or refused.
    func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { [submit] in
                try? await gracefulShutdown()
                submit.finish()
            }
            for await job in jobs {
                group.addTask {
                    do {
                        job.outcome.yield(try await job.work())
                        job.outcome.finish()
                    } catch {
                        job.outcome.finish(throwing: error)
                    }
                    await self.finish(job.id)
                }
            }
        }
    }
}

extension PendingPushes.Outcome {
    /// The push's response, or its refusal, once it is applied.
    var value: PushResponse {
        get async throws {
            for try await response in self { return response }
            throw CancellationError()
        }
    }
}
