import SiteSyncClient
import SiteSyncCore

extension OutboxBatch {
    /// The pushed rows with their group, flattened.
    public var rows: [(group: ChangeGroup, row: ChangeRow)] {
        request.groups.flatMap { group in group.rows.map { (group, $0) } }
    }

    /// The pushed value of `field` for record `id`.
    public func value(_ field: String, of id: String) -> FieldValue? {
        guard let (group, row) = rows.first(where: { $0.row.id == id }), let index = group.columns.firstIndex(of: field) else { return nil }
        return row.values[index]
    }

    /// The pushed base of `field` for record `id`.
    public func base(_ field: String, of id: String) -> Version?? {
        guard let (group, row) = rows.first(where: { $0.row.id == id }), let index = group.columns.firstIndex(of: field) else { return nil }
        return .some(row.base(at: index))
    }
}

extension Replica {
    /// The sync engine's view of this replica (``ReplicaSync``), for tests that step through a sync
    /// by hand: read the outbox, acknowledge a push, apply a pull.
    package var sync: ReplicaSync { ReplicaSync(self) }
}
