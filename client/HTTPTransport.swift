import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
import SiteSyncCore
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The sync protocol over HTTP(S): JSON bodies, a bearer token, version headers.
///
/// Requests go through AsyncHTTPClient, which verifies an HTTPS server against the system's
/// certificate authorities, or, for a replica that trusts a private authority
/// (``Replica/trustCertificateAuthority(_:)``), against that authority alone. No redirect is ever
/// followed: a redirect would carry the bearer credential to another origin, or from `https` to
/// plain `http`; it is refused as an invalid response naming where it pointed.
public struct HTTPTransport: SyncTransport {
    /// The server's base URL, for example `http://127.0.0.1:8080`.
    public var serverURL: URL
    /// The bearer token of each request: read again every time, so that a replica's transport
    /// presents its own credential as soon as enrolment stores it.
    private let credential: @Sendable () -> String
    /// The schema version announced in every request.
    public var schemaVersion: Int
    /// Seconds before a request is abandoned.
    public var timeout: TimeInterval
    /// Called after each exchange with the path and the request and response body sizes, for metrics.
    public var observer: (@Sendable (_ path: String, _ requestBytes: Int, _ responseBytes: Int) -> Void)?
    /// The client: the system's authorities, or the replica's private one.
    private let client: HTTPClient

    /// Creates a transport that trusts the system's certificate authorities.
    public init(serverURL: URL, token: String, schemaVersion: Int, timeout: TimeInterval = 60) {
        self.init(serverURL: serverURL, credential: { token }, schemaVersion: schemaVersion, timeout: timeout, client: Self.systemTrust)
    }

    private init(serverURL: URL, credential: @escaping @Sendable () -> String, schemaVersion: Int, timeout: TimeInterval, client: HTTPClient) {
        self.serverURL = serverURL
        self.credential = credential
        self.schemaVersion = schemaVersion
        self.timeout = timeout
        self.client = client
    }

    /// Creates the transport of a replica: its server, its current credential (the enrolment token
    /// until it is enrolled, then its own) and its schema version.
    public init(replica: Replica, timeout: TimeInterval = 60) throws {
        let identity = try replica.requireIdentity()
        self.init(
            serverURL: identity.serverURL, credential: { replica.identity?.token ?? identity.token },
            schemaVersion: replica.schema.version, timeout: timeout,
            client: try identity.certificateAuthority.map(Self.client(trusting:)) ?? Self.systemTrust
        )
    }

    /// One client per set of trusted authorities, for the process's life.
    private static let clients = Mutex<[String: HTTPClient]>([:])

    /// The client that trusts the system's certificate authorities.
    private static let systemTrust = makeClient(trustRoots: .default)

    private static func client(trusting pem: String) throws -> HTTPClient {
        let roots = try checkCertificateAuthority(pem)
        return clients.withLock { clients in
            if let client = clients[pem] { return client }
            let client = makeClient(trustRoots: .certificates(roots))
            clients[pem] = client
            return client
        }
    }

    private static func makeClient(trustRoots: NIOSSLTrustRoots) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = trustRoots
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow)
        // A refused certificate fails at once; the sync engine decides what to retry.
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// The certificates of `pem`, a certificate authority to trust.
    ///
    /// - Throws: ``ReplicaError/invalidArgument(_:)`` when it holds none.
    @discardableResult
    public static func checkCertificateAuthority(_ pem: String) throws -> [NIOSSLCertificate] {
        let certificates = (try? NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))) ?? []
        guard !certificates.isEmpty else {
            throw ReplicaError.invalidArgument("The certificate authority is not a PEM certificate (-----BEGIN CERTIFICATE-----).")
        }
        return certificates
    }

    /// Checks that the server answers its liveness check (`GET /healthz`) within the timeout.
    ///
    /// - Throws: ``SyncError``: unreachable, untrusted (its certificate), or refused, naming why.
    public func checkServer() async throws {
        _ = try await exchange("GET", "/healthz", body: nil)
    }

    public func enrol(_ request: EnrolRequest) async throws -> EnrolResponse {
        try await send("POST", SyncProtocol.replicasPath, body: try JSONEncoder().encode(request))
    }

    public func push(_ request: PushRequest) async throws -> PushResponse {
        let body: [UInt8]
        do {
            body = try request.wireJSON()
        } catch {
            throw SyncError.unsendable(error.message)
        }
        // Asynchronously: the server answers 202 once it has the body, and the outcome is awaited
        // with a bodiless GET. URLSession on Linux polls the socket for writability from the first
        // byte of a request body until the response ends, which would burn a core while the
        // server applies the push. A server that ignores the preference answers 200 at once.
        var attempt = 1
        while true {
            let (data, response) = try await exchange("POST", SyncProtocol.pushPath, headers: [SyncProtocol.preferHeader: SyncProtocol.respondAsync], body: Data(body))
            guard response.statusCode == 202 else { return try decode(data) }
            guard let location = response.value(forHTTPHeaderField: "Location"), location.hasPrefix(SyncProtocol.pushPath + "/") else {
                throw SyncError.invalidResponse("an accepted push without the Location of its outcome")
            }
            do {
                return try await send("GET", location)
            } catch let error as SyncError where error.status == 404 && attempt == 1 {
                // The outcome is gone (the server restarted, say): the push is sent again, and the
                // server applies whatever of it is not applied yet.
                attempt += 1
            }
        }
    }

    public func pull(_ request: PullRequest) async throws -> PullResponse {
        // GET, without a body: the request's parameters are in its query.
        let query = request.queryItems.map { URLQueryItem(name: $0.name, value: $0.value) }
        let (data, _) = try await exchange("GET", SyncProtocol.pullPath, query: query, body: nil)
        do {
            return try data.withUnsafeBytes { bytes in try PullResponse(wireJSON: bytes) }
        } catch {
            throw SyncError.invalidResponse(String(describing: error))
        }
    }

    /// The conflicts the token may see, filtered and paged.
    public func conflicts(_ filter: ConflictFilter) async throws -> ConflictPage {
        var query = [URLQueryItem(name: "status", value: filter.status ?? "all"), URLQueryItem(name: "limit", value: String(filter.limit))]
        if let site = filter.site { query.append(URLQueryItem(name: "site", value: site)) }
        if let table = filter.table { query.append(URLQueryItem(name: "table", value: table)) }
        if let after = filter.after { query.append(URLQueryItem(name: "after", value: after)) }
        return try await send("GET", SyncProtocol.conflictsPath, query: query)
    }

    /// Every change the server received for a record, with resolutions.
    public func history(table: String, id: String) async throws -> RecordHistory {
        try await send("GET", SyncProtocol.historyPath(table: table, id: id))
    }

    private func send<Response: Decodable>(_ method: String, _ path: String, query: [URLQueryItem] = [], body: Data? = nil) async throws -> Response {
        try decode(try await exchange(method, path, query: query, body: body).data)
    }

    private func decode<Response: Decodable>(_ data: Data) throws -> Response {
        do {
            return try JSONDecoder().decode(Response.self, from: data)
        } catch {
            throw SyncError.invalidResponse(String(describing: error))
        }
    }

    /// One request: returns the body and head of a 2xx response, or throws the server's refusal.
    private func exchange(
        _ method: String,
        _ path: String,
        query: [URLQueryItem] = [],
        headers: [String: String] = [:],
        body: Data?
    ) async throws -> (data: Data, response: HTTPURLResponse) {
        var components = URLComponents(url: serverURL.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        if !query.isEmpty { components.queryItems = query }
        var request = URLRequest(url: components.url!, timeoutInterval: timeout)
        request.httpMethod = method
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("Bearer \(credential())", forHTTPHeaderField: "Authorization")
        request.setValue(String(SyncProtocol.version), forHTTPHeaderField: SyncProtocol.protocolHeader)
        request.setValue(String(schemaVersion), forHTTPHeaderField: SyncProtocol.schemaHeader)
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await Self.exchange(request, through: client, timeout: timeout)
        } catch let error as NIOSSLError {
            throw SyncError.untrusted(serverURL.absoluteString, "\(error)")
        } catch let error as NIOSSLExtraError {
            throw SyncError.untrusted(serverURL.absoluteString, "\(error)")
        } catch let error as BoringSSLError {
            throw SyncError.untrusted(serverURL.absoluteString, "\(error)")
        } catch {
            throw SyncError.unreachable(serverURL.absoluteString, (error as NSError).localizedDescription)
        }
        guard let http = response as? HTTPURLResponse else { throw SyncError.invalidResponse("not an HTTP response") }
        observer?(path, request.httpBody?.count ?? 0, data.count)
        if (300..<400).contains(http.statusCode) {
            let target = http.value(forHTTPHeaderField: "Location").map { TextRules.brief(TextRules.escapingControls($0), maxBytes: 200) } ?? "nowhere"
            throw SyncError.invalidResponse(
                "the server answered \(http.statusCode), a redirect to \(target); SiteSync follows no redirect (it would carry the credential elsewhere): give the server's own URL"
            )
        }
        guard (200..<300).contains(http.statusCode) else {
            if let failure = try? JSONDecoder().decode(ErrorResponse.self, from: data) {
                throw SyncError.refused(status: http.statusCode, code: failure.error.code, message: failure.error.message, requestID: failure.error.requestID)
            }
            throw SyncError.refused(status: http.statusCode, code: "http_\(http.statusCode)", message: "HTTP status \(http.statusCode).")
        }
        return (data, http)
    }

    /// `request` sent through AsyncHTTPClient, answered as URLSession would answer it.
    private static func exchange(_ request: URLRequest, through client: HTTPClient, timeout: TimeInterval) async throws -> (Data, URLResponse) {
        let url = request.url!
        var outgoing = HTTPClientRequest(url: url.absoluteString)
        outgoing.method = .init(rawValue: request.httpMethod ?? "GET")
        for (name, value) in request.allHTTPHeaderFields ?? [:] { outgoing.headers.add(name: name, value: value) }
        if let body = request.httpBody { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(outgoing, timeout: .milliseconds(Int64(timeout * 1000)))
        let body = try await response.body.collect(upTo: 1 << 30)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name] = header.value }
        let http = HTTPURLResponse(url: url, statusCode: Int(response.status.code), httpVersion: "HTTP/1.1", headerFields: headers)!
        return (Data(body.readableBytesView), http)
    }
}
