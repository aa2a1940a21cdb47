// An app's data layer on a SiteSync replica, as the getting-started guide builds it
// (client/SiteSyncClient.docc/GettingStarted.md): open a replica, run live sync, show a table as it
// changes, and write a record.
//
//     swift run LiveScreenExample --db screen.sqlite --server http://127.0.0.1:8080 \
//         --site S01 --user "A. Rivera" --token-file s01.token --screening-number S01-042

import ArgumentParser
import Foundation
import SiteSyncClient
import TrialRecords

@main
struct LiveScreen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "LiveScreenExample",
        abstract: "Shows a site's subjects as they change, syncing live, and enters one subject."
    )

    @Option(help: "The replica's file; created and initialised on first use.")
    var db = "screen.sqlite"

    @Option(help: "The sync server.")
    var server: String

    @Option(help: "The site this laptop records.")
    var site: String

    @Option(help: "Who enters data on this laptop.")
    var user: String

    @Option(help: "A file holding the site's enrolment token (from `sitesync-server token create`).")
    var tokenFile: String

    @Option(help: "The screening number of the subject to enter; none when omitted.")
    var screeningNumber: String?

    @Option(help: "Seconds to run before stopping; until Ctrl-C when omitted.")
    var seconds: Int?

    func run() async throws {
        // 1. Open the replica, and give it its identity the first time. Nothing is sent yet: the
        //    first sync enrols the laptop with the server.
        let replica = try Replica.open(path: db, schema: TrialSchema.current)
        if replica.identity == nil {
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let url = URL(string: server) else { throw ValidationError("--server must be a URL.") }
            try replica.initialize(site: site, user: user, serverURL: url, token: token)
        }

        // 2. Live sync: at once, shortly after every local commit, and as soon as another laptop's
        //    change reaches the server. It retries on its own while the server is unreachable.
        var live = SyncEngine.LiveConfiguration()
        live.events = { event in
            if case .failed(let message, let delay) = event {
                print("sync: \(message) Retrying in \(delay.components.seconds) s.")
            }
        }
        let engine = SyncEngine(replica: replica, transport: try HTTPTransport(replica: replica))
        let sync = Task { try await engine.run(live) }

        // 3. The screen: every version of the subjects table, the first at once, the next after each
        //    commit that changes it (this process's writes and the pulls of live sync).
        let subjects = try replica.observe("subjects")
        let screen = Task {
            for try await records in subjects {
                let numbers = records.compactMap { $0["screening_no"]?.displayText }.sorted()
                print("subjects (\(records.count)): \(numbers.joined(separator: ", "))")
            }
        }

        // 4. Enter a subject. The write is validated against the trial's rules and tracked in the
        //    same transaction; live sync pushes it a moment later.
        if let screeningNumber {
            do {
                let id = try replica.put("subjects", ["screening_no": .text(screeningNumber), "sex": .text("F"), "birth_date": .text("1984-03-12")])
                print("entered subject \(screeningNumber) as \(id)")
            } catch let error as ReplicaError {
                print("not entered: \(error)")
            }
        }

        // 5. Run until the time is up or Ctrl-C, then stop live sync and the screen.
        if let seconds {
            try await Task.sleep(for: .seconds(seconds))
        } else {
            await waitForInterrupt()
        }
        sync.cancel()
        screen.cancel()
        try await sync.value
        print("stopped; \(try replica.pendingCount()) change(s) waiting to be pushed")
    }
}

/// Returns at SIGINT.
private func waitForInterrupt() async {
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT)
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        source.setEventHandler {
            source.cancel()
            continuation.resume()
        }
        source.resume()
    }
}
