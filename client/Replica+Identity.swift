import Foundation
import GRDB
import SiteSyncCore
import SiteSyncSQLite

extension Replica {
    /// Gives this file a new replica id, for a copy of a replica's file (or a restored backup) that
    /// the server refused: the pending changes are stamped with the new id and pushed under it, the
    /// pull starts over so that the changes the copies made under the shared id arrive here too,
    /// and the server registers the new id at the next sync (or ``SyncEngine/enrol()``).
    ///
    /// Nothing is lost: every change the server acknowledged stays there under the old id, and every
    /// pending one moves to the new id. Works offline.
    ///
    /// The file keeps no enrolment token once enrolled, so a rejoin needs one from the operator: a
    /// copy of the file, or a laptop whose credential was revoked, cannot enrol itself again.
    /// - Parameter enrolmentToken: the enrolment token to register with.
    @discardableResult
    public func rejoin(enrolmentToken: String) throws -> ReplicaIdentity {
        let old = try requireIdentity()
        let replicaID = ReplicaID.generate()
        let identity = try writer.write { db -> ReplicaIdentity in
            try restampPending(db, from: old.replicaID, to: replicaID)
            try db.execute(
                sql: """
                    UPDATE _sitesync_meta SET replica_id = ?, token = ?, enrolment_token = NULL, enrolled = 0,
                        credential = NULL, acked = NULL, unconfirmed = '[]', cursor = '{}'
                    """,
                arguments: [replicaID, enrolmentToken]
            )
            try installTracking(db)
            return ReplicaIdentity(replicaID: replicaID, site: old.site, user: old.user, serverURL: old.serverURL, token: enrolmentToken)
        }
        state.current = identity
        return identity
    }

    /// Moves the stamps of this replica's unpushed writes from one replica id to another.
    private func restampPending(_ db: Database, from old: String, to new: String) throws {
        let shadows = try Row.fetchAll(
            db, sql: "SELECT \(ShadowRow.columns) FROM \(ShadowRow.source) WHERE s.pending IS NOT NULL"
        ).map(ShadowRow.init)
        var actors = Actors()
        for shadow in shadows {
            guard let table = tableCodes.name(shadow.table).flatMap({ try? schema.table($0) }) else { continue }
            var stamps = shadow.stamps
            let base = try shadow.base()
            // The fields written here since the last push: all of a record created here, else those with a base.
            let pending = base.map { Array($0.keys) } ?? table.columnNames
            for field in pending where stamps[field].version.replica == old {
                stamps[field] = Stamp(hlc: stamps[field].version.hlc, replica: new, user: stamps[field].user)
            }
            stamps.compact(fields: table.columnNames)
            var held = try shadow.held()
            for (field, kept) in held where kept.stamp.version.replica == old {
                held[field]!.stamp = Stamp(hlc: kept.stamp.version.hlc, replica: new, user: kept.stamp.user)
            }
            try db.execute(
                sql: "UPDATE _sitesync_shadows SET hlc = ?, actor = ?, fields = ?, held = ? WHERE tbl = ? AND id = ?",
                arguments: [
                    stamps.base.version.hlc.rawValue, actors.actor(db, replica: stamps.base.version.replica, user: stamps.base.user),
                    stamps.overridesJSON, held.isEmpty ? nil : ShadowJSON.encode(held), shadow.table, shadow.id,
                ]
            )
        }
    }
}

extension ReplicaSync {
    /// The request that registers this replica's id with the server, with the replica's own
    /// credential: generated and stored the first time, so that a request sent again after a lost
    /// answer carries the same one.
    package func enrolmentRequest() async throws -> EnrolRequest {
        let identity = try requireIdentity()
        let credential = try await writer.write { db -> String in
            if let stored = try String.fetchOne(db, sql: "SELECT credential FROM _sitesync_meta") { return stored }
            let credential = Credential.generate(prefix: Credential.replicaPrefix)
            try db.execute(sql: "UPDATE _sitesync_meta SET credential = ?", arguments: [credential])
            return credential
        }
        return EnrolRequest(replica: identity.replicaID, user: identity.user, credential: credential)
    }

    /// Records the server's answer to ``enrolmentRequest()``: from now on the replica syncs with its
    /// own credential, and the file keeps no enrolment token (a copy of it can enrol nothing).
    @discardableResult
    package func recordEnrolment(_ response: EnrolResponse) async throws -> ReplicaIdentity {
        var identity = try requireIdentity()
        guard response.replica == identity.replicaID else {
            throw SyncError.invalidResponse("the server enrolled replica \(response.replica), not \(identity.replicaID)")
        }
        guard response.site == identity.site else {
            throw ReplicaError.invalidArgument(
                "The enrolment token is for \(response.site == SiteID.all ? "a reviewer" : "site \(response.site)"), but this replica records \(identity.isReviewer ? "every site" : "site \(identity.site)"); run `sitesync init` with a token of its site."
            )
        }
        try state.checkServerClock(max(response.hlc, response.acked))
        let credential = try await writer.write { db -> String in
            guard let credential = try String.fetchOne(db, sql: "SELECT credential FROM _sitesync_meta") else {
                throw ReplicaError.invalidArgument("This replica sent no enrolment request; enrol it with `sitesync init` or `sitesync sync`.")
            }
            try db.execute(
                sql: "UPDATE _sitesync_meta SET token = credential, enrolment_token = NULL, enrolled = 1, acked = ?, unconfirmed = '[]'",
                arguments: [response.acked.rawValue]
            )
            try recordServerReply(db, hlc: max(response.hlc, response.acked))
            return credential
        }
        identity.token = credential
        identity.isEnrolled = true
        state.current = identity
        return identity
    }

    /// Records that `request` is about to be sent, and returns it with what the server needs to
    /// tell this replica from a copy of its file: the last acknowledged sequence number, and every
    /// push sent since without an answer (``PushRequest/sent``), this one included.
    func recordSent(_ db: Database, _ request: PushRequest) throws -> PushRequest {
        let meta = try Row.fetchOne(db, sql: "SELECT acked, unconfirmed FROM _sitesync_meta")!
        var sent = try ShadowJSON.decode([String].self, meta["unconfirmed"]) ?? []
        let fingerprint = request.fingerprint
        if sent.last != fingerprint { sent.append(fingerprint) }
        // Only pushes after the last answer can be the server's last one; keep a bounded tail.
        sent = Array(sent.suffix(64))
        try db.execute(sql: "UPDATE _sitesync_meta SET unconfirmed = ?", arguments: [ShadowJSON.encode(sent)])
        var prepared = request
        prepared.acked = (meta["acked"] as Int64?).map(HLC.init(rawValue:))
        prepared.sent = sent
        return prepared
    }

    /// Records an answered push inside its acknowledgement: the server's acknowledged sequence
    /// number, and that this push and the ones before it are answered.
    func recordAnswer(_ db: Database, fingerprint: String, acked: HLC) throws {
        let sent = try ShadowJSON.decode([String].self, String.fetchOne(db, sql: "SELECT unconfirmed FROM _sitesync_meta")) ?? []
        let remaining = sent.firstIndex(of: fingerprint).map { Array(sent[($0 + 1)...]) } ?? sent
        try db.execute(
            sql: "UPDATE _sitesync_meta SET acked = max(coalesce(acked, 0), ?), unconfirmed = ?",
            arguments: [acked.rawValue, ShadowJSON.encode(remaining)]
        )
    }
}
