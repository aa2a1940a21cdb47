import Foundation
import HummingbirdTesting
import SiteSyncCore
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
            if read < 0 { return nil }  // the receive timed out: still open
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
}
