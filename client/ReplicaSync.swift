import GRDB
import SiteSyncCore

/// A replica's sync state, as the sync engine reads and writes it: the outbox in batches and
/// their acknowledgements, the pull's application and cursor, enrolment, and the report sent with
/// each pull.
///
/// Apps call ``Replica`` (open, put, get, list, delete, observe, resolve, status, import);
/// ``SyncEngine`` owns this. Every call is `async`: GRDB runs it on its own queue, not on the
/// cooperative pool that runs the engine.
package struct ReplicaSync: Sendable {
    /// The replica whose state this is.
    package let replica: Replica

    /// The sync state of `replica`.
    package init(_ replica: Replica) {
        self.replica = replica
    }

    // What the sync state's methods read of the replica.
    var writer: any DatabaseWriter { replica.writer }
    var schema: Schema { replica.schema }
    var state: ReplicaState { replica.state }
    var tableCodes: TableCodes { replica.tableCodes }
    var identity: ReplicaIdentity? { replica.identity }

    func requireIdentity() throws -> ReplicaIdentity { try replica.requireIdentity() }

    func recordServerReply(_ db: Database, hlc: HLC) throws { try replica.recordServerReply(db, hlc: hlc) }
}
