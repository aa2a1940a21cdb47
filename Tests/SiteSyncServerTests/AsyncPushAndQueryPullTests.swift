import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceLifecycle
import SiteSyncCore
import SiteSyncTestSupport
import Synchronization
import Testing
import TrialRecords

@testable import SiteSyncServer

/// Headers of an asynchronous push (`Prefer: respond-async`).
private func asyncHeaders(_ token: String) -> HTTPFields {
    var headers = syncHeaders(token)
    headers[HTTPField.Name(SyncProtocol.preferHeader)!] = SyncProtocol.respondAsync
    return headers
}

@Suite("Asynchronous push and the bodiless pull")
struct AsyncPushAndQueryPullTests {
    @Test(
        "An asynchronous push is accepted at once; its outcome is answered to the pushing replica only, from the store once applied", arguments: StoreKind.all)
    func asyncPush(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            let location = try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: try json(subjectPush(ids: ["a", "b"]))
            ) { response in
                #expect(response.status == .accepted)
                #expect(response.headers[HTTPField.Name(SyncProtocol.preferenceAppliedHeader)!] == SyncProtocol.respondAsync)
                return try #require(response.headers[.location])
            }
            #expect(location.hasPrefix("/v1/push/"))
            // Another site's token cannot collect it
            try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s02)) { #expect($0.status == .notFound) }
            let outcome = try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .ok)
                return try decode(PushResponse.self, response.body)
            }
            #expect(outcome.applied == 2)
            #expect(outcome.conflicts == 0)
            // Asked again, it is read from the store: the replica's state says what the push applied.
            let again = try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .ok)
                return try decode(PushResponse.self, response.body)
            }
            #expect(again.acked == outcome.acked && again.applied == 2 && again.conflicts == 0)
            // An id no server made, or a push not applied, says to push again.
            for unknown in ["x", location.replacingOccurrences(of: "/v1/push/", with: "/v1/push/9")] {
                try await client.execute(uri: unknown.hasPrefix("/") ? unknown : "/v1/push/\(unknown)", method: .get, headers: syncHeaders(server.s01)) {
                    response in
                    #expect(response.status == .notFound)
                    let error = try decode(ErrorResponse.self, response.body).error
                    #expect(error.message.contains("Push again"))
                }
            }
        }
        #expect(try await server.count("subjects") == 2)
    }

    @Test("A replica's asynchronous pushes still being applied are bounded: the next is refused with 429 and Retry-After, and starts nothing")
    func pendingBound() async throws {
        let pending = PendingPushes(maximumPerReplica: 2)
        let released = Mutex(false)
        let started = Mutex(0)
        let work: @Sendable () async throws -> PushResponse = {
            started.withLock { $0 += 1 }
            while !released.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            return PushResponse(acked: .zero, applied: 0, conflicts: 0, hlc: .zero)
        }
        let ids = (1...3).map { PushID(replica: "r1", lastSeq: HLC(rawValue: Int64($0)), fingerprint: "0123456789abcdef") }
        try await withThrowingTaskGroup(of: Void.self) { service in
            service.addTask { try await pending.run() }
            try await pending.start(ids[0], work)
            try await pending.start(ids[1], work)
            do {
                try await pending.start(ids[2], work)
                Issue.record("a third push of r1 was started while two were applying")
            } catch let error as ServerError {
                #expect(error.status == .tooManyRequests && error.code == .tooManyPending && error.retryAfter == 5)
            }
            // Another replica is not held back.
            try await pending.start(PushID(replica: "r2", lastSeq: HLC(rawValue: 1), fingerprint: "0123456789abcdef"), work)
            // Once they are applied, the refused push starts.
            released.withLock { $0 = true }
            for id in ids.prefix(2) { _ = try await pending.take(id)?.value }
            try await pending.start(ids[2], work)
            _ = try await pending.take(ids[2])?.value
            service.cancelAll()
        }
        #expect(started.withLock { $0 } == 4, "the refused push started nothing")
    }

    @Test("Any instance answers an applied asynchronous push's outcome, from the store", arguments: StoreKind.all)
    func outcomeOnAnotherInstance(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let push = subjectPush(ids: ["a", "b", "c"])
        // Instance A accepts the push and applies it.
        let location = try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: try json(push)) { response in
                #expect(response.status == .accepted)
                return try #require(response.headers[.location])
            }
        }
        let last = try #require(push.groups[0].rows.last?.seq)
        for _ in 0..<500 where try await server.store.replicaState("r1")?.lastSeq != last {
            try await Task.sleep(for: .milliseconds(10))
        }
        // Instance B, on the same store, never saw it: it answers from the replica's state.
        try await server.test { client in
            let outcome = try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .ok)
                return try decode(PushResponse.self, response.body)
            }
            #expect(outcome.acked == last && outcome.applied == 3 && outcome.conflicts == 0)
            // Another replica's credential finds nothing under that id.
            try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01b)) { #expect($0.status == .notFound) }
        }
    }

    @Test("An instance shut down gracefully finishes the asynchronous pushes it accepted before it exits")
    func shutdownFinishesPushes() async throws {
        let served = try await ServedApplication.start()
        defer { served.remove() }
        let (store, credential) = (served.store, served.credential)
        func send(_ method: String, _ path: String, _ headers: HTTPFields, body: [UInt8] = []) async -> Int? {
            await served.status(method, path, headers, body: body)
        }
        // A credential's first request records its use, which needs the writer: made first.
        #expect(await send("GET", "\(SyncProtocol.pushPath)/1-0000000000000000-r1", syncHeaders(credential)) == 404)
        // The store's writer is held until after the shutdown has begun, so the push accepted
        // before it cannot have been applied by then, however fast or loaded the machine is.
        let held = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let holder = Task {
            try await store.writer.write { _ in
                held.signal()
                release.wait()
            }
        }
        await Blocking.run { held.wait() }
        let push = subjectPush(ids: (0..<50).map { "s\($0)" })
        #expect(await send("POST", SyncProtocol.pushPath, asyncHeaders(credential), body: Array(try json(push).readableBytesView)) == 202)
        await served.group.triggerGracefulShutdown()
        // Released only once the shutdown has begun: an instance that exited without waiting for
        // the push would leave it unapplied below.
        Task.detached {
            try await Task.sleep(for: .milliseconds(500))
            release.signal()
        }
        try await served.running.value
        // The application has stopped: everything it accepted is applied.
        #expect(try await store.replicaState("r1")?.lastSeq == push.groups[0].rows.last?.seq)
        #expect(try await store.writer.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM subjects") } == 50)
        try await holder.value
    }

    @Test("A refusal found while applying an asynchronous push is its outcome, and nothing is written", arguments: StoreKind.all)
    func asyncRefusal(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let before = try await server.dump()
        // A new subject without its required screening number is refused by the store, not up front
        let push = PushRequest(
            replica: "r1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "A", columns: ["site_id"],
                    rows: [
                        ChangeRow(id: "a", seq: HLC(milliseconds: HybridLogicalClock.systemMilliseconds()), values: [.text("S01")])
                    ])
            ])
        try await server.test { client in
            let location = try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: try json(push)) {
                response in
                #expect(response.status == .accepted)
                return try #require(response.headers[.location])
            }
            try await client.execute(uri: location, method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == .unprocessableContent)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.code == ErrorCode.validationFailed.rawValue)
                #expect(error.message.contains("subjects.screening_no: is required for a new record"))
            }
        }
        #expect(try await server.dump() == before)
    }

    @Test("Bad text is refused before an asynchronous push is accepted", arguments: StoreKind.all)
    func asyncMalformed(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: asyncHeaders(server.s01), body: ByteBuffer(string: #"{"replica":"r1","groups":[}"#)
            ) { response in
                #expect(response.status == .badRequest)
                let error = try decode(ErrorResponse.self, response.body).error
                #expect(error.code == ErrorCode.invalidJSON.rawValue)
            }
        }
    }

    @Test("GET /v1/pull reads the request from the query and answers as POST does", arguments: StoreKind.all)
    func queryPull(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        try await server.test { client in
            try await client.execute(
                uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(subjectPush(ids: ["a", "b", "c"]))
            ) {
                #expect($0.status == .ok)
            }
            let request = PullRequest(cursor: ["S01": 1], limit: 1, replica: "r1b", acked: .zero)
            let query = request.queryItems.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
            #expect(query == "limit=1&cursor=S01:1&replica=r1b&acked=0")
            let byQuery = try await client.execute(uri: "\(SyncProtocol.pullPath)?\(query)", method: .get, headers: syncHeaders(server.s01b)) { response in
                #expect(response.status == .ok)
                return try decode(PullResponse.self, response.body)
            }
            let byBody = try await client.execute(uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01b), body: try json(request)) {
                try decode(PullResponse.self, $0.body)
            }
            #expect(byQuery.groups.flatMap { $0.rows.map(\.id) } == ["b"])
            #expect(byQuery.cursor == ["S01": 2])
            #expect(byQuery.more)
            #expect(byQuery.groups == byBody.groups)
            #expect(byQuery.cursor == byBody.cursor)
        }
    }

    @Test(
        "A bad pull query is refused with the parameter and the rule",
        arguments: [
            ("limit=ten", HTTPResponse.Status.unprocessableContent, "limit must be a whole number"),
            ("cursor=S01:1", .unprocessableContent, "limit is required"),
            ("limit=5&cursor=S01", .unprocessableContent, "cursor must list SITE:SEQUENCE pairs"),
            ("limit=5&cursor=S01:1,S01:2", .unprocessableContent, "each site once"),
            ("limit=5&cursor=S01:-3", .unprocessableContent, "cursor must list"),
            ("limit=0", .unprocessableContent, "at least 1"),
            ("limit=5&cursor=S02:0", .forbidden, "reads site S01 only"),
        ])
    func badQuery(query: String, status: HTTPResponse.Status, message: String) async throws {
        let server = try await TestServer.make()
        try await server.test { client in
            try await client.execute(uri: "\(SyncProtocol.pullPath)?\(query)", method: .get, headers: syncHeaders(server.s01)) { response in
                #expect(response.status == status)
                let text = try decode(ErrorResponse.self, response.body).error.message
                #expect(text.contains(message), "\(text)")
            }
        }
    }
}
