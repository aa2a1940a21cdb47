import Foundation
import Logging
import Synchronization

/// Log lines as JSON objects, one per line on standard error (`sitesync-server serve --log-format
/// json`), for log collectors: `time` (ISO 8601, UTC, milliseconds), `level`, `logger`, `message`,
/// and every metadata value as a string under its key. A request's id is `request_id`, the value
/// its error body and its `X-Request-ID` header carry.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    /// A handler for the logger `label`, writing to standard error.
    public init(label: String) {
        self.init(label: label) { line in Self.standardError.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) } }
    }

    /// A handler writing each line (ending in a line feed) to `write`.
    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    /// Whole lines: two threads logging at once never interleave within a line.
    private static let standardError = Mutex(())

    private static let time = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// Hummingbird's key for the request id, and the one it is written under.
    static let renamed = ["hb.request.id": "request_id"]

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadataProvider?.get() ?? [:] { fields[Self.renamed[key] ?? key] = "\(value)" }
        for (key, value) in metadata { fields[Self.renamed[key] ?? key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { fields[Self.renamed[key] ?? key] = "\(value)" }
        fields["time"] = Date().formatted(Self.time)
        fields["level"] = event.level.rawValue
        fields["logger"] = label
        fields["message"] = "\(event.message)"
        // Sorted keys: the same event always reads the same; JSONSerialization escapes every
        // control character, so a value from a request cannot break the line.
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]),
            let line = String(data: data, encoding: .utf8)
        else { return }
        write(line + "\n")
    }
}
