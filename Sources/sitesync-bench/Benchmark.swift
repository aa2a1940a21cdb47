import ArgumentParser
import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import SiteSyncPostgresStore
import SiteSyncRules
import SiteSyncServer
import Synchronization
import TrialRecords

/// The benchmark harness: starts the server in-process on loopback, drives replicas, prints one JSON
/// line per measurement and a readable table. Build with `-c release`; see docs/BENCHMARKS.md.
@main
struct Benchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitesync-bench",
        abstract: "Measure tracked writes, push, pull, delta rounds, bytes on the wire and pull memory.",
        subcommands: [Run.self, PullChild.self, ConcurrentChild.self],
        defaultSubcommand: Run.self
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every measurement.")

    @Option(help: "adverse_events records for local_write, push and pull.")
    var records = 100_000

    @Option(help: "Records on the server for the small delta round.")
    var deltaSmall = 1_000

    @Option(help: "Records on the server for the large delta round.")
    var deltaLarge = 1_000_000

    @Option(help: "Delta rounds per size; the median is reported.")
    var rounds = 20

    @Option(name: .customLong("repeat"), help: "Repetitions of local_write, each on a fresh replica; medians are reported, with the ratio's range.")
    var repetitions = 5

    @Option(help: "Working folder for the databases (emptied first).")
    var directory = "bench-out"

    @Option(help: "Run the server on PostgreSQL: a postgres:// URL of a cluster the bench may create databases in (one per server it runs).")
    var database: String?

    /// The bench's five parts: each starts its own server.
    enum Part: String, CaseIterable, ExpressibleByArgument {
        /// local_write, push, pull, bytes_per_change and pull_memory, which build on one another.
        case writes
        case delta
        case concurrent
        case flood
        /// live_sync: an edit on one laptop to visible on another, both syncing live.
        case live
    }

    @Option(help: "Edits timed from one live-syncing laptop to another; the median and the 99th percentile are reported.")
    var liveEdits = 100

    @Option(help: "Pushes of one record timed during the flood; the median and the longest are reported.")
    var floodRounds = 40

    @Option(help: "Run only these parts (repeatable): writes (local_write, push, pull, bytes, pull memory), delta, concurrent, flood, live.")
    var only: [Part] = []

    private func runs(_ part: Part) -> Bool { only.isEmpty || only.contains(part) }

    func validate() throws {
        if let database, !PostgresSyncStore.isURL(database) { throw ValidationError("--database must be a postgres:// URL.") }
        guard records >= 1000, deltaSmall >= 10, deltaLarge >= deltaSmall, rounds >= 1, repetitions >= 1, floodRounds >= 1, liveEdits >= 10 else {
            throw ValidationError(
                "--records needs at least 1000, the delta sizes at least 10 and in order, --rounds, --repeat and --flood-rounds at least 1, --live-edits at least 10."
            )
        }
    }

    func run() async throws {
        let folder = URL(fileURLWithPath: directory, isDirectory: true)
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let report = Report()

        if runs(.writes) { try await writes(folder: folder, report: report) }
        if runs(.delta) { try await delta(folder: folder, report: report) }
        if runs(.concurrent) { try await concurrent(folder: folder, report: report) }
        if runs(.flood) { try await flood(folder: folder, report: report) }
        if runs(.live) { try await live(folder: folder, report: report) }
        report.printTable()
    }

    /// local_write, push, pull, bytes_per_change and pull_memory, on one server.
    func writes(folder: URL, report: Report) async throws {
        try await BenchServer.run(databasePath: folder.appendingPathComponent("server.sqlite").path, postgres: database) { server in
            // local_write: the same rows, tracked through the library, tracked through a plain SQLite
            // connection (another client's path), and untracked, batch by batch, on fresh replicas each
            // repetition; the shared machine is noisy, so the medians of the repetitions are reported.
            var timings: [LocalWriteTimes] = []
            for repetition in 0..<repetitions {
                let laptop = try await server.replica(folder.appendingPathComponent("push-\(repetition).sqlite").path, site: "S01")
                let other = folder.appendingPathComponent("foreign-\(repetition).sqlite").path
                _ = try await server.replica(other, site: "S01")
                let untracked = try UntrackedTable(path: folder.appendingPathComponent("untracked-\(repetition).sqlite").path)
                let rows = AdverseEventGenerator(site: "S01").rows(records)
                timings.append(try laptop.replica.insertLocally(rows, foreign: DatabasePool(path: other), untracked: untracked))
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            let ratios = timings.map { $0.untracked / $0.tracked }
            report.add(
                "local_write",
                [
                    "rows": .integer(Int64(records)), "batch": .integer(1000), "repetitions": .integer(Int64(repetitions)),
                    "untracked_rows_per_s": .real(median(timings.map { Double(records) / $0.untracked })),
                    "tracked_rows_per_s": .real(median(timings.map { Double(records) / $0.tracked })),
                    "tracked_over_untracked": .real(median(ratios)),
                    "tracked_over_untracked_min": .real(ratios.min()!),
                    "tracked_over_untracked_max": .real(ratios.max()!),
                    "foreign_rows_per_s": .real(median(timings.map { Double(records) / $0.foreign })),
                    "foreign_over_untracked": .real(median(timings.map { $0.untracked / $0.foreign })),
                ])

            // push: 100,000 adverse events written through the library by a signed-in coordinator,
            // a signed transaction per 1,000 (docs/AUTHORSHIP.md): the push carries the signatures
            // and the server checks them.
            let signer = try await server.replica(folder.appendingPathComponent("push-signed.sqlite").path, site: "S01")
            try await signer.signIn()
            try signer.importSigned(AdverseEventGenerator(site: "S01").rows(records))
            let pushBytes = ByteCounter()
            let push = try await measure { try await signer.engine(counter: pushBytes).push() }
            let fields = Double(TrialSchema.adverseEvents.columns.count)
            report.add(
                "push",
                [
                    "records": .integer(Int64(push.value.records)), "seconds": .real(push.seconds),
                    "records_per_s": .real(Double(push.value.records) / push.seconds),
                    "field_changes_per_s": .real(Double(push.value.records) * fields / push.seconds),
                ])

            // largest_push: one push of as many new records as the protocol allows, another site's,
            // on the server now holding the records above: how long the largest push holds its
            // site's writer, at most (the time of the whole request).
            let largest = try await server.replica(folder.appendingPathComponent("largest.sqlite").path, site: "S02")
            try largest.replica.insertTracked(AdverseEventGenerator(site: "S02").rows(SyncProtocol.maximumPushRecords))
            var whole = SyncEngine.Configuration()
            whole.pushBatchSize = SyncProtocol.maximumPushRecords
            // The byte budget counts every number at its longest; these records take half that.
            whole.pushBatchBytes = .max
            let largestBytes = ByteCounter()
            let largestPush = try await measure { try await largest.engine(counter: largestBytes, configuration: whole).push() }
            // One push: one POST, answered with its outcome.
            guard largestBytes.exchanges == 1, largestBytes.requestBytes <= ServerConfiguration(schema: TrialSchema.current).maximumBodySize else {
                throw ValidationError(
                    "The largest push took \(largestBytes.exchanges) exchanges and \(largestBytes.requestBytes) bytes, not one push under the body limit.")
            }
            report.add(
                "largest_push",
                [
                    "records": .integer(Int64(largestPush.value.records)), "request_bytes": .integer(Int64(largestBytes.requestBytes)),
                    "milliseconds": .real(largestPush.seconds * 1000),
                ])

            // pull: a fresh replica in a child process, so its peak RSS is its own
            let child = try await PullChild.spawn(server: server, database: folder.appendingPathComponent("pull.sqlite").path)
            report.add(
                "pull",
                [
                    "records": .integer(Int64(child.records)), "seconds": .real(child.seconds),
                    "records_per_s": .real(Double(child.records) / child.seconds),
                    "batches": .integer(Int64(child.batches)),
                ])
            report.add(
                "bytes_per_change",
                [
                    "push_request": .real(Double(pushBytes.requestBytes) / Double(push.value.records)),
                    "push_response": .real(Double(pushBytes.responseBytes) / Double(push.value.records)),
                    "push_total": .real(Double(pushBytes.requestBytes + pushBytes.responseBytes) / Double(push.value.records)),
                    "pull_request": .real(Double(child.requestBytes) / Double(child.records)),
                    "pull_response": .real(Double(child.responseBytes) / Double(child.records)),
                ])
            report.add("pull_memory", ["records": .integer(Int64(child.records)), "peak_rss_mb": .real(child.peakRSSMegabytes)])
        }
    }

    /// delta: a separate server, grown from the small size to the large one.
    func delta(folder: URL, report: Report) async throws {
        try await BenchServer.run(databasePath: folder.appendingPathComponent("delta-server.sqlite").path, postgres: database) { server in
            let writer = try await server.replica(folder.appendingPathComponent("delta-a.sqlite").path, site: "S02")
            let reader = try await server.replica(folder.appendingPathComponent("delta-b.sqlite").path, site: "S02")
            let generator = AdverseEventGenerator(site: "S02")
            var ids: [String] = []
            var results: [Int: (median: Double, build: Double)] = [:]
            for size in [deltaSmall, deltaLarge] {
                let build = try await measure {
                    var remaining = size - ids.count
                    while remaining > 0 {
                        let rows = generator.rows(min(remaining, 100_000))
                        try writer.replica.insertTracked(rows)
                        ids += rows.map(\.id)
                        remaining -= rows.count
                        _ = try await writer.engine().sync()
                    }
                    _ = try await reader.engine().sync()
                }
                var times: [Double] = []
                for round in 0..<rounds {
                    // Ten distinct records spread over the table, each given a grade it does not have
                    let changed = (0..<10).map { ids[($0 * ids.count / 10 + round) % ids.count] }
                    let elapsed = try await measure {
                        for id in changed {
                            guard case .integer(let grade)? = try writer.replica.get("adverse_events", id: id)?["grade"] else { continue }
                            try writer.replica.put("adverse_events", id: id, ["grade": .integer(grade % 5 + 1)], reason: "Grade re-assessed at the visit")
                        }
                        let pushed = try await writer.engine().sync()
                        let pulled = try await reader.engine().sync()
                        guard pushed.pushed == 10, pulled.pulled == 10 else {
                            throw ValidationError("A delta round moved \(pushed.pushed) up and \(pulled.pulled) down instead of 10.")
                        }
                    }
                    times.append(elapsed.seconds * 1000)
                }
                results[size] = (times.sorted()[times.count / 2], build.seconds)
            }
            let small = results[deltaSmall]!
            let large = results[deltaLarge]!
            report.add(
                "delta",
                [
                    "small_records": .integer(Int64(deltaSmall)), "small_median_ms": .real(small.median),
                    "large_records": .integer(Int64(deltaLarge)), "large_median_ms": .real(large.median),
                    "large_over_small": .real(large.median / small.median),
                    "large_build_s": .real(large.build),
                ])
        }
    }

    /// concurrent: 50 replicas on 5 sites, split over the server's instances (two on PostgreSQL,
    /// one on SQLite), each pushing 1,000 records in batches of 100 while pulling the others'. The
    /// replicas run in a child process, so that the CPU time of the laptops, of the server (this
    /// process) and of the rest of the machine (PostgreSQL) is measured apart.
    func concurrent(folder: URL, report: Report) async throws {
        let replicaCount = 50
        let rounds = 10
        let batch = 100
        let instances = database == nil ? 1 : 2
        try await BenchServer.run(databasePath: folder.appendingPathComponent("concurrent-server.sqlite").path, postgres: database, instances: instances) {
            server in
            // This process's CPU time and the machine's, when the timed run starts and when it ends.
            let marks = Mutex<[(process: Double, machine: (busy: Double, cpus: Int)?)]>([])
            let laptops = try await ConcurrentChild.spawn(server: server, folder: folder.path, replicas: replicaCount, rounds: rounds, batch: batch) {
                let mark = (CPUTime.process(), CPUTime.machine())
                marks.withLock { $0.append(mark) }
            }
            let (start, end) = try marks.withLock { marks in
                guard marks.count == 2 else { throw ValidationError("The laptops' process of concurrent did not say when it started and ended.") }
                return (marks[0], marks[1])
            }
            let serverCPU = end.process - start.process
            let sorted = laptops.roundsMilliseconds
            var figures: [String: FieldValue] = [
                "instances": .integer(Int64(instances)), "replicas": .integer(Int64(replicaCount)), "sites": .integer(Int64(BenchServer.sites.count)),
                "records": .integer(Int64(replicaCount * rounds * batch)),
                "records_per_s": .real(Double(replicaCount * rounds * batch) / laptops.seconds),
                "round_p50_ms": .real(sorted.percentile(0.5)), "round_p99_ms": .real(sorted.percentile(0.99)),
                "records_lost": .integer(Int64(laptops.lost)),
                "laptops_cpu_s": .real(laptops.cpuSeconds), "server_cpu_s": .real(serverCPU),
            ]
            if let before = start.machine, let after = end.machine {
                figures["other_cpu_s"] = .real(max(0, after.busy - before.busy - laptops.cpuSeconds - serverCPU))
                figures["cpu_s_available"] = .real(laptops.seconds * Double(after.cpus))
            }
            report.add("concurrent", figures)
        }
    }
}

/// Times an async operation.
func measure<T>(_ body: () async throws -> T) async throws -> (value: T, seconds: Double) {
    let start = ContinuousClock.now
    let value = try await body()
    let elapsed = ContinuousClock.now - start
    return (value, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

extension Run {
    /// live_sync: two laptops of one site syncing live (`SyncEngine.run`, the defaults of
    /// `sitesync sync --watch`); laptop A edits a record's grade, and the time until laptop B holds
    /// the new grade is measured, edit after edit.
    func live(folder: URL, report: Report) async throws {
        try await BenchServer.run(databasePath: folder.appendingPathComponent("live-server.sqlite").path, postgres: database) { server in
            let a = try await server.replica(folder.appendingPathComponent("live-a.sqlite").path, site: "S03")
            let b = try await server.replica(folder.appendingPathComponent("live-b.sqlite").path, site: "S03")
            let rows = AdverseEventGenerator(site: "S03").rows(100)
            try a.replica.insertTracked(rows)
            _ = try await a.engine().sync()
            _ = try await b.engine().sync()
            let engines = [try a.engine(), try b.engine()]
            let running = engines.map { engine in Task { try await engine.run() } }
            defer { running.forEach { $0.cancel() } }
            // Both are waiting for the server's changes.
            try await Task.sleep(for: .seconds(1))
            var times: [Double] = []
            for edit in 0..<liveEdits {
                let id = rows[edit % rows.count].id
                guard case .integer(let grade)? = try a.replica.get("adverse_events", id: id)?["grade"] else { continue }
                let next = grade % 5 + 1
                let elapsed = try await measure {
                    try a.replica.put("adverse_events", id: id, ["grade": .integer(Int64(next))], reason: "Grade re-assessed at the visit")
                    let deadline = ContinuousClock.now + .seconds(30)
                    while try b.replica.get("adverse_events", id: id)?["grade"] != .integer(Int64(next)) {
                        guard ContinuousClock.now < deadline else { throw ValidationError("Edit \(edit) did not reach laptop B within 30 s.") }
                        try await Task.sleep(for: .milliseconds(2))
                    }
                }
                times.append(elapsed.seconds * 1000)
                // Both laptops settle before the next edit.
                try await Task.sleep(for: .milliseconds(100))
            }
            let sorted = times.sorted()
            let configuration = SyncEngine.LiveConfiguration()
            report.add(
                "live_sync",
                [
                    "edits": .integer(Int64(times.count)), "debounce_ms": .integer(configuration.debounce.wholeMilliseconds),
                    "p50_ms": .real(sorted.percentile(0.5)), "p99_ms": .real(sorted.percentile(0.99)), "max_ms": .real(sorted.last ?? 0),
                ])
        }
    }
}

extension [Double] {
    /// The value at fraction `p` of these values, sorted ascending: the nearest rank below.
    func percentile(_ p: Double) -> Double { self[Swift.min(count - 1, Int((Double(count) * p).rounded(.down)))] }
}

/// Durations measured by concurrent tasks.
final class Durations: Sendable {
    private let values = Mutex<[Double]>([])

    func add(milliseconds: Double) { values.withLock { $0.append(milliseconds) } }

    var sorted: [Double] { values.withLock { $0 }.sorted() }
}
