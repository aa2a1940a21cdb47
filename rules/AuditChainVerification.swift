import Foundation
import SiteSyncCore

/// A row of a hash chain as stored: its id, its cells in the chain's order, and its hash (nil for
/// a row written before the chains began, or inserted by hand without one).
public struct ChainedRow: Sendable, Equatable {
    public var id: Int64
    public var cells: [String?]
    public var hash: String?

    public init(id: Int64, cells: [String?], hash: String?) {
        (self.id, self.cells, self.hash) = (id, cells, hash)
    }
}

/// Where the chains stand, as a store recorded them.
public struct AuditChainHeads: Sendable, Equatable {
    /// Audit rows up to this id were written before the chains began (by a build before accounts).
    public var lastUnchainedAudit: Int64
    /// Account events up to this id were written before the chains began.
    public var lastUnchainedAccountEvent: Int64
    /// Each site with audit rows, or with a head: the hash of its chain's last row, nil when none.
    public var sites: [String: String?]
    /// The hash of the accounts chain's last row; nil when none.
    public var accounts: String?

    public init(lastUnchainedAudit: Int64, lastUnchainedAccountEvent: Int64, sites: [String: String?], accounts: String?) {
        (self.lastUnchainedAudit, self.lastUnchainedAccountEvent, self.sites, self.accounts) = (
            lastUnchainedAudit, lastUnchainedAccountEvent, sites, accounts
        )
    }
}

/// The audit trail's chains, read for ``AuditVerification``: one chain per site over the record
/// changes (`audit`), and one over the account events.
public protocol AuditChainStore: Sendable {
    /// The chains' heads and where they began.
    func auditChainHeads() async throws -> AuditChainHeads

    /// At most `limit` audit rows of `site` after `id`, by id, with the cells of ``AuditChain/auditColumns``.
    func auditChainRows(site: String, after id: Int64, limit: Int) async throws -> [ChainedRow]

    /// At most `limit` account events after `id`, by id, with the cells of ``AccountEvent/columns``.
    func accountEventChainRows(after id: Int64, limit: Int) async throws -> [ChainedRow]
}

extension AuditChain {
    /// The `audit` columns a row's hash covers, in order, quoted for both stores.
    package static let auditColumns =
        #"received_at, site_id, tbl, record_id, replica, "user", seq, fields, new_values, old_values, hlcs, bases, outcomes, reasons, conflicts, authors"#

    /// How many columns ``auditColumns`` names.
    package static let auditColumnCount = auditColumns.split(separator: ",").count

    /// ``auditColumns`` as both stores read them back for verifying: each as text.
    package static let auditColumnsAsText = auditColumns.replacingOccurrences(of: " seq,", with: " CAST(seq AS TEXT),")

    /// The cells ``auditColumns`` stores for `row`, received at `receivedAt` from `replica`, in order.
    package static func cells(_ row: PushWrites.AuditRow, receivedAt: String, replica: String, fields: String) -> [String?] {
        [
            receivedAt, row.site, row.table, row.recordID, replica, row.user, String(row.seq.rawValue), fields, JSONWriter.array(ofValues: row.newValues),
            row.oldValues.map(JSONWriter.array(ofValues:)), row.hlcs.map(JSONWriter.array(ofHLCs:)), row.bases.map(JSONWriter.array(ofVersions:)),
            FieldOutcome.letters(row.outcomes), row.reasons.map(JSONWriter.array(ofOptional:)), row.conflicts.map(JSONWriter.array(ofOptional:)),
            row.authors?.json,
        ]
    }

    /// The hash of an audit row whose cells are `cells` (``auditColumns``): the `authors` cell
    /// counts only when it holds something, so rows written before authorship keep their hashes.
    package static func auditHash(previous: String, cells: [String?]) -> String {
        hash(previous: previous, cells: cells.last == .some(nil) ? Array(cells.dropLast()) : cells)
    }
}

/// What `sitesync-server audit verify` found: every chain checked from its first row, or the first
/// row that breaks one.
public struct AuditVerification: Sendable, Equatable, Codable {
    /// One chain, checked.
    public struct Chain: Sendable, Equatable, Codable {
        /// `site S01`, or `accounts`.
        public var name: String
        /// Rows verified.
        public var rows: Int
        /// The hash of its last row: record it, and a later run that reports another history shows
        /// the trail was rewritten (docs/AUDIT.md).
        public var head: String?
    }

    /// The first row that breaks a chain.
    public struct Break: Sendable, Equatable, Codable {
        public var chain: String
        /// The row's id in its table (`audit` or `account_events`).
        public var table: String
        public var id: Int64
        public var problem: String

        public init(chain: String, table: String, id: Int64, problem: String) {
            (self.chain, self.table, self.id, self.problem) = (chain, table, id, problem)
        }
    }

    /// Rows whose hash was checked.
    public var verified: Int
    /// Rows written before the chains began (by a build before accounts): kept, shown, not verifiable.
    public var beforeChain: Int
    public var chains: [Chain]
    /// The first broken row; nil when every chain holds.
    public var broken: Break?

    enum CodingKeys: String, CodingKey {
        case verified, chains, broken
        case beforeChain = "before_chain"
    }

    /// Rows read a page at a time.
    static let pageRows = 2_000

    /// Checks every chain of `store`, stopping at the first broken row.
    public static func run(_ store: any AuditChainStore) async throws -> AuditVerification {
        let heads = try await store.auditChainHeads()
        var result = AuditVerification(verified: 0, beforeChain: 0, chains: [], broken: nil)
        var chains: [(name: String, table: String, lastUnchained: Int64, head: String?, page: (Int64) async throws -> [ChainedRow])] = []
        for (site, head) in heads.sites.sorted(by: { $0.key < $1.key }) {
            chains.append(("site \(site)", "audit", heads.lastUnchainedAudit, head, { try await store.auditChainRows(site: site, after: $0, limit: pageRows) }))
        }
        chains.append(
            (
                "accounts", "account_events", heads.lastUnchainedAccountEvent, heads.accounts,
                { try await store.accountEventChainRows(after: $0, limit: pageRows) }
            ))
        for chain in chains {
            var previous = AuditChain.genesis
            var rows = 0
            var reachedHead = chain.head == nil
            var last: Int64 = 0
            func broken(_ id: Int64, _ problem: String) -> AuditVerification {
                var found = result
                found.broken = Break(chain: chain.name, table: chain.table, id: id, problem: problem)
                return found
            }
            while true {
                let page = try await chain.page(last)
                for row in page {
                    last = row.id
                    if row.id <= chain.lastUnchained {
                        guard row.hash == nil else { return broken(row.id, "holds a hash but was written before the chain began: inserted by hand") }
                        result.beforeChain += 1
                        continue
                    }
                    guard let hash = row.hash else {
                        return broken(row.id, "has no hash: it was inserted by hand, or its hash was removed")
                    }
                    let expected =
                        chain.table == "audit"
                        ? AuditChain.auditHash(previous: previous, cells: row.cells) : AuditChain.hash(previous: previous, cells: row.cells)
                    guard hash == expected else {
                        return broken(row.id, "does not match its chain: this row was changed, or a row before it was deleted or inserted")
                    }
                    previous = hash
                    rows += 1
                    if hash == chain.head { reachedHead = true }
                }
                if page.count < pageRows { break }
            }
            guard reachedHead else {
                return broken(last, "is the chain's last row, but the store recorded a later head: rows after it were deleted")
            }
            result.verified += rows
            result.chains.append(Chain(name: chain.name, rows: rows, head: rows == 0 ? nil : previous))
        }
        return result
    }
}
