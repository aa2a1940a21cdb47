#if canImport(Glibc)
    import Glibc
#endif

/// Raw TCP on 127.0.0.1, for tests and the bench, which speak to a server below HTTP.
public enum Loopback {
    /// A socket connected to `port` of 127.0.0.1, or nil when nothing accepts there; the caller closes it.
    public static func connect(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            return nil
        }
        return fd
    }

    /// A port of 127.0.0.1 that nothing listens on now, as the system picks one.
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Sends one HTTP/1.1 request (`head` is the request line and headers, without the blank line)
    /// on a new connection, and returns the response's status, or nil when the connection broke
    /// or stayed silent for `timeout` seconds. Blocking: call it from a thread, not a task.
    public static func status(_ port: Int, head: String, body: [UInt8] = [], timeout: Int = 10) -> Int? {
        guard let fd = connect(port) else { return nil }
        defer { close(fd) }
        var wait = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        func sendAll(_ bytes: UnsafeRawBufferPointer) -> Bool {
            var offset = 0
            while offset < bytes.count {
                // MSG_NOSIGNAL: a server that closed early answers EPIPE, not SIGPIPE.
                let sent = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }
        let headBytes = Array("\(head)\r\nConnection: close\r\n\r\n".utf8)
        // A server may answer (413, say) and close before the body is all sent: read the answer anyway.
        _ = headBytes.withUnsafeBytes(sendAll) && (body.isEmpty || body.withUnsafeBytes(sendAll))
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.count < 12 || !response.contains(UInt8(ascii: "\n")) {
            let read = recv(fd, &buffer, buffer.count, 0)
            if read <= 0 { break }
            response += buffer[..<read]
        }
        // "HTTP/1.1 200 OK"
        guard response.count >= 12 else { return nil }
        return Int(String(decoding: response[9..<12], as: UTF8.self))
    }
}
