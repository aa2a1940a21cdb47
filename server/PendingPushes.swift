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
/// As a service of the application, it holds the instance's graceful shutdown until every push it
/// accepted is applied or refused: the server stops taking requests first, then the pushes finish.
actor PendingPushes: Service {
    private struct Entry {
        var task: Task<PushResponse, any Error>
        var accepted: ContinuousClock.Instant
        var finished = false
    }

    /// How long an uncollected outcome is kept.
    let retention: Duration
    /// How many pushes of one replica may be applying at once here; the next is refused with `429`.
    let maximumPerReplica: Int
    /// How many finished, uncollected outcomes of one replica are kept; older ones are dropped (an
    /// applied push's outcome is in the store anyway; a refusal is found again when it is resent).
    let keptPerReplica: Int
    private var entries: [PushID: Entry] = [:]

    init(retention: Duration = .seconds(600), maximumPerReplica: Int = 8, keptPerReplica: Int = 32) {
        self.retention = retention
        self.maximumPerReplica = maximumPerReplica
        self.keptPerReplica = keptPerReplica
    }

    /// Starts applying the push `id`, unless ``maximumPerReplica`` pushes of its replica are
    /// still applying here.
    ///
    /// - Throws: ``ServerError`` `too_many_pending` (429), having started nothing.
    func start(_ id: PushID, _ work: @escaping @Sendable () async throws -> PushResponse) throws {
        let now = ContinuousClock.now
        entries = entries.filter { now - $0.value.accepted < retention }
        let mine = entries.filter { $0.key.replica == id.replica && $0.key != id }
        let applying = mine.values.filter { !$0.finished }.count
        if applying >= maximumPerReplica { throw ServerError.tooManyPending(applying) }
        let finished = mine.filter { $0.value.finished }.sorted { $0.value.accepted < $1.value.accepted }
        for (old, _) in finished.dropLast(max(keptPerReplica - 1, 0)) { entries[old] = nil }
        entries[id] = Entry(
            task: Task {
                defer { Task { await self.finish(id) } }
                return try await work()
            },
            accepted: now
        )
    }

    private func finish(_ id: PushID) {
        entries[id]?.finished = true
    }

    /// Removes and returns the push `id` if this instance accepted it.
    func take(_ id: PushID) -> Task<PushResponse, any Error>? {
        entries.removeValue(forKey: id)?.task
    }

    /// Waits for graceful shutdown, then for every push accepted here.
    func run() async throws {
        try? await gracefulShutdown()
        await drain()
    }

    /// Waits until every push accepted so far is applied or refused.
    func drain() async {
        for entry in entries.values { _ = await entry.task.result }
    }
}
