import Foundation
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncServer
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

/// The convergence property, over generated histories (issue "Nothing silently lost", point 6).
///
/// `SITESYNC_CONVERGENCE_HISTORIES` sets how many histories run (500 by default), and
/// `SITESYNC_CONVERGENCE_STEPS` how long each is (40 steps); `SITESYNC_CONVERGENCE_SEED` replays one
/// history, as a failure prints.
@Suite("Convergence under faults")
struct ConvergenceTests {
    /// What the histories did, summed.
    private struct Totals {
        var histories = 0
        var steps = 0
        var syncs = 0
        var failedSyncs = 0
        var conflicts = 0
        var resolvedTwice = 0
        var resolutions: [String: Int] = [:]
    }

    @Test("Laptops of two sites and a reviewer converge on the server, nothing lost, every overwritten value logged once")
    func histories() async throws {
        let environment = ProcessInfo.processInfo.environment
        // In memory where the system has a tmpfs: the server's file is synced on every commit.
        let shm = URL(fileURLWithPath: "/dev/shm")
        let base = FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
        let directory = base.appendingPathComponent("sitesync-convergence-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await run(count: environment["SITESYNC_CONVERGENCE_HISTORIES"].flatMap(Int.init) ?? 500, store: "SQLite") { seed in
            (.sqlite(path: directory.appendingPathComponent("server-\(seed).sqlite").path), nil)
        }
    }

    /// The same histories on PostgreSQL, with PostgreSQL failing 2% of the statements of the
    /// server's transactions at random (``DatabaseFaults``) besides the network's faults. Each
    /// history has a database of its own; `SITESYNC_CONVERGENCE_POSTGRES_HISTORIES` sets how many
    /// run (100 by default).
    @Test(
        "On PostgreSQL failing at random, laptops converge on the server, nothing lost, nothing acknowledged twice",
        .enabled(if: StoreKind.all.contains(.postgres))
    )
    func postgresHistories() async throws {
        let environment = ProcessInfo.processInfo.environment
        let injected = Mutex<[DatabaseFaults.Kind: Int]>([:])
        try await run(count: environment["SITESYNC_CONVERGENCE_POSTGRES_HISTORIES"].flatMap(Int.init) ?? 100, store: "PostgreSQL") { seed in
            let url = try await PostgresTestDatabase.create()
            let setup = try PostgresSyncStore(url: url, schema: TrialSchema.current, maximumConnections: 1, logger: PostgresTestDatabase.quiet)
            try await setup.withRunning {
                try await setup.migrate()
                for statement in DatabaseFaults.setup { try await setup.execute(statement) }
            }
            let faults = DatabaseFaults(seed: seed ^ 0xDB_FA17)
            return (.postgres(url: url, faults: faults.hook), faults)
        } finished: { faults in
            injected.withLock { $0.merge(faults?.injected ?? [:], uniquingKeysWith: +) }
        }
        let counts = injected.withLock { $0 }
        print(
            "PostgreSQL failures injected: \(counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.value) \($0.key.rawValue)" }.joined(separator: ", "))"
        )
        if environment["SITESYNC_CONVERGENCE_SEED"] == nil {
            #expect(DatabaseFaults.Kind.allCases.allSatisfy { counts[$0, default: 0] > 0 }, "every kind of failure was injected: \(counts)")
        }
    }

    /// Runs `count` histories (or the one `SITESYNC_CONVERGENCE_SEED` names), two at a time, each on
    /// the database `database` makes for its seed; records each failure with how to replay it.
    private func run(
        count: Int, store: String, database: @escaping @Sendable (UInt64) async throws -> (InProcessServer.Database, DatabaseFaults?),
        finished: @escaping @Sendable (DatabaseFaults?) -> Void = { _ in }
    ) async throws {
        let environment = ProcessInfo.processInfo.environment
        let seeds: [UInt64] =
            if let replay = environment["SITESYNC_CONVERGENCE_SEED"].flatMap(UInt64.init) {
                [replay]
            } else {
                Array(1...UInt64(count))
            }
        let steps = environment["SITESYNC_CONVERGENCE_STEPS"].flatMap(Int.init) ?? 40
        let templates = try ConvergenceHistory.Templates()
        let started = ContinuousClock.now
        // Two histories at a time: each has its own server and laptops.
        let (totals, failures) = try await withThrowingTaskGroup(of: (ConvergenceHistory, (any Error)?).self) { group in
            var pending = seeds.makeIterator()
            func start() {
                guard let seed = pending.next() else { return }
                group.addTask {
                    let (location, faults) = try await database(seed)
                    var history = try await ConvergenceHistory(seed: seed, database: location, databaseFaults: faults, templates: templates)
                    defer {
                        history.stop()
                        finished(faults)
                    }
                    do {
                        try await history.run(steps: steps)
                        return (history, nil)
                    } catch {
                        return (history, error)
                    }
                }
            }
            start()
            start()
            var totals = Totals()
            var failures: [(seed: UInt64, steps: Int, error: any Error)] = []
            while let (history, error) = try await group.next() {
                if let error {
                    failures.append((history.seed, history.steps, error))
                } else {
                    totals.histories += 1
                    totals.steps += history.steps
                    totals.syncs += history.syncs
                    totals.failedSyncs += history.failedSyncs
                    totals.conflicts += history.conflicts
                    totals.resolvedTwice += history.resolvedTwice
                    totals.resolutions.merge(history.resolutions, uniquingKeysWith: +)
                    start()
                }
            }
            return (totals, failures.sorted { $0.seed < $1.seed })
        }
        for failure in failures.prefix(3) {
            Issue.record(
                """
                History \(failure.seed) on \(store) failed after \(failure.steps) steps: \(failure.error)
                Replay it: SITESYNC_CONVERGENCE_SEED=\(failure.seed) swift test --filter ConvergenceTests
                """
            )
        }
        let decisions = totals.resolutions.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print(
            """
            Convergence on \(store): \(totals.histories) of \(seeds.count) histories passed, \(totals.steps) steps, \(totals.syncs) syncs \
            (\(totals.failedSyncs) given up under faults), \(totals.conflicts) values in conflict logs, resolutions: \(decisions); \
            \(totals.resolvedTwice) conflicts resolved on two laptops at once; in \(ContinuousClock.now - started)
            """
        )
    }
}
