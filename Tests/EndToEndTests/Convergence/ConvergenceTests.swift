import Foundation
import Testing

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
        let seeds: [UInt64] =
            if let replay = environment["SITESYNC_CONVERGENCE_SEED"].flatMap(UInt64.init) {
                [replay]
            } else {
                Array(1...UInt64(environment["SITESYNC_CONVERGENCE_HISTORIES"].flatMap(Int.init) ?? 500))
            }
        let steps = environment["SITESYNC_CONVERGENCE_STEPS"].flatMap(Int.init) ?? 40
        // In memory where the system has a tmpfs: the server's file is synced on every commit.
        let shm = URL(fileURLWithPath: "/dev/shm")
        let base = FileManager.default.isWritableFile(atPath: shm.path) ? shm : FileManager.default.temporaryDirectory
        let directory = base.appendingPathComponent("sitesync-convergence-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let templates = try ConvergenceHistory.Templates()
        let started = ContinuousClock.now
        // Two histories at a time: each has its own server and laptops.
        let (totals, failures) = try await withThrowingTaskGroup(of: (ConvergenceHistory, (any Error)?).self) { group in
            var pending = seeds.makeIterator()
            func start() {
                guard let seed = pending.next() else { return }
                group.addTask {
                    var history = try await ConvergenceHistory(seed: seed, directory: directory, templates: templates)
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
                History \(failure.seed) failed after \(failure.steps) steps: \(failure.error)
                Replay it: SITESYNC_CONVERGENCE_SEED=\(failure.seed) swift test --filter ConvergenceTests
                """
            )
        }
        let decisions = totals.resolutions.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print(
            """
            Convergence: \(totals.histories) of \(seeds.count) histories passed, \(totals.steps) steps, \(totals.syncs) syncs \
            (\(totals.failedSyncs) given up under faults), \(totals.conflicts) values in conflict logs, resolutions: \(decisions); \
            \(totals.resolvedTwice) conflicts resolved on two laptops at once; in \(ContinuousClock.now - started)
            """
        )
    }
}
