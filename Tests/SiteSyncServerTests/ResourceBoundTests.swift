import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLite
import SiteSyncSQLiteStore
import SiteSyncServer
import SiteSyncTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What one client can hold of the server: bounded, whatever it sends or does not send.
@Suite("Resource bounds")
struct ResourceBoundTests {
    /// Connects to `port`, sends `bytes`, and returns how long the server took to close the
    /// connection (nil when it was still open after `limit` seconds).
    private func secondsUntilClosed(_ port: Int, sending bytes: String, limit: Int = 6) -> Double? {
        guard let fd = Loopback.connect(port) else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: limit, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let start = ContinuousClock.now
        if !bytes.isEmpty { _ = bytes.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, bytes.utf8.count, 0) } }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let read = recv(fd, &buffer, buffer.count, 0)
            if read == 0 { return (ContinuousClock.now - start) / .seconds(1) }
            if read < 0 { return nil } // the receive timed out: still open
        }
    }

    @Test("Prepared statements stay bounded however many distinct column sets are pushed")
    func statementCacheBound() async throws {
        let server = try await TestServer.make(.sqlite)
        let store = try #require(server.store as? SQLiteSyncStore)
        // Each order of the optional columns edited is a distinct update statement: 720 of them.
        let optional = ["sex", "birth_date", "consent_date", "weight_kg", "childbearing_potential", "survival_over_3_months"]
        let before: [FieldValue] = [.text("M"), .text("1960-01-01"), .text("2025-01-01"), .real(80), .integer(1), .integer(0)]
        let after: [String: FieldValue] = [
            "sex": .text("F"), "birth_date": .text("1970-01-01"), "consent_date": .text("2026-01-01"), "weight_kg": .real(70),
            "childbearing_potential": .integer(0), "survival_over_3_months": .integer(1),
        ]
        func permutations(_ items: [String]) -> [[String]] {
            items.count <= 1
                ? [items]
                : items.indices.flatMap { index in
                    var rest = items
                    let first = rest.remove(at: index)
                    return permutations(rest).map { [first] + $0 }
                }
        }
        let orders = permutations(optional)
        let milliseconds = HybridLogicalClock.systemMilliseconds()
        let peak = try await server.test { client in
            func push(_ groups: [ChangeGroup]) async throws {
                let request = PushRequest(replica: "r1", groups: groups)
                try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01, schema: "2"), body: try json(request)) {
                    #expect($0.status == .ok)
                }
            }
            let created = orders.indices.map { index in
                ChangeRow(
                    id: "s\(index)", seq: HLC(milliseconds: milliseconds, counter: Int64(index)),
                    values: [.text("S01"), .text("S01-\(index)"), .text("screening")] + before
                )
            }
            try await push([ChangeGroup(table: "subjects", user: "A", columns: ["site_id", "screening_no", "status"] + optional, rows: created)])
            var peak = 0
            for chunk in stride(from: 0, to: orders.count, by: 60) {
                try await push(
                    orders[chunk..<min(chunk + 60, orders.count)].enumerated().map { offset, order in
                        let index = chunk + offset
                        let row = ChangeRow(
                            id: "s\(index)", seq: HLC(milliseconds: milliseconds + 1, counter: Int64(index)), values: order.map { after[$0]! },
                            reasons: order.map { _ in "Corrected from the source document" }
                        )
                        return ChangeGroup(table: "subjects", user: "A", columns: order, rows: [row])
                    })
                peak = max(peak, try await store.writer.read { $0.preparedStatementCount })
            }
            return peak
        }
        let edited = try await StoreContents.count(store, "SELECT count(*) FROM subjects WHERE sex = 'F' AND weight_kg = 70")
        #expect(edited == orders.count)
        print("statement cache: \(orders.count) distinct column sets pushed; at most \(peak) statements prepared at once")
        #expect(peak <= GRDB.Database.preparedStatementLimit + 60 + 40)
    }

    @Test("A push of more records than the protocol allows is refused whole, whatever its size in bytes", arguments: StoreKind.all)
    func pushRecordBound(store: StoreKind) async throws {
        let server = try await TestServer.make(store)
        let before = try await server.dump()
        let push = subjectPush(ids: (0...SyncProtocol.maximumPushRecords).map { "s\($0)" })
        try await server.test { client in
            try await client.execute(uri: SyncProtocol.pushPath, method: .post, headers: syncHeaders(server.s01), body: try json(push)) { response in
                #expect(response.status == .unprocessableContent)
                let error = try decode(ErrorResponse.self, response.body)
                #expect(error.error.code == ErrorCode.validationFailed.rawValue)
                #expect(error.error.message.contains("at most 5000 records; this one carries 5001"))
            }
        }
        #expect(try await server.dump() == before)
    }

    @Test("A credential's requests past its bound are refused with 429 and Retry-After; other credentials are served")
    func requestsPerCredential() async throws {
        let server = try await TestServer.make(.sqlite) { $0.maximumRequestsPerCredential = 1 }
        try await buildApplication(server.configuration, store: server.store).test(.live) { client in
            let port = try #require(client.port)
            // A push whose body is half sent holds the credential's one request.
            let fd = try #require(Loopback.connect(port))
            let head =
                "POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(server.s01)\r\nSiteSync-Protocol: 1\r\n"
                + "SiteSync-Schema: 2\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"replica\":"
            _ = head.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, head.utf8.count, 0) }
            try await Task.sleep(for: .milliseconds(300))
            let pull = try json(PullRequest(cursor: [:], limit: 1))
            try await client.execute(uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01, schema: "2"), body: pull) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "1")
                let error = try decode(ErrorResponse.self, response.body)
                #expect(error.error.code == ErrorCode.tooManyRequests.rawValue)
            }
            // Another credential of the same site is served.
            try await client.execute(uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01b, schema: "2"), body: pull) {
                #expect($0.status == .ok)
            }
            // Once the held request ends (its connection closed mid-body), the credential is served again.
            close(fd)
            var status: HTTPResponse.Status = .tooManyRequests
            for _ in 0..<50 where status == .tooManyRequests {
                try await Task.sleep(for: .milliseconds(100))
                status = try await client.execute(uri: SyncProtocol.pullPath, method: .post, headers: syncHeaders(server.s01, schema: "2"), body: pull) {
                    $0.status
                }
            }
            #expect(status == .ok)
        }
    }

    @Test("Idle connections and half-sent requests are closed after the read timeout; served requests are not cut")
    func readTimeout() async throws {
        let server = try await TestServer.make(.sqlite) { $0.readTimeout = .seconds(1) }
        try await buildApplication(server.configuration, store: server.store).test(.live) { client in
            let port = try #require(client.port)
            async let idle = secondsUntilClosed(port, sending: "")
            async let halfHead = secondsUntilClosed(port, sending: "POST /v1/pull HTTP/1.1\r\nHost: 127.0.0.1\r\nSiteSync-Protocol: 1\r\n")
            async let halfBody = secondsUntilClosed(
                port, sending: "POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"replica\":"
            )
            let closed = await [idle, halfHead, halfBody]
            for (name, seconds) in zip(["idle", "half-sent head", "half-sent body"], closed) {
                let seconds = try #require(seconds, "\(name): the connection was still open after 6 s")
                #expect(seconds >= 0.8 && seconds < 3, "\(name): closed after \(seconds) s")
            }
            // A new connection is served (the test client's own, idle for a second, was closed too).
            let (_, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/healthz")!)
            #expect((response as? HTTPURLResponse)?.statusCode == 200)
        }
    }

    /// Sends `parts` one every `every`, then waits; seconds until the server closed the connection,
    /// or nil when it was still open `limit` seconds after the last part.
    private func secondsUntilClosed(_ port: Int, trickling parts: [String], every: Duration, limit: Int = 6) -> Double? {
        guard let fd = Loopback.connect(port) else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: limit, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let start = ContinuousClock.now
        for part in parts {
            let sent = part.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, part.utf8.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 { return (ContinuousClock.now - start) / .seconds(1) }
            var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // Closed while trickling: the read end sees the end of the stream.
            if poll(&pollfd, 1, Int32(every / .milliseconds(1))) > 0 {
                var byte: UInt8 = 0
                if recv(fd, &byte, 1, Int32(MSG_PEEK)) == 0 { return (ContinuousClock.now - start) / .seconds(1) }
            }
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let read = recv(fd, &buffer, buffer.count, 0)
            if read == 0 { return (ContinuousClock.now - start) / .seconds(1) }
            if read < 0 { return nil }
        }
    }

    /// Sends `parts` one every `every`; the start of the answer, or "" when the connection closed first.
    private static func answer(_ port: Int, trickling parts: [String], every: Duration) -> String {
        guard let fd = Loopback.connect(port) else { return "" }
        defer { close(fd) }
        // Long enough for a pull held 4 s on a loaded machine.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        for part in parts {
            guard part.utf8CString.withUnsafeBufferPointer({ send(fd, $0.baseAddress, part.utf8.count, Int32(MSG_NOSIGNAL)) }) >= 0 else { return "" }
            Thread.sleep(forTimeInterval: Double(every / .milliseconds(1)) / 1000)
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        let read = recv(fd, &buffer, buffer.count, 0)
        return read > 0 ? String(decoding: buffer[..<read], as: UTF8.self) : ""
    }

    @Test("A request trickled in, head or body, is cut off at its deadline; a steady slow body and a long answer are not")
    func requestDeadline() async throws {
        // Margins wide enough for a loaded machine: the deadline is 2 s, and each 1,000 bytes of
        // body extends it by about 4 s.
        let server = try await TestServer.make(.sqlite) {
            $0.readTimeout = .seconds(10)
            $0.requestDeadline = .seconds(2)
            $0.minimumRequestRate = 256
            $0.maximumPullWait = .seconds(4)
        }
        try await buildApplication(server.configuration, store: server.store).test(.live) { client in
            let port = try #require(client.port)
            // A byte every 300 ms: never silent for the read timeout, never done.
            let head = "POST /monitor/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
            async let trickledHead = secondsUntilClosed(port, trickling: head.map(String.init), every: .milliseconds(300))
            async let trickledBody = secondsUntilClosed(port, trickling: [head] + Array(repeating: "t", count: 40), every: .milliseconds(300))
            let closed = await [trickledHead, trickledBody]
            for (name, seconds) in zip(["trickled head", "trickled body"], closed) {
                let seconds = try #require(seconds, "\(name): the connection was still open")
                #expect(seconds >= 1.9 && seconds < 6, "\(name): closed after \(seconds) s")
            }
            // 3,000 bytes in three parts a second apart: past the bare deadline, within what the rate allows.
            let body = String(repeating: "x", count: 1000)
            let parts = ["POST /v1/pull HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3000\r\n\r\n" + body, body, body]
            let answer = await Blocking.run { Self.answer(port, trickling: parts, every: .seconds(1)) }
            #expect(answer.hasPrefix("HTTP/1.1 4"), "a steady body is read to its end and answered (a refusal of its content): \(answer)")
            // A pull that waits 4 s for changes is answered whole: the wait is the server's, not the client's.
            let started = ContinuousClock.now
            let pull = [
                "GET \(SyncProtocol.pullPath)?limit=10&replica=r1b&cursor=&wait=4 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(server.s01b)\r\n"
                    + "\(SyncProtocol.protocolHeader): \(SyncProtocol.version)\r\n\(SyncProtocol.schemaHeader): 1\r\n\r\n"
            ]
            let waited = await Blocking.run { Self.answer(port, trickling: pull, every: .zero) }
            #expect(waited.hasPrefix("HTTP/1.1 200"), "answered, not cut: \(waited)")
            #expect(ContinuousClock.now - started >= .seconds(3.5), "held for its wait")
            _ = client
        }
    }
}
