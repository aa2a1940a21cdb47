import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ServiceLifecycle
import SiteSyncCore
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

@testable import SiteSyncServer

/// `GET /v1/pull?…&wait=N`: a pull that finds nothing new waits for a push to commit records it reads.
@Suite("Pulls that wait for changes")
struct LongPollTests {
    /// The bodiless pull of `token`'s replica `replica` from the start, asking to wait `wait` seconds.
    private func waitingPull(_ client: some TestClientProtocol, _ token: String, replica: String, cursor: String = "", wait: String) async throws -> (
        status: HTTPResponse.Status, page: PullResponse?, seconds: Double
    ) {
        let started = ContinuousClock.now
        return try await client.execute(
            uri: "\(SyncProtocol.pullPath)?limit=100&replica=\(replica)&cursor=\(cursor)&wait=\(wait)", method: .get, headers: syncHeaders(token)
        ) { response in
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            return (response.status, response.status == .ok ? try decode(PullResponse.self, response.body) : nil, seconds)
        }
    }

    @Test(
        "A waiting pull is answered as soon as another replica's push commits records of its site; a push of another site or of its own replica does not release it",
        arguments: StoreKind.all
    )
    func releasedByPush(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            // r1b has pulled everything there is: nothing yet.
            let pushedS01 = Mutex(false)
            async let waited = waitingPull(client, server.s01b, replica: "r1b", wait: "25")
            try await Task.sleep(for: .milliseconds(300))
            // Neither another site's records nor r1b's own release it.
            for (token, push) in [(server.s02, subjectPush(replica: "r2", site: "S02", ids: ["x"])), (server.s01b, subjectPush(replica: "r1b", ids: ["own"]))] {
                try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(token), body: try json(push)) {
                    #expect($0.status == .ok)
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            pushedS01.withLock { $0 = true }
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(replica: "r1", ids: ["a", "b"]))
            ) { #expect($0.status == .ok) }
            let (status, page, seconds) = try await waited
            #expect(status == .ok)
            #expect(pushedS01.withLock { $0 }, "released before r1's push of S01 records")
            // Answered with r1's records (its own are skipped): a pull whose wait runs out unwoken
            // answers its first, empty read, so the records show the push woke it, before the 25 s
            // were up. (On two cores busy with the whole suite the push itself can take seconds.)
            #expect(page?.groups.flatMap(\.rows).map(\.id).sorted() == ["a", "b"])
            #expect(seconds < 25)
        }
    }

    @Test("A pull waiting when its credential is revoked reads nothing more: it is answered 401 when it wakes", arguments: StoreKind.all)
    func revokedWhileWaiting(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            async let waited = waitingPull(client, server.s01b, replica: "r1b", wait: "25")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await server.store.revokeTokens(hashes: [Tokens.hash(server.s01b)], at: Date().formatted(.iso8601)) == 1)
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(replica: "r1", ids: ["after-revoke"]))
            ) { #expect($0.status == .ok) }
            let (status, page, _) = try await waited
            #expect(status == .unauthorized, "\(status)")
            #expect(page == nil, "no record committed after the revocation reaches the revoked laptop")
        }
    }

    @Test(
        "A pull that finds nothing waits for the time asked, at most the server's maximum, and answers an empty page with its cursor", arguments: StoreKind.all)
    func waitsThenAnswersEmpty(store: StoreKind) async throws {
        let server = try await TestServer.make(store) { $0.maximumPullWait = .seconds(1) }
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(replica: "r1", ids: ["a"]))
            ) { #expect($0.status == .ok) }
            // Something new: answered at once, without waiting.
            let (_, first, _) = try await waitingPull(client, server.s01b, replica: "r1b", wait: "30")
            let cursor = try #require(first?.cursor["S01"])
            #expect(first?.groups.flatMap(\.rows).map(\.id) == ["a"])
            // Nothing new: held for the server's maximum (1 s here), not the 30 s asked.
            let (status, page, seconds) = try await waitingPull(client, server.s01b, replica: "r1b", cursor: "S01:\(cursor)", wait: "30")
            #expect(status == .ok)
            #expect(page?.groups.isEmpty == true && page?.more == false && page?.cursor["S01"] == cursor)
            #expect(seconds >= 0.9 && seconds < 20)
            // Without wait, an empty page at once.
            let (_, immediate, _) = try await waitingPull(client, server.s01b, replica: "r1b", cursor: "S01:\(cursor)", wait: "0")
            #expect(immediate?.groups.isEmpty == true)
        }
    }

    @Test("A wait that is not a whole number of seconds from 0 to 3600 is refused, naming wait", arguments: ["-1", "3601", "soon", "1.5"])
    func badWait(wait: String) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            try await client.execute(uri: "\(SyncProtocol.pullPath)?limit=10&wait=\(wait)", method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .badRequest || response.status == .unprocessableContent)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.message.contains("wait must be a whole number of seconds from 0 to 3600"))
            }
            // The body form is held to the same rule.
            try await client.execute(
                uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01), body: ByteBuffer(string: #"{"cursor":{},"limit":10,"wait":7200}"#)
            ) { response in
                #expect(response.status == .unprocessableContent || response.status == .badRequest)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.message.contains("wait must be a whole number of seconds"))
            }
        }
    }

    @Test("A pull waiting when the server shuts down gracefully is answered at once, and the server exits without waiting it out")
    func shutdownReleasesWaiters() async throws {
        let served = try await ServedApplication.start { $0.maximumPullWait = .seconds(600) }
        defer { served.remove() }
        let started = ContinuousClock.now
        async let answered = served.status("GET", "\(SyncProtocol.pullPath)?limit=10&replica=r1&wait=600", syncHeaders(served.credential), timeout: 300)
        try await Task.sleep(for: .seconds(1))
        await served.group.triggerGracefulShutdown()
        #expect(await answered == 200)
        try await served.running.value
        #expect(ContinuousClock.now - started < .seconds(120), "the shutdown waited for the pull's 600 s")
    }
}
