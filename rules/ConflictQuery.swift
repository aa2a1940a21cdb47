import SiteSyncCore

/// A listing of the conflict log as every store runs it: the token's scope applied, the limit
/// clamped and the page token read here, above the stores, so that each store only selects.
///
/// Conflicts are listed oldest detection first, then by id; a page token is the position of the
/// last conflict of the page before.
public struct ConflictQuery: Sendable, Equatable {
    /// Where a page starts: after the conflict detected at `detectedAt` with id `id`.
    public struct Position: Sendable, Equatable {
        /// When that conflict was detected (ISO 8601, UTC).
        public var detectedAt: String
        /// Its id.
        public var id: String
    }

    /// Open or resolved conflicts; nil for both.
    public var status: ConflictStatus?
    /// Only this site's; nil for every site, which only a reviewer or a monitor of every site lists.
    public var site: String?
    /// Only this table's.
    public var table: String?
    /// The page's size, 1 to ``maximumLimit``. A store selects one more, so that the page knows
    /// whether another follows.
    public var limit: Int
    /// Where the page starts; nil for the first.
    public var after: Position?

    /// The most conflicts one page lists.
    public static let maximumLimit = 1000

    /// The query `filter` asks for, within what `principal` may read.
    ///
    /// - Throws: ``SyncRefusal`` `forbidden` for a token that reads no records or asks for another
    ///   site than its own; `validation_failed` for a page token this server did not give.
    public init(_ filter: ConflictFilter, principal: Principal) throws {
        site = try ReadScope.site(filter.site, principal: principal)
        status = filter.status
        table = filter.table
        limit = min(max(filter.limit, 1), Self.maximumLimit)
        if let token = filter.after {
            let parts = token.split(separator: "~", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw SyncRefusal.validation("The page token \"\(TextRules.quotable(token, maxBytes: 80))\" is not one this server gave.")
            }
            after = Position(detectedAt: String(parts[0]), id: String(parts[1]))
        }
    }

    /// The page of `selected`, what a store selected for this query (at most ``limit`` + 1, in
    /// order), with the token of the next page when there is one.
    public func page(_ selected: [Conflict]) -> ConflictPage {
        let page = Array(selected.prefix(limit))
        return ConflictPage(conflicts: page, next: selected.count > limit ? page.last.map { "\($0.detectedAt)~\($0.id)" } : nil)
    }
}
