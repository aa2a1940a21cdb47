/// What a laptop tells the server about itself at each sync, with its pull: how much it has not
/// pushed, which build it runs, its clock and its user. The server keeps the latest per replica, so
/// that operators and monitors see a laptop that stopped syncing, or syncs with a wrong clock,
/// before anyone asks (`sitesync-server replicas list`, the monitoring page).
///
/// The schema version is not repeated here: every request carries it in its `SiteSync-Schema` header.
public struct ReplicaReport: Codable, Sendable, Equatable {
    /// Changes recorded on the laptop and not yet acknowledged by the server.
    public var pending: Int
    /// The build of the software syncing: the app's name and version, or the sitesync command's.
    public var build: String
    /// The laptop's wall clock when it sent the request, in milliseconds since 1970 (UTC). The
    /// server compares it with its own to record the laptop's clock offset.
    public var clock: Int64
    /// The laptop's user: the name recorded on its changes.
    public var user: String

    /// The longest build text, in bytes of UTF-8.
    public static let maximumBuildBytes = 100

    /// Creates a report.
    public init(pending: Int, build: String, clock: Int64, user: String) {
        self.pending = pending
        self.build = build
        self.clock = clock
        self.user = user
    }

    /// What is wrong with the report, naming the field, as a sentence; nil when nothing.
    public var problem: String? {
        if pending < 0 { return "report.pending must be 0 or more; got \(pending)." }
        if clock < 0 { return "report.clock must be milliseconds since 1970, 0 or more; got \(clock)." }
        if build.isEmpty { return "report.build is required: the build of the software syncing." }
        if let problem = TextRules.problem(build, maxBytes: Self.maximumBuildBytes) { return "report.build \(problem)" }
        if build.unicodeScalars.contains(where: TextRules.isControl) {
            return "report.build must not contain control characters (line breaks, escapes, bidirectional controls)."
        }
        if let problem = UserName.problem(user) { return "report.user: \(problem)" }
        return nil
    }

    /// The report as query parameters of `GET /v1/pull`.
    var queryItems: [(name: String, value: String)] {
        [("report_pending", String(pending)), ("report_build", build), ("report_clock", String(clock)), ("report_user", user)]
    }

    /// Reads the report from the query of `GET /v1/pull`: nil when the query has none of its
    /// parameters; an error naming the first missing or malformed one otherwise.
    init?(query value: (String) -> String?) throws(QueryError) {
        let names = ["report_pending", "report_build", "report_clock", "report_user"]
        let values = names.map(value)
        guard values.contains(where: { $0 != nil }) else { return nil }
        if let missing = names.indices.first(where: { values[$0] == nil }) {
            throw QueryError(message: "\(names[missing]) is missing: a report names all of \(names.joined(separator: ", "))")
        }
        guard let pending = Int(values[0]!) else {
            throw QueryError(message: "report_pending must be a whole number; got \"\(TextRules.brief(values[0]!, maxBytes: 32))\"")
        }
        guard let clock = Int64(values[2]!) else {
            throw QueryError(message: "report_clock must be milliseconds since 1970; got \"\(TextRules.brief(values[2]!, maxBytes: 32))\"")
        }
        self.init(pending: pending, build: values[1]!, clock: clock, user: values[3]!)
    }
}

/// The version of this build of SiteSync, reported by laptops (``ReplicaReport/build``) and shown
/// by `sitesync --version`.
public enum SiteSyncBuild {
    /// The release this source tree is.
    public static let version = "0.14.0"
}
