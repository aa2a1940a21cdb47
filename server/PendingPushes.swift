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
    }

    /// How long an uncollected outcome is kept.
    let retention: Duration
    /// How many uncollected pushes one replica may have here; the next is refused with `429`.
    let maximumPerReplica: Int
    private var entries: [PushID: Entry] = [:]
    private var perReplica: [String: Int] = [:]

    init(retention: Duration = .seconds(600), maximumPerReplica: Int = 8) {
        self.retention = retention
        self.maximumPerReplica = maximumPerReplica
    }

    /// Starts applying the push `id`, unless its replica has ``maximumPerReplica`` uncollected.
    ///
    /// - Throws: ``ServerError`` `too_many_pending` (429), having started nothing.
    func start(_ id: PushID, _ work: @escaping @Sendable () async throws -> PushResponse) throws {
        let now = ContinuousClock.now
        for (key, entry) in entries where now - entry.accepted >= retention { remove(key) }
        if entries[id] == nil, let count = perReplica[id.replica], count >= maximumPerReplica { throw ServerError.tooManyPending(count) }
        if entries[id] == nil { perReplica[id.replica, default: 0] += 1 }
        entries[id] = Entry(task: Task { try await work() }, accepted: now)
    }

    private func remove(_ id: PushID) {
        guard entries.removeValue(forKey: id) != nil else { return }
        perReplica[id.replica, default: 1] -= 1
        if perReplica[id.replica] == 0 { perReplica[id.replica] = nil }
    }

    /// Removes and returns the push `id` if this instance accepted it.
    func take(_ id: PushID) -> Task<PushResponse, any Error>? {
        let task = entries[id]?.task
        remove(id)
        return task
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
