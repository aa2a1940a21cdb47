import Foundation
import SiteSyncCore

/// Pushes accepted with `Prefer: respond-async`: applied in the background, their outcome collected
/// once by `GET /v1/push/{id}` (docs/PROTOCOL.md, "Asynchronous push").
///
/// The outcome is the one the synchronous push would have answered, error included. An outcome
/// nobody collects is dropped after ``retention``: the push itself is applied (or refused) either
/// way, and a client that lost track of it sends it again, which the server applies only once.
actor PendingPushes {
    private struct Entry {
        var principal: Principal
        var task: Task<PushResponse, any Error>
        var accepted: ContinuousClock.Instant
    }

    /// How long an uncollected outcome is kept.
    let retention: Duration
    private var entries: [String: Entry] = [:]

    init(retention: Duration = .seconds(600)) {
        self.retention = retention
    }

    /// Starts applying a push; returns the id its outcome is collected by.
    func start(for principal: Principal, _ work: @escaping @Sendable () async throws -> PushResponse) -> String {
        let now = ContinuousClock.now
        entries = entries.filter { now - $0.value.accepted < retention }
        let id = RecordID.generate()
        entries[id] = Entry(principal: principal, task: Task { try await work() }, accepted: now)
        return id
    }

    /// Removes and returns the push `id` if `principal` started it (the same role and site).
    func take(_ id: String, for principal: Principal) -> Task<PushResponse, any Error>? {
        guard let entry = entries[id], entry.principal == principal else { return nil }
        entries[id] = nil
        return entry.task
    }
}
