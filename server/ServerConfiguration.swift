import Foundation
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
    /// Largest request body accepted, in bytes.
    public var maximumBodySize = 32 * 1024 * 1024
    /// How far ahead of the server's clock a push may be stamped.
    public var maximumClockSkew: Duration = SyncProtocol.defaultMaximumClockSkew
    /// The server's wall clock, in milliseconds since 1970.
    public var wallClock: @Sendable () -> Int64 = HybridLogicalClock.systemMilliseconds
    /// Called with the bound port once the server listens.
    public var onServerRunning: @Sendable (Int) async -> Void = { _ in }

    /// Creates a configuration serving `schema`.
    public init(schema: Schema) {
        self.schema = schema
    }

    var maximumClockSkewMilliseconds: Int64 { maximumClockSkew.wholeMilliseconds }
}
