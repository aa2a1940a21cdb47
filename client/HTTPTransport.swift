import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import SiteSyncCore
import Synchronization

/// The sync protocol over HTTP(S): JSON bodies, a bearer token, version headers.
///
/// Requests go through AsyncHTTPClient, which verifies an HTTPS server against the system's
/// certificate authorities, or, for a replica that trusts a private authority
/// (``Replica/trustCertificateAuthority(_:)``), against that authority alone. No redirect is ever
/// followed: a redirect would carry the bearer credential to another origin, or from `https` to
/// plain `http`; it is refused as an invalid response naming where it pointed.
public struct HTTPTransport: SyncTransport, PeopleTransport {
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
        _ = try await exchange(.GET, "/healthz")
    }

    public func enrol(_ request: EnrolRequest) async throws -> EnrolResponse {
        try decode(try await exchange(.POST, SyncProtocol.replicasPath, body: Array(try JSONEncoder().encode(request))).body)
    }

    public func signIn(_ request: SignInRequest) async throws -> SignInResponse {
        try decode(try await exchange(.POST, SyncProtocol.signInPath, body: Array(try JSONEncoder().encode(request))).body)
    }

    public func peopleStatus(_ request: PeopleStatusRequest) async throws -> PeopleStatusResponse {
        try decode(try await exchange(.POST, SyncProtocol.peopleStatusPath, body: Array(try JSONEncoder().encode(request))).body)
    }

    /// Sends a batch and returns its outcome: one POST, answered once the server has applied it.
    public func push(_ request: PushRequest) async throws -> PushResponse {
        let body: [UInt8]
        do {
            body = try request.wireJSON()
        } catch {
            throw SyncError.unsendable(error.message)
        }
        return try decode(try await exchange(.POST, SyncProtocol.pushPath, body: body).body)
    }

    public func pull(_ request: PullRequest) async throws -> PullResponse {
        // GET, without a body: the request's parameters are in its query.
        let body = try await exchange(.GET, SyncProtocol.pullPath, query: request.queryItems.map { ($0.name, $0.value) }).body
        do {
            return try body.withUnsafeReadableBytes { bytes in try PullResponse(wireJSON: bytes) }
        } catch {
            throw SyncError.invalidResponse(String(describing: error))
        }
    }

    /// The conflicts the token may see, filtered and paged.
    public func conflicts(_ filter: ConflictFilter) async throws -> ConflictPage {
        var query = [("status", filter.status?.rawValue ?? "all"), ("limit", String(filter.limit))]
        if let site = filter.site { query.append(("site", site)) }
        if let table = filter.table { query.append(("table", table)) }
        if let after = filter.after { query.append(("after", after)) }
        return try decode(try await exchange(.GET, SyncProtocol.conflictsPath, query: query).body)
    }

    /// Every change the server received for a record, with resolutions.
    public func history(table: String, id: String) async throws -> RecordHistory {
        try decode(try await exchange(.GET, SyncProtocol.historyPath(table: table, id: id)).body)
    }

    private func decode<Response: Decodable>(_ body: ByteBuffer) throws -> Response {
        do {
            return try JSONDecoder().decode(Response.self, from: body)
        } catch {
            throw SyncError.invalidResponse(String(describing: error))
        }
    }

    /// One request: returns the body of a 2xx response, or throws the server's refusal.
    private func exchange(
        _ method: HTTPMethod, _ path: String, query: [(name: String, value: String)] = [], body: [UInt8]? = nil
    ) async throws -> (status: Int, body: ByteBuffer) {
        var components = URLComponents(url: serverURL.appendingPathComponent(path), resolvingAgainstBaseURL: false)!
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.name, value: $0.value) } }
        var request = HTTPClientRequest(url: components.url!.absoluteString)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(credential())")
        request.headers.add(name: SyncProtocol.protocolHeader, value: String(SyncProtocol.version))
        request.headers.add(name: SyncProtocol.schemaHeader, value: String(schemaVersion))
        if let body { request.body = .bytes(body) }
        let status: Int
        let headers: HTTPHeaders
        let received: ByteBuffer
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            status = Int(response.status.code)
            headers = response.headers
            received = try await response.body.collect(upTo: Self.maximumResponseBytes)
        } catch let error as NIOSSLError {
            throw SyncError.untrusted(serverURL.absoluteString, "\(error)")
        } catch let error as NIOSSLExtraError {
            throw SyncError.untrusted(serverURL.absoluteString, "\(error)")
        } catch let error as BoringSSLError {
            throw SyncError.untrusted(serverURL.absoluteString, "\(error)")
        } catch {
            throw SyncError.unreachable(serverURL.absoluteString, (error as NSError).localizedDescription)
        }
        observer?(path, body?.count ?? 0, received.readableBytes)
        if (300..<400).contains(status) {
            let target = headers.first(name: "Location").map { TextRules.brief(TextRules.escapingControls($0), maxBytes: 200) } ?? "nowhere"
            throw SyncError.invalidResponse(
                "the server answered \(status), a redirect to \(target); SiteSync follows no redirect (it would carry the credential elsewhere): give the server's own URL"
            )
        }
        guard (200..<300).contains(status) else {
            if let failure = try? JSONDecoder().decode(ErrorResponse.self, from: received) {
                throw SyncError.refused(status: status, code: failure.error.code, message: failure.error.message, requestID: failure.error.requestID)
            }
            throw SyncError.refused(status: status, code: "http_\(status)", message: "HTTP status \(status).")
        }
        return (status, received)
    }

    /// The largest response read: a pull page is at most a few MiB.
    private static let maximumResponseBytes = 1 << 30
}
