import Foundation
import NIOSSL
import SiteSyncCore

/// Everything `buildApplication(_:)` needs, with defaults; filled from flags at the edge, built directly in tests.
public struct ServerConfiguration: Sendable {
    /// Address to bind.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free one (see ``onServerRunning``).
    public var port = 8080
    /// Path of the embedded SQLite database, created and migrated on start.
    public var databasePath = "sitesync-server.sqlite"
    /// The tables the server accepts.
    public var schema: Schema
    /// How long a connection may stay silent, between requests or in the middle of one, before
    /// it is closed: idle sockets and half-sent requests do not hold the server's file descriptors.
    public var readTimeout: Duration = .seconds(30)
    /// How long a connection has to deliver a whole request, head and body, from its opening or the
    /// previous answer's end (``RequestDeadlineHandler``), before ``minimumRequestRate`` extends it.
    public var requestDeadline: Duration = .seconds(60)
    /// Bytes of request body per second that extend ``requestDeadline`` by a second: a steady slow
    /// link is served, a trickle is cut off.
    public var minimumRequestRate = 1024
    /// How many asynchronous pushes of one replica may wait uncollected on an instance; the next
    /// is refused with `429 too_many_pending` and `Retry-After`, and nothing of it is written.
    public var maximumPendingPushes = 8
    /// How many requests of one credential an instance serves at once, from reading the body to
    /// answering; the next is refused with `429 too_many_requests` and `Retry-After`. With the body
    /// limit it bounds the memory one credential can hold, and one credential's flood leaves the
    /// server's threads to the others. A laptop's sync sends one request at a time.
    public var maximumRequestsPerCredential = 8
    /// About how many bytes of records one pull page holds at most (it always holds one record).
    public var maximumPullPageBytes = SyncProtocol.maximumPullPageBytes
    /// The longest a pull that asks to wait (`wait=`) is held when nothing is new; zero answers
    /// every pull at once. Keep it below the read timeout of any proxy in front.
    public var maximumPullWait: Duration = .seconds(30)
    /// Largest request body accepted, in bytes.
    public var maximumBodySize = 4 * 1024 * 1024
    /// How many laptops one enrolment token may enrol: a leaked site token enrols no fleet.
    public var maximumEnrolmentsPerToken = 50
    /// How far ahead of the server's clock a push may be stamped.
    public var maximumClockSkew: Duration = SyncProtocol.defaultMaximumClockSkew
    /// The server's wall clock, in milliseconds since 1970.
    public var wallClock: @Sendable () -> Int64 = HybridLogicalClock.systemMilliseconds
    /// TLS for every connection, or nil for plain HTTP (on loopback, or behind a proxy that
    /// terminates TLS); ``ServerConfiguration/tls(certificateFile:keyFile:)`` reads one from PEM files.
    public var tls: TLSConfiguration?
    /// Called with the bound port once the server listens.
    public var onServerRunning: @Sendable (Int) async -> Void = { _ in }
    /// A second port, bound to 127.0.0.1 only, serving `/metrics` without a credential to a
    /// collector on the same machine; 0 picks a free one (see ``onMetricsServerRunning``). Nil:
    /// `/metrics` is served on the main port only, to `metrics` and `admin` tokens.
    public var metricsPort: Int?
    /// Called with the metrics port once it listens.
    public var onMetricsServerRunning: @Sendable (Int) async -> Void = { _ in }
    /// The trial's alerts on the monitoring page, such as candidate dose-limiting toxicities; nil shows none.
    public var monitorAlerts: MonitorAlerts?
    /// After how long without a completed sync the monitoring page marks a laptop as stale.
    public var staleAfter: Duration = .seconds(3 * 86_400)
    /// Whether the monitoring page's session cookie is `Secure` (sent over HTTPS only) although this
    /// server speaks plain HTTP: behind a proxy that terminates TLS. Always so under ``tls``.
    public var secureCookies = false
    /// How long a monitoring page session lasts after its login.
    public var sessionLifetime: Duration = .seconds(12 * 3600)
    /// A person's sign-in on a laptop ends after this long without a command (docs/SECURITY.md).
    public var signInIdleTimeout: Duration = .seconds(900)
    /// Wrong passwords in a row that lock a person out on a laptop, and for how long.
    public var signInMaximumAttempts = 5
    public var signInLockout: Duration = .seconds(900)

    /// Creates a configuration serving `schema`.
    public init(schema: Schema) {
        self.schema = schema
    }

    var maximumClockSkewMilliseconds: Int64 { maximumClockSkew.wholeMilliseconds }
}

extension ServerConfiguration {
    /// TLS from a PEM certificate chain (the server's certificate first) and its PEM private key;
    /// TLS 1.2 at least.
    ///
    /// - Throws: ``TLSFileError`` naming the file that cannot be read.
    public static func tls(certificateFile: String, keyFile: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw TLSFileError(message: "Cannot read a PEM certificate chain from \(certificateFile): \(error).")
        }
        guard !chain.isEmpty else { throw TLSFileError(message: "\(certificateFile) holds no PEM certificate.") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw TLSFileError(message: "Cannot read a PEM private key from \(keyFile): \(error).")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// Whether `host` is a loopback address, which plain HTTP may serve: an address, never a name
    /// (``Loopback/isAddress(_:)``).
    public static func isLoopback(_ host: String) -> Bool {
        Loopback.isAddress(host)
    }
}

/// A certificate or key file that cannot be used.
public struct TLSFileError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
