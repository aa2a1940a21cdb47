import Foundation
import SiteSyncCore

/// What an author may write, as their account says at the push.
package struct AuthorRights: Sendable {
    /// The name the author's changes are shown under (`user` in stamps, conflicts and the audit
    /// trail); the username is kept beside it, in the audit row's authors.
    package var fullName: String
    package var role: PersonRole
    package var sites: [String]
    /// The account is deactivated: its changes made before the laptop learnt it are accepted, and
    /// flagged in the audit trail.
    package var deactivated: Bool

    package init(fullName: String, role: PersonRole, sites: [String], deactivated: Bool) {
        (self.fullName, self.role, self.sites, self.deactivated) = (fullName, role, sites, deactivated)
    }

    package init(_ account: Account) {
        self.init(fullName: account.fullName, role: account.role, sites: account.sites, deactivated: account.state != .active)
    }

    /// Whether the author may write a record at `site`: coordinators, investigators and data
    /// managers their sites' records (a data manager's conflict resolution writes the record's
    /// field as well as the conflict; which commands each role may run is the laptop's to enforce),
    /// monitors nothing.
    package func canWrite(site: String) -> Bool {
        switch role {
        case .coordinator, .investigator, .dataManager: sites.contains("*") || sites.contains(site)
        case .monitor: false
        }
    }

    /// What the author's role allows, for a refusal.
    package var allowance: String {
        role == .monitor ? "reads only" : "writes records of \(sites.joined(separator: ", "))"
    }
}

/// Checks the push's signatures against the authors' registered keys (docs/AUTHORSHIP.md, "What
/// the server checks"), before any store is touched, and names each pushed field's author.
package enum AuthorshipCheck {
    private struct Covered {
        var group: Int
        var row: Int
        var field: Int
        var hlc: HLC
        var name: String
        /// The field name's place among the push's field names: the leaves' order without comparing text.
        var rank: Int
        var leaf: Authorship.Hash
    }

    /// The most leaves one signature may claim: a push's records times the widest table, with room.
    static let maximumLeaves = 1 << 24

    /// Verifies every signature of `request` and fills `checked`'s per-field authors: the username
    /// of the signature covering each field, nil for a field none covers.
    ///
    /// - Parameters:
    ///   - keys: the registered keys the signatures name.
    ///   - rights: what each author's account may write, by username.
    /// - Throws: ``SyncRefusal`` naming the table, record and field of the first field whose proof
    ///   fails (never a value); nothing is written.
    package static func check(
        _ request: PushRequest, _ checked: inout CheckedPush, keys: [PersonKey], rights: [String: AuthorRights]
    ) throws(SyncRefusal) {
        let signatures = (request.signatures ?? []).sorted { $0.first < $1.first }
        // A push without signatures proves no author: `authors` stays empty, which reads as none.
        guard !signatures.isEmpty else { return }
        checked.authors = checked.groups.map { group in group.values.map { _ in nil } }
        for (index, signature) in signatures.enumerated() {
            // Named in refusals: checked before they are quoted.
            guard Username.isValid(signature.username), signature.keyID.utf8.count == 32, signature.keyID.allSatisfy(\.isHexDigit) else {
                throw SyncRefusal.validation("A signature names an invalid username or key id: \(Username.rule); a key id is 32 hex digits.")
            }
            guard signature.first <= signature.last, signature.count > 0, signature.count <= maximumLeaves else {
                throw SyncRefusal.validation("A signature of \(signature.username) has an empty HLC range or a count outside 1…\(maximumLeaves).")
            }
            if index > 0, signatures[index - 1].last >= signature.first {
                throw SyncRefusal.validation("Two signatures of one push cover overlapping HLC ranges.")
            }
        }
        var covered = Array(repeating: [Covered](), count: signatures.count)
        let ranks = Dictionary(uniqueKeysWithValues: Set(checked.groups.flatMap(\.group.columns)).sorted().enumerated().map { ($1, $0) })
        for (groupIndex, group) in checked.groups.enumerated() {
            let fieldRanks = group.group.columns.map { ranks[$0]! }
            for (rowIndex, row) in group.group.rows.enumerated() {
                for (fieldIndex, field) in group.group.columns.enumerated() {
                    let hlc = row.hlc(at: fieldIndex)
                    var (low, high) = (0, signatures.count)
                    while low < high {
                        let middle = (low + high) / 2
                        if signatures[middle].first <= hlc { low = middle + 1 } else { high = middle }
                    }
                    guard low > 0, signatures[low - 1].last >= hlc else { continue }
                    let write = Authorship.FieldWrite(
                        table: group.table.name, id: row.id, field: field, hlc: hlc, value: group.values[rowIndex][fieldIndex],
                        reason: row.reason(at: fieldIndex))
                    covered[low - 1].append(
                        Covered(
                            group: groupIndex, row: rowIndex, field: fieldIndex, hlc: hlc, name: field, rank: fieldRanks[fieldIndex],
                            leaf: Authorship.leaf(write)))
                }
            }
        }
        let keysByID = Dictionary(keys.map { ($0.keyID, $0) }, uniquingKeysWith: { first, _ in first })
        for (signature, fields) in zip(signatures, covered) {
            let fields = fields.sorted { ($0.hlc, $0.rank) < ($1.hlc, $1.rank) }
            guard let first = fields.first else {
                throw SyncRefusal.validation("A signature of \(signature.username) covers no field of the push.")
            }
            let what = "\(checked.groups[first.group].table.name).\(first.name) of record \(checked.groups[first.group].group.rows[first.row].id)"
            func refuse(_ why: String) -> SyncRefusal {
                SyncRefusal.authorRefused("The change to \(what) is not proven to be \(signature.username)'s: \(why). Nothing was written.")
            }
            func disallow(_ why: String) -> SyncRefusal {
                SyncRefusal.authorRefused("The change to \(what) by \(signature.username) is not allowed: \(why). Nothing was written.")
            }
            guard let key = keysByID[signature.keyID], key.username == signature.username else {
                throw refuse("its key is not registered for \(signature.username)")
            }
            guard let positions = signature.expandedPositions(limit: fields.count), positions.count == fields.count else {
                throw refuse("the signature's positions do not match the push's \(fields.count) fields in its range")
            }
            var proof: [Authorship.Hash] = []
            proof.reserveCapacity(signature.proof.count)
            for text in signature.proof {
                guard let hash = Authorship.hash(base64: text) else { throw refuse("a hash of its proof is not 32 bytes of base64") }
                proof.append(hash)
            }
            let root: Authorship.Hash
            do {
                root = try Authorship.root(count: signature.count, known: zip(positions, fields).map { (index: $0, leaf: $1.leaf) }, proof: proof)
            } catch {
                throw refuse(error.description)
            }
            let message = Authorship.message(
                username: signature.username, keyID: signature.keyID, first: signature.first, last: signature.last, count: signature.count, root: root)
            guard Authorship.isValidSignature(signature.signature, of: message, publicKey: key.publicKey) else {
                throw refuse("its signature does not match the fields pushed")
            }
            guard let allowed = rights[signature.username] else { throw refuse("\(signature.username) has no account") }
            checked.authorRights[signature.username] = allowed
            for field in fields {
                if checked.authors[field.group][field.row] == nil {
                    checked.authors[field.group][field.row] = Array(repeating: nil, count: checked.groups[field.group].group.columns.count)
                }
                checked.authors[field.group][field.row]![field.field] = signature.username
                // A new record names its site: checked here; an existing record's is the store's.
                if let site = checked.groups[field.group].sites[field.row], !allowed.canWrite(site: site) {
                    throw disallow("\(signature.username) is a \(allowed.role.rawValue), who \(allowed.allowance)")
                }
            }
        }
        checked.deactivatedAuthors = Set(checked.authorRights.filter(\.value.deactivated).keys)
    }
}
