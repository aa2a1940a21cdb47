import ArgumentParser
import Foundation
import SiteSyncClient
import SiteSyncCore
import TrialRecords

/// A first sync into a fresh replica, in its own process so its peak RSS is measured alone.
struct PullChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull-child", abstract: "Internal: pull into a fresh replica and report.", shouldDisplay: false)

    @Option var server: String
    @Option var token: String
    @Option var database: String

    struct Result: Codable {
        var records: Int
        var seconds: Double
        var batches: Int
        var requestBytes: Int
        var responseBytes: Int
        var peakRSSMegabytes: Double
    }

    func run() async throws {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
        let replica = try Replica.open(path: database, schema: TrialSchema.current)
        try replica.initialize(site: "S01", user: "Bench pull", serverURL: URL(string: server)!, token: token)
        try await SyncEngine(replica: replica, transport: HTTPTransport(replica: replica)).enrol()
        let counter = ByteCounter()
        var transport = try HTTPTransport(replica: replica)
        transport.observer = { _, request, response in counter.add(request: request, response: response) }
        let pulled = try await measure { try await SyncEngine(replica: replica, transport: transport).pull() }
        let result = Result(
            records: pulled.value, seconds: pulled.seconds, batches: counter.exchanges,
            requestBytes: counter.requestBytes, responseBytes: counter.responseBytes, peakRSSMegabytes: Self.peakRSSMegabytes()
        )
        print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
    }

    /// Peak resident set size of this process (VmHWM), in megabytes.
    static func peakRSSMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return -1 }
        return kilobytes / 1024
    }

    static func spawn(server: BenchServer, database: String) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        process.arguments = ["pull-child", "--server", server.url.absoluteString, "--token", server.siteTokens["S01"]!, "--database", database]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("The pull child failed with status \(process.terminationStatus).") }
        return try JSONDecoder().decode(Result.self, from: data)
    }
}
