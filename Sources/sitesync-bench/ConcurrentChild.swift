import ArgumentParser
import Foundation
import GRDB
import SiteSyncClient
import SiteSyncCore
import TrialRecords

/// The laptops of `concurrent`, in a process of their own, so that the CPU time they use is
/// measured apart from the server's (docs/BENCHMARKS.md).
///
/// It prints a line when the replicas are enrolled and the timed run starts (`started`), one when
/// the timed run ends (`finished`), before the final syncs that count what was lost, and its result
/// as one JSON line; the bench reads its own CPU time and the machine's at the first two.
struct ConcurrentChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "concurrent-child", abstract: "Internal: run the laptops of concurrent and report.", shouldDisplay: false
    )

    @Option(help: "A server instance's URL (repeatable); replica i syncs with instance i modulo their number.")
    var url: [String]
    @Option(help: "SITE=TOKEN, a site's credential (repeatable).")
    var token: [String]
    @Option var folder: String
    @Option var replicas = 50
    @Option var rounds = 10
    @Option var batch = 100

    struct Result: Codable {
        var seconds: Double
        var roundsMilliseconds: [Double]
        var lost: Int
        /// CPU time this process used during the timed run, user and system.
        var cpuSeconds: Double
    }

    func run() async throws {
        let sites = BenchServer.sites
        var tokens: [String: String] = [:]
        for pair in token {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--token takes SITE=TOKEN, not \(pair).") }
            tokens[parts[0]] = parts[1]
        }
        let urls = try url.map { text in
            guard let url = URL(string: text) else { throw ValidationError("--url: not a URL: \(text)") }
            return url
        }
        var laptops: [(site: String, replica: BenchReplica)] = []
        for index in 0..<replicas {
            let site = sites[index % sites.count]
            guard let token = tokens[site] else { throw ValidationError("No --token for \(site).") }
            let path = URL(fileURLWithPath: folder).appendingPathComponent("concurrent-\(index).sqlite").path
            laptops.append((site, try await BenchReplica.enrolled(path, site: site, serverURL: urls[index % urls.count], token: token)))
        }
        let durations = Durations()
        let all = laptops
        let (rounds, batch) = (rounds, batch)
        say("started")
        let cpuBefore = CPUTime.process()
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (site, laptop) in all {
                group.addTask {
                    let generator = AdverseEventGenerator(site: site)
                    for _ in 0..<rounds {
                        try laptop.replica.insertTracked(generator.rows(batch))
                        let round = try await measure { try await laptop.engine().sync() }
                        durations.add(milliseconds: round.seconds * 1000)
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        let cpuSeconds = CPUTime.process() - cpuBefore
        say("finished")
        // Once all have pushed, each syncs until it holds every record of its site: what it misses is lost.
        var lost = 0
        for (_, laptop) in laptops {
            _ = try await laptop.engine().sync()
            let held = try await laptop.replica.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM adverse_events") ?? 0 }
            lost += replicas / sites.count * rounds * batch - held
        }
        let result = Result(seconds: seconds, roundsMilliseconds: durations.sorted, lost: lost, cpuSeconds: cpuSeconds)
        say(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
    }

    /// Writes a line to the bench at once (standard output is a pipe, which `print` buffers).
    private func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// Runs the laptops in a child process against `server`; `mark` is called when the timed run
    /// starts and when it ends, and the result returned once the losses are counted.
    static func spawn(
        server: BenchServer, folder: String, replicas: Int, rounds: Int, batch: Int, mark: @Sendable () -> Void
    ) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        process.arguments =
            ["concurrent-child", "--folder", folder, "--replicas", "\(replicas)", "--rounds", "\(rounds)", "--batch", "\(batch)"]
            + server.urls.flatMap { ["--url", $0.absoluteString] }
            + server.siteTokens.sorted { $0.key < $1.key }.flatMap { ["--token", "\($0.key)=\($0.value)"] }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        // The child's two lines, read off the pipe as they come, on a thread that may block.
        let lines = AsyncStream<String> { continuation in
            Thread.detachNewThread {
                var pending = Data()
                while true {
                    let data = output.fileHandleForReading.availableData
                    if data.isEmpty { break }
                    pending.append(data)
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        continuation.yield(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                        pending.removeSubrange(pending.startIndex...newline)
                    }
                }
                continuation.finish()
            }
        }
        var result: Result?
        for await line in lines {
            if line == "started" || line == "finished" {
                mark()
            } else if let data = line.data(using: .utf8), let decoded = try? JSONDecoder().decode(Result.self, from: data) {
                result = decoded
            }
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0, let result else {
            throw ValidationError("The laptops' process of concurrent failed with status \(process.terminationStatus).")
        }
        return result
    }
}

extension BenchReplica {
    /// A new replica of `site` at `path`, enrolled with the server at `serverURL`.
    static func enrolled(_ path: String, site: String, serverURL: URL, token: String) async throws -> BenchReplica {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        let replica = try Replica.open(path: path, schema: TrialSchema.current)
        try replica.initialize(site: site, user: "Bench \(site)", serverURL: serverURL, token: token)
        let bench = BenchReplica(replica: replica)
        try await bench.engine().enrol()
        return bench
    }
}

/// CPU time, in seconds: this process's (user and system), and the whole machine's busy time.
enum CPUTime {
    /// User and system time of this process so far.
    static func process() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Time every CPU of the machine spent busy so far (`/proc/stat`: all but idle and I/O wait),
    /// and the number of CPUs; nil where there is no `/proc/stat`.
    static func machine() -> (busy: Double, cpus: Int)? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        let lines = stat.split(separator: "\n")
        guard let total = lines.first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let ticks = total.split(separator: " ").dropFirst().prefix(8).compactMap { Double($0) }
        guard ticks.count == 8 else { return nil }
        let busy = ticks.enumerated().filter { $0.offset != 3 && $0.offset != 4 }.reduce(0) { $0 + $1.element }
        let cpus = lines.filter { $0.hasPrefix("cpu") && !$0.hasPrefix("cpu ") }.count
        // The kernel counts in clock ticks.
        return (busy / Double(sysconf(Int32(_SC_CLK_TCK))), cpus)
    }
}
