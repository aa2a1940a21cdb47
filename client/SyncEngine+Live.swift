import Foundation
import GRDB
import Logging
import SiteSyncCore
import Synchronization

/// What live sync did: reported to ``SyncEngine/LiveConfiguration/events`` as it happens.
public enum LiveSyncEvent: Sendable, Equatable {
    /// Why a sync ran.
    public enum Cause: String, Sendable {
        /// The first sync of the run.
        case start
        /// A commit to the replica, by this process or another.
        case localChange = "local-change"
        /// The server has records this replica has not pulled.
        case remoteChange = "remote-change"
        /// A retry after a failure.
        case retry
    }

    /// A sync finished.
    case synced(SyncReport, cause: Cause)
    /// A sync or a wait for the server's changes failed with a transient error (the server
    /// unreachable or busy); it is tried again after `retryIn`.
    case failed(message: String, retryIn: Duration)
}

extension SyncEngine {
    /// How live sync (``run(_:)``) reacts to changes and failures.
    public struct LiveConfiguration: Sendable {
        /// How long the replica must stay quiet after a commit before it syncs: a burst of edits
        /// (an import, a form saved field by field) goes in one sync.
        public var debounce: Duration = .milliseconds(200)
        /// The longest a commit waits while edits keep coming.
        public var maximumDelay: Duration = .seconds(2)
        /// How often the replica's outbox is checked for commits made by other processes (the
        /// `sitesync` command, the `sqlite3` shell). This process's own commits are seen at once.
        public var pollInterval: Duration = .milliseconds(250)
        /// Seconds the server may hold a pull that finds nothing new (`wait=`); it answers as soon
        /// as another laptop's push commits. Keep it below the transport's timeout.
        public var pullWait = 25
        /// The first delay after a failure; doubled after each failure in a row, up to ``maximumBackoff``.
        public var initialBackoff: Duration = .seconds(1)
        /// The longest delay between attempts while the server stays unreachable.
        public var maximumBackoff: Duration = .seconds(30)
        /// Called with what live sync does: each sync, each failure. Nil reports nothing.
        public var events: (@Sendable (LiveSyncEvent) -> Void)?

        /// The defaults.
        public init() {}
    }

    /// Syncs live until the task is cancelled, then returns.
    ///
    /// - Syncs at once, then shortly after every commit to the replica (debounced by
    ///   ``LiveConfiguration/debounce``), whoever makes it: this process, another `sitesync`
    ///   process, or any SQLite client.
    /// - Keeps one pull waiting at the server (``LiveConfiguration/pullWait``), which the server
    ///   answers as soon as another laptop's push commits a record of this replica's site; the
    ///   replica then syncs.
    /// - While the server is unreachable or busy, retries with exponential backoff and jitter,
    ///   and syncs as soon as it answers again. Nothing is lost meanwhile: edits wait in the outbox.
    /// - Takes turns with every other sync of the replica, in this process or another (``sync()``).
    ///
    /// ```swift
    /// let live = Task { try await engine.run() }
    /// // … later, when the screen closes:
    /// live.cancel()
    /// ```
    ///
    /// - Throws: a failure retrying cannot mend, after which live sync stops: the credential
    ///   refused, another laptop holding the replica's id, a server clock far ahead.
    public func run(_ live: LiveConfiguration = .init()) async throws {
        let identity = try replica.requireIdentity()
        logger.info("live sync started", metadata: ["sync.replica": "\(identity.replicaID)", "sync.server": "\(identity.serverURL)"])
        defer { logger.info("live sync stopped", metadata: ["sync.replica": "\(identity.replicaID)"]) }
        let (wakes, wake) = AsyncStream.makeStream(of: Wake.self, bufferingPolicy: .unbounded)
        let (timings, timer) = AsyncStream.makeStream(of: Timing?.self, bufferingPolicy: .unbounded)
        defer {
            wake.finish()
            timer.finish()
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await watchOutbox(live, wake: wake) }
                group.addTask { try await waitForServerChanges(live, wake: wake) }
                group.addTask { await Self.runTimer(timings, wake: wake) }
                group.addTask { try await syncLocalChanges(live, wakes: wakes, timer: timer) }
                // The first to end ends them all: a failure live sync cannot mend, or cancellation.
                try await group.next()
                group.cancelAll()
            }
        } catch is CancellationError {
            return
        } catch  where Task.isCancelled {
            // AsyncHTTPClient and GRDB answer a cancelled task with errors of their own.
            return
        }
    }

    /// What wakes the loop that syncs local changes.
    private enum Wake: Sendable {
        /// The outbox has a change not seen before.
        case localChange
        /// The replica was quiet for the debounce after a change.
        case quiet
        /// A failed sync's delay is over.
        case retry
        /// The server answers again after failing.
        case serverAnswers
    }

    /// A wake due at a time (``runTimer(_:wake:)``).
    private struct Timing: Sendable {
        var event: Wake
        var deadline: ContinuousClock.Instant
    }

    /// Yields each timing's wake at its deadline, unless a later timing (or nil, which cancels)
    /// replaced it first. Each timing sleeps in a child of this task; one replaced wakes and
    /// yields nothing.
    private static func runTimer(_ timings: AsyncStream<Timing?>, wake: AsyncStream<Wake>.Continuation) async {
        /// The number of the latest timing.
        final class Latest: Sendable {
            let number = Mutex(0)
        }
        let latest = Latest()
        await withDiscardingTaskGroup { sleepers in
            var count = 0
            for await timing in timings {
                count += 1
                let mine = count
                latest.number.withLock { $0 = mine }
                guard let timing else { continue }
                sleepers.addTask {
                    guard (try? await Task.sleep(until: timing.deadline)) != nil else { return }
                    if latest.number.withLock({ $0 == mine }) { wake.yield(timing.event) }
                }
            }
            sleepers.cancelAll()
        }
    }

    /// Syncs at the start, after local changes (debounced), and again after failures (with backoff).
    private func syncLocalChanges(_ live: LiveConfiguration, wakes: AsyncStream<Wake>, timer: AsyncStream<Timing?>.Continuation) async throws {
        var backoff = Backoff(initial: live.initialBackoff, maximum: live.maximumBackoff)
        defer { timer.yield(nil) }
        func schedule(_ event: Wake, after delay: Duration) {
            timer.yield(Timing(event: event, deadline: .now + delay))
        }
        // When the first change not yet synced was seen.
        var dirtySince: ContinuousClock.Instant?
        var failing = false
        var due: LiveSyncEvent.Cause? = .start
        var iterator = wakes.makeAsyncIterator()
        while true {
            if let cause = due {
                due = nil
                dirtySince = nil
                timer.yield(nil)
                do {
                    let outcome = try await replica.state.exclusively { try await syncInTurn() }
                    failing = false
                    backoff.reset()
                    report(outcome, cause: cause, live)
                } catch let error as SyncError where error.isTransient {
                    // A request cut short by cancellation fails as unreachable: that is no failure.
                    try Task.checkCancellation()
                    failing = true
                    let delay = backoff.next()
                    logger.notice("sync failed; retrying", metadata: ["sync.error": "\(error)", "sync.retry_in_ms": "\(delay.wholeMilliseconds)"])
                    live.events?(.failed(message: error.message, retryIn: delay))
                    schedule(.retry, after: delay)
                }
            }
            guard let event = await iterator.next() else { return }
            try Task.checkCancellation()
            switch event {
            case .localChange:
                // While failing, the retry's timer decides; otherwise sync once the replica is quiet,
                // or when the first change has waited the longest delay.
                guard !failing else { continue }
                let now = ContinuousClock.now
                let first = dirtySince ?? now
                dirtySince = first
                schedule(.quiet, after: min(live.debounce, max(live.maximumDelay - (now - first), .zero)))
            case .quiet:
                due = .localChange
            case .retry:
                due = .retry
            case .serverAnswers:
                if failing { due = .retry }
            }
        }
    }

    private func report(_ report: SyncReport, cause: LiveSyncEvent.Cause, _ live: LiveConfiguration) {
        logger.info(
            "synced",
            metadata: [
                "sync.cause": "\(cause.rawValue)", "sync.pushed": "\(report.pushed)", "sync.pulled": "\(report.pulled)",
                "sync.conflicts": "\(report.conflicts)",
            ]
        )
        live.events?(.synced(report, cause: cause))
    }

    /// Wakes the local loop for every commit that adds to the outbox: at once for this process's
    /// commits (GRDB's observation), within ``LiveConfiguration/pollInterval`` for other processes'.
    private func watchOutbox(_ live: LiveConfiguration, wake: AsyncStream<Wake>.Continuation) async throws {
        let newest = { @Sendable (db: Database) throws -> Int64 in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM _sitesync_outbox") ?? 0 }
        // The greatest sequence number seen in the outbox; the first sync pushes what is there now.
        let seen = Mutex(try await replica.writer.read(newest))
        let check = { @Sendable (db: Database) throws in
            let latest = try newest(db)
            let isNew = seen.withLock { seen in
                defer { seen = max(seen, latest) }
                return latest > seen
            }
            if isNew { wake.yield(.localChange) }
        }
        let observation = DatabaseRegionObservation(tracking: Table("_sitesync_outbox")).start(in: replica.writer) { _ in
            // Observation ends with the task; a failing read is left to the next poll.
        } onChange: { db in
            try? check(db)
        }
        defer { observation.cancel() }
        while true {
            try await Task.sleep(for: live.pollInterval)
            try await replica.writer.read(check)
        }
    }

    /// Keeps one pull waiting at the server for other laptops' changes, and syncs when it answers
    /// with any. The pull asks for one record: it says whether there are changes, and the sync
    /// that follows pulls them with the checks of every pull.
    private func waitForServerChanges(_ live: LiveConfiguration, wake: AsyncStream<Wake>.Continuation) async throws {
        var backoff = Backoff(initial: live.initialBackoff, maximum: live.maximumBackoff)
        var failing = false
        while true {
            // The replica's own credential is needed; the first sync enrols it.
            guard let identity = replica.identity, identity.isEnrolled else {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            let asked = ContinuousClock.now
            do {
                let probe = try await sync.pullRequest(limit: 1, wait: live.pullWait, acked: false, build: configuration.build)
                let page = try await transport.pull(probe)
                if failing {
                    failing = false
                    backoff.reset()
                    wake.yield(.serverAnswers)
                }
                if page.recordCount > 0 || page.more {
                    report(try await replica.state.exclusively { try await syncInTurn() }, cause: .remoteChange, live)
                } else if ContinuousClock.now - asked < .seconds(1) {
                    // A server that does not hold pulls answers at once: ask again a second later.
                    try await Task.sleep(for: .seconds(1))
                }
            } catch let error as SyncError where error.isTransient {
                try Task.checkCancellation()
                // Reported once: the loop of local changes reports each of its own retries.
                let delay = backoff.next()
                if !failing {
                    logger.notice("waiting for the server's changes failed; retrying", metadata: ["sync.error": "\(error)"])
                    live.events?(.failed(message: error.message, retryIn: delay))
                }
                failing = true
                try await Task.sleep(for: delay)
            }
        }
    }
}

/// Exponential backoff with jitter: each delay is drawn between half and all of a bound that
/// doubles after each failure, so that laptops cut off together do not retry in step.
struct Backoff: Sendable {
    let initial: Duration
    let maximum: Duration
    private var bound: Duration

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = max(maximum, initial)
        bound = initial
    }

    /// The next delay.
    mutating func next() -> Duration {
        let delay = bound * Double.random(in: 0.5...1)
        bound = min(bound * 2, maximum)
        return delay
    }

    mutating func reset() { bound = initial }
}
