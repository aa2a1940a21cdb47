import Foundation
import SiteSyncCore
import SiteSyncRules
import SiteSyncSQLiteStore
import Testing
import TrialRecords

/// What every store does alike, as users see it: the order and the pages of the conflict log,
/// what each token may read, and enrolment retried. Each check takes a fresh, migrated store and
/// records its failures with `#expect`; `StoreConformanceTests` runs every check on every store
/// (``StoreKind/all``), so a third store is held to the same behaviour by adding it there.
public enum StoreConformance {
    /// Three pushes received out of the order they log conflicts in; their conflicts, listed.
    struct LoggedConflicts {
        /// The open conflicts, S01's and S02's, as a reviewer lists them in one page.
        var all: [Conflict]
    }

    static let s01 = Principal(role: .site, site: "S01")
    static let s02 = Principal(role: .site, site: "S02")
    static let reviewer = Principal(role: .reviewer, site: nil)

    /// When each push is received, in the order they are sent: the conflicts of the second push
    /// sent are detected before those of the first, so a store listing by insertion order fails.
    static let receivedAt = ["2026-12-01T10:00:00Z", "2026-12-01T10:00:02Z", "2026-12-01T10:00:01Z", "2026-12-01T10:00:03Z"]

    /// Enrols r1 and r1b at S01, r2 and r2b at S02; r1 and r2 create subjects, then r1b and r2b
    /// overwrite some of their statuses concurrently: 2 conflicts at S01 detected at 10:00:02, 3 at
    /// S02 at 10:00:01, 2 more at S01 at 10:00:03.
    static func logConflicts(in store: any SyncStore) async throws -> LoggedConflicts {
        for (replica, site) in [("r1", "S01"), ("r1b", "S01"), ("r2", "S02"), ("r2b", "S02")] {
            let enrolled = try await store.enrolReplica(
                replica, tokenHash: "hash-\(replica)", principal: Principal(role: .site, site: site), label: replica, enrolledBy: "enrolment",
                limit: .max)
            #expect(enrolled == .enrolled(acked: .zero))
        }
        let now = HybridLogicalClock.systemMilliseconds()
        func push(_ replica: String, site: String, _ ids: [String], status: String, at receivedAt: String, milliseconds: Int64) async throws -> PushOutcome {
            try await StoreConformance.push(store, replica, site: site, ids, status: status, at: receivedAt, seq: HLC(milliseconds: milliseconds))
        }
        #expect(try await push("r1", site: "S01", ["s1", "s2", "s3", "s4"], status: "screening", at: receivedAt[0], milliseconds: now - 1_000).conflicts == 0)
        #expect(try await push("r2", site: "S02", ["t1", "t2", "t3"], status: "screening", at: receivedAt[0], milliseconds: now - 1_000).conflicts == 0)
        #expect(try await push("r1b", site: "S01", ["s3", "s4"], status: "enrolled", at: receivedAt[1], milliseconds: now - 900).conflicts == 2)
        #expect(try await push("r2b", site: "S02", ["t1", "t2", "t3"], status: "enrolled", at: receivedAt[2], milliseconds: now - 900).conflicts == 3)
        #expect(try await push("r1b", site: "S01", ["s1", "s2"], status: "screen_failed", at: receivedAt[3], milliseconds: now - 800).conflicts == 2)
        let all = try await store.conflicts(ConflictFilter(status: .open, limit: 100), principal: reviewer)
        #expect(all.next == nil)
        return LoggedConflicts(all: all.conflicts)
    }

    /// Pushes subjects `ids` of `site` (screening number `SITE-ID`, `status`) from `replica`, received at `receivedAt`.
    static func push(
        _ store: any SyncStore, _ replica: String, site: String, _ ids: [String], status: String, at receivedAt: String, seq: HLC
    ) async throws -> PushOutcome {
        let request = PushRequest(
            replica: replica,
            groups: [
                ChangeGroup(
                    table: "subjects", user: "Conformance", columns: ["site_id", "screening_no", "status"],
                    rows: ids.map { id in ChangeRow(id: id, seq: seq, values: [.text(site), .text("\(site)-\(id)"), .text(status)]) })
            ])
        let principal = Principal(role: .site, site: site, replica: replica)
        let checked = try PushValidation.check(
            request, principal: principal, schema: TrialSchema.current, serverMilliseconds: HybridLogicalClock.systemMilliseconds(),
            maximumSkewMilliseconds: 60_000, receivedAt: receivedAt)
        return try await store.push(checked, principal: principal)
    }

    /// The audit trail is exported oldest first, across pages, as it stood when the export began:
    /// a push committed while the export runs is not in it, and is in the next one. Filters select
    /// exactly what they name.
    public static func auditTrail(_ store: any SyncStore) async throws {
        for (replica, site) in [("a1", "S01"), ("a2", "S02")] {
            _ = try await store.enrolReplica(
                replica, tokenHash: "hash-\(replica)", principal: Principal(role: .site, site: site), label: replica, enrolledBy: "enrolment",
                limit: .max)
        }
        let now = HybridLogicalClock.systemMilliseconds()
        // More rows than a page holds, so that the export reads more than one.
        let count = AuditTrail.pageRows + AuditTrail.pageRows / 4
        let ids = (0..<count).map { String(format: "a%05d", $0) }
        for (offset, chunk) in stride(from: 0, to: count, by: 1_000).map({ Array(ids[$0..<min($0 + 1_000, count)]) }).enumerated() {
            let outcome = try await push(
                store, "a1", site: "S01", chunk, status: "screening", at: "2026-12-01T10:00:00Z", seq: HLC(milliseconds: now - 5_000 + Int64(offset)))
            #expect(outcome.applied == chunk.count)
        }
        let exported = try await store.withAuditTrail(AuditFilter()) { trail in
            var changes: [AuditFieldChange] = []
            for try await change in trail {
                if changes.isEmpty {
                    // Committed while the export runs, after its first page was read.
                    let late = try await push(
                        store, "a2", site: "S02", ["late"], status: "screening", at: "2026-12-01T11:00:00Z", seq: HLC(milliseconds: now - 1_000))
                    #expect(late.applied == 1)
                }
                changes.append(change)
            }
            return changes
        }
        #expect(exported.count == count * 3, "three fields per record, every record once")
        let inOrder = exported.map(\.recordID) == ids.flatMap { [$0, $0, $0] }
        #expect(inOrder, "oldest first, in the order received")
        #expect(!exported.contains { $0.recordID == "late" }, "a push committed during the export is not in it")

        let next = try await store.withAuditTrail(AuditFilter()) { trail in try await trail.reduce(into: [AuditFieldChange]()) { $0.append($1) } }
        #expect(next.count == count * 3 + 3 && next.suffix(3).allSatisfy { $0.recordID == "late" && $0.site == "S02" })
        let one = try await store.withAuditTrail(AuditFilter(record: ids[1_234])) { trail in try await trail.reduce(into: [String]()) { $0.append($1.field) } }
        #expect(one.sorted() == ["screening_no", "site_id", "status"])
        let s02 = try await store.withAuditTrail(AuditFilter(site: "S02", since: "2026-12-01T10:30:00Z")) { trail in
            try await trail.reduce(into: [String]()) { $0.append($1.recordID) }
        }
        #expect(s02 == ["late", "late", "late"])
        let none = try await store.withAuditTrail(AuditFilter(table: "adverse_events")) { trail in try await trail.reduce(0) { count, _ in count + 1 } }
        #expect(none == 0)
    }

    /// Conflicts are listed oldest detection first, then by id, on every store; pages of any size
    /// list each once, in that order, and the last page says no other follows.
    public static func conflictOrderAndPages(_ store: any SyncStore) async throws {
        let logged = try await logConflicts(in: store)
        #expect(logged.all.count == 7)
        #expect(
            logged.all.map(\.detectedAt) == [receivedAt[2], receivedAt[2], receivedAt[2], receivedAt[1], receivedAt[1], receivedAt[3], receivedAt[3]],
            "oldest detection first, whatever order the pushes were applied in")
        let byDetectionThenID = logged.all.sorted { ($0.detectedAt, $0.id) < ($1.detectedAt, $1.id) }
        #expect(logged.all.map(\.id) == byDetectionThenID.map(\.id), "ties by id")

        for size in [1, 2, 3, 7] {
            var listed: [String] = []
            var pages = 0
            var after: String?
            repeat {
                let page = try await store.conflicts(ConflictFilter(status: .open, limit: size, after: after), principal: reviewer)
                #expect(page.conflicts.count <= size)
                listed += page.conflicts.map(\.id)
                pages += 1
                after = page.next
            } while after != nil && pages <= 10
            #expect(listed == logged.all.map(\.id), "pages of \(size)")
            #expect(pages == (7 + size - 1) / size, "pages of \(size): the last full page says no other follows")
        }

        // Filters narrow the same order.
        let s02 = try await store.conflicts(ConflictFilter(status: .open, site: "S02"), principal: reviewer).conflicts
        #expect(s02.map(\.id) == logged.all.filter { $0.site == "S02" }.map(\.id))
        #expect(try await store.conflicts(ConflictFilter(status: .resolved), principal: reviewer).conflicts.isEmpty)
        #expect(try await store.conflicts(ConflictFilter(status: nil), principal: reviewer).conflicts.map(\.id) == logged.all.map(\.id))
        #expect(try await store.conflicts(ConflictFilter(table: "adverse_events"), principal: reviewer).conflicts.isEmpty)

        // A limit out of range is brought within 1 to 1,000; a page token no server gave is refused.
        #expect(try await store.conflicts(ConflictFilter(limit: 0), principal: reviewer).conflicts.count == 1)
        #expect(try await store.conflicts(ConflictFilter(limit: -5), principal: reviewer).conflicts.count == 1)
        #expect(try await store.conflicts(ConflictFilter(limit: 5_000), principal: reviewer).conflicts.count == 7)
        for token in ["17", "nonsense", "~", "2026-12-01T10:00:01Z~"] {
            let refusal = await #expect(throws: SyncRefusal.self) {
                try await store.conflicts(ConflictFilter(after: token), principal: reviewer)
            }
            #expect(refusal?.code == .validationFailed, "page token \(token)")
        }
    }

    /// A site token reads its own site only, a reviewer every site, an admin token none; a conflict
    /// or a history out of scope is absent, as if it did not exist.
    public static func reviewScope(_ store: any SyncStore) async throws {
        let logged = try await logConflicts(in: store)
        let s01IDs = logged.all.filter { $0.site == "S01" }.map(\.id)
        let s02IDs = logged.all.filter { $0.site == "S02" }.map(\.id)
        #expect(s01IDs.count == 4 && s02IDs.count == 3)

        #expect(try await store.conflicts(ConflictFilter(), principal: s01).conflicts.map(\.id) == s01IDs, "a site token lists its own site")
        #expect(try await store.conflicts(ConflictFilter(site: "S01"), principal: s01).conflicts.map(\.id) == s01IDs)
        let monitor = Principal(role: .monitor, site: "S02")
        #expect(try await store.conflicts(ConflictFilter(), principal: monitor).conflicts.map(\.id) == s02IDs, "a site's monitor lists its site")
        #expect(try await store.conflicts(ConflictFilter(site: "S02"), principal: reviewer).conflicts.map(\.id) == s02IDs)
        #expect(try await store.conflicts(ConflictFilter(), principal: Principal(role: .monitor, site: nil)).conflicts.count == 7)

        for (principal, filter) in [
            (s01, ConflictFilter(site: "S02")), (Principal(role: .admin, site: nil), ConflictFilter()),
            (Principal(role: .metrics, site: nil), ConflictFilter()),
        ] {
            let refusal = await #expect(throws: SyncRefusal.self) { try await store.conflicts(filter, principal: principal) }
            #expect(refusal?.code == .forbidden, "\(principal.role) asking for \(filter.site ?? "every site")")
        }

        let s02Conflict = try #require(s02IDs.first)
        #expect(try await store.conflict(id: s02Conflict, principal: s01) == nil, "another site's conflict is absent")
        let detail = try #require(try await store.conflict(id: s02Conflict, principal: reviewer))
        #expect(detail.conflict.site == "S02" && detail.current == .text("enrolled"), "the current value of the field")
        #expect(try await store.conflict(id: s02Conflict, principal: s02) == detail)
        #expect(try await store.conflict(id: "0123456789abcdef0123456789abcdef", principal: reviewer) == nil)
        await #expect(throws: SyncRefusal.self) { try await store.conflict(id: s02Conflict, principal: Principal(role: .admin, site: nil)) }

        #expect(try await store.history(table: "subjects", id: "t1", principal: s01) == nil, "another site's record is absent")
        let history = try #require(try await store.history(table: "subjects", id: "t1", principal: s02))
        #expect(history.recordID == "t1" && !history.entries.isEmpty)
        #expect(try await store.history(table: "subjects", id: "t1", principal: reviewer) == history)
        #expect(try await store.history(table: "subjects", id: "nobody", principal: reviewer) == nil)
        await #expect(throws: SyncRefusal.self) { try await store.history(table: "subjects", id: "t1", principal: Principal(role: .admin, site: nil)) }
    }

    /// An enrolment retried with the same credential (its answer was lost) is answered as the first
    /// was, with what was applied since; another credential for the same replica id, or one more
    /// enrolment past the enrolling token's limit, is refused and writes nothing.
    public static func enrolment(_ store: any SyncStore) async throws {
        let site = Principal(role: .site, site: "S01")
        func enrol(_ replica: String, _ hash: String, by enrolling: String = "enrolment-a", limit: Int = 2) async throws -> Enrolment {
            try await store.enrolReplica(replica, tokenHash: hash, principal: site, label: "laptop \(replica)", enrolledBy: enrolling, limit: limit)
        }
        #expect(try await enrol("e1", "hash-e1") == .enrolled(acked: .zero))
        let tokens = try await store.tokens()
        #expect(try await enrol("e1", "hash-e1") == .enrolled(acked: .zero), "a retry is answered as the first was")
        #expect(try await store.tokens() == tokens, "and writes nothing")
        let replicaCredential = try #require(try await store.token(hash: "hash-e1"))
        #expect(
            replicaCredential.principal == Principal(role: .site, site: "S01", replica: "e1"), "the credential inherits the enrolling token's role and site")

        #expect(try await enrol("e1", "hash-other") == .taken, "another credential for the same id")
        #expect(try await store.tokens() == tokens)

        #expect(try await enrol("e2", "hash-e2") == .enrolled(acked: .zero))
        let full = try await store.tokens()
        #expect(try await enrol("e3", "hash-e3") == .limitReached(2), "past the enrolling token's limit")
        #expect(try await store.tokens() == full)
        #expect(try await enrol("e2", "hash-e2") == .enrolled(acked: .zero), "a retry is not one more enrolment")
        #expect(try await enrol("e3", "hash-e3", by: "enrolment-b") == .enrolled(acked: .zero), "the limit is the enrolling token's")

        // After a push, a retried enrolment answers with what the server applied.
        let now = HybridLogicalClock.systemMilliseconds()
        let seq = HLC(milliseconds: now - 500)
        let request = PushRequest(
            replica: "e1",
            groups: [
                ChangeGroup(
                    table: "subjects", user: "Conformance", columns: ["site_id", "screening_no", "status"],
                    rows: [ChangeRow(id: "x1", seq: seq, values: [.text("S01"), .text("S01-x1"), .text("screening")])])
            ])
        let principal = replicaCredential.principal
        let checked = try PushValidation.check(
            request, principal: principal, schema: TrialSchema.current, serverMilliseconds: now, maximumSkewMilliseconds: 60_000,
            receivedAt: "2026-12-01T10:00:00Z")
        #expect(try await store.push(checked, principal: principal).acked == seq)
        #expect(try await enrol("e1", "hash-e1") == .enrolled(acked: seq))
    }
}

extension StoreConformance {
    /// Accounts: created once per username, listed by username, changed only as the rules allow,
    /// every change an event in order; a refused change writes nothing; the database itself
    /// refuses deleting an account and changing or deleting an event.
    public static func accounts(_ store: any SyncStore) async throws {
        let hash = try PasswordHash(password: "correct horse battery", cost: .init(logN: 4, blockSize: 8, parallelism: 1)).encoded
        let created = try await store.changeAccount(
            "zoe.b", .create(fullName: " Zoë Brown ", role: .coordinator, sites: ["S02", "S01", "S02"], passwordHash: hash), at: "2026-12-01T09:00:00Z",
            by: "root")
        #expect(created.fullName == "Zoë Brown")
        #expect(created.sites == ["S01", "S02"])
        #expect(created.state == .active)
        _ = try await store.changeAccount(
            "amir", .create(fullName: "Amir Khan", role: .dataManager, sites: ["*"], passwordHash: hash), at: "2026-12-01T09:01:00Z", by: "root")
        #expect(try await store.accounts().map(\.username) == ["amir", "zoe.b"])
        #expect(try await store.account(username: "zoe.b") == created)
        #expect(try await store.account(username: "nobody") == nil)

        // A username is never reused; a refused change writes nothing.
        await #expect(throws: SyncRefusal.self) {
            try await store.changeAccount(
                "zoe.b", .create(fullName: "Zoe Other", role: .monitor, sites: ["S01"], passwordHash: hash), at: "2026-12-01T09:02:00Z", by: "root")
        }
        await #expect(throws: SyncRefusal.self) { try await store.changeAccount("zoe.b", .reactivate, at: "2026-12-01T09:03:00Z", by: "root") }
        await #expect(throws: SyncRefusal.self) { try await store.changeAccount("nobody", .deactivate(reason: "left"), at: "2026-12-01T09:03:00Z", by: "root") }
        #expect(try await store.account(username: "zoe.b") == created)

        // Two operators adding the same username at once: one account, the other refused.
        let twins = await withTaskGroup(of: Bool.self) { group in
            for name in ["Twin One", "Twin Two"] {
                group.addTask {
                    (try? await store.changeAccount(
                        "twin", .create(fullName: name, role: .monitor, sites: ["S01"], passwordHash: hash), at: "2026-12-01T09:05:00Z", by: "root")) != nil
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(twins.filter { $0 }.count == 1 && twins.count == 2)
        #expect(try await store.accountEvents().filter { $0.username == "twin" }.count == 1)

        let deactivated = try await store.changeAccount("zoe.b", .deactivate(reason: " left the study team "), at: "2026-12-02T09:00:00Z", by: "ops")
        #expect(deactivated.state == .deactivated)
        #expect(deactivated.deactivationReason == "left the study team")
        await #expect(throws: SyncRefusal.self) { try await store.changeAccount("zoe.b", .deactivate(reason: "again"), at: "2026-12-02T09:01:00Z", by: "ops") }
        let newHash = try PasswordHash(password: "another long password", cost: .init(logN: 4, blockSize: 8, parallelism: 1)).encoded
        _ = try await store.changeAccount("zoe.b", .reactivate, at: "2026-12-03T09:00:00Z", by: "ops")
        let reset = try await store.changeAccount("zoe.b", .resetPassword(passwordHash: newHash), at: "2026-12-03T09:05:00Z", by: "ops")
        #expect(reset.state == .active && reset.deactivationReason == nil)
        #expect(reset.passwordHash == newHash && reset.passwordChangedAt == "2026-12-03T09:05:00Z" && reset.createdAt == "2026-12-01T09:00:00Z")
        #expect(PasswordHash(encoded: reset.passwordHash)?.verifies("another long password") == true)

        let events = try await store.accountEvents()
        #expect(events.map(\.action) == [.created, .created, .created, .deactivated, .reactivated, .passwordReset])
        #expect(events.map(\.username) == ["zoe.b", "amir", "twin", "zoe.b", "zoe.b", "zoe.b"])
        #expect(
            events[0]
                == AccountEvent(
                    at: "2026-12-01T09:00:00Z", username: "zoe.b", action: .created, by: "root", fullName: "Zoë Brown", role: .coordinator,
                    sites: ["S01", "S02"]))
        #expect(events[1].sites == ["*"] && events[1].role == .dataManager)
        #expect(events[3].reason == "left the study team" && events[3].by == "ops")
        // No event holds a password or its digest.
        #expect(!"\(events)".contains("scrypt"))

        // Accounts are never deleted; the events are append-only, whoever holds the database.
        for statement in [
            "DELETE FROM accounts WHERE username = 'amir'", "UPDATE account_events SET reason = 'edited'", "DELETE FROM account_events",
        ] {
            await #expect(throws: (any Error).self, "\(statement)") { try await StoreContents.execute(store, statement) }
        }
        #expect(try await store.accountEvents() == events)
        #expect(try await store.accounts().count == 3)
    }
}

extension StoreConformance {
    /// The audit trail's chains: every row a push or an account change writes is verified; a row
    /// changed, deleted or inserted by hand, once the database's own refusal is switched off as
    /// someone with a database shell could, breaks the chain at that row; rows from before the
    /// chains are counted, not verified.
    public static func auditChain(_ store: any SyncStore) async throws {
        for (replica, site) in [("c1", "S01"), ("c2", "S02")] {
            _ = try await store.enrolReplica(
                replica, tokenHash: "hash-\(replica)", principal: Principal(role: .site, site: site), label: replica, enrolledBy: "enrolment",
                limit: .max)
        }
        let now = HybridLogicalClock.systemMilliseconds()
        _ = try await push(
            store, "c1", site: "S01", ["c01", "c02", "c03"], status: "screening", at: "2026-12-01T10:00:00Z", seq: HLC(milliseconds: now - 3_000))
        _ = try await push(store, "c2", site: "S02", ["d01", "d02"], status: "screening", at: "2026-12-01T10:00:01Z", seq: HLC(milliseconds: now - 2_000))
        _ = try await push(store, "c1", site: "S01", ["c04", "c05"], status: "enrolled", at: "2026-12-01T10:00:02Z", seq: HLC(milliseconds: now - 1_000))
        let hash = try PasswordHash(password: "correct horse battery", cost: .init(logN: 4, blockSize: 8, parallelism: 1)).encoded
        _ = try await store.changeAccount(
            "ana", .create(fullName: "Ana Lima", role: .coordinator, sites: ["S01"], passwordHash: hash), at: "2026-12-01T09:00:00Z", by: "root")
        _ = try await store.changeAccount("ana", .deactivate(reason: "left"), at: "2026-12-01T09:01:00Z", by: "root")

        let intact = try await AuditVerification.run(store)
        #expect(intact.broken == nil)
        #expect(intact.verified == 9 && intact.beforeChain == 0)
        #expect(intact.chains.map(\.name) == ["site S01", "site S02", "accounts"])
        #expect(intact.chains.map(\.rows) == [5, 2, 2])

        // The database refuses the edit itself.
        await #expect(throws: (any Error).self) { try await StoreContents.execute(store, "UPDATE audit SET outcomes = 'a' WHERE record_id = 'c02'") }
        await #expect(throws: (any Error).self) { try await StoreContents.execute(store, "DELETE FROM audit WHERE record_id = 'c02'") }
        #expect(try await AuditVerification.run(store) == intact)

        // Someone who switches that refusal off (the file's owner, a database superuser) edits rows by hand.
        let sqlite = store is SQLiteSyncStore
        let switchOff =
            sqlite
            ? ["DROP TRIGGER audit_append_only_update", "DROP TRIGGER audit_append_only_delete", "DROP TRIGGER account_events_append_only_update"]
            : ["ALTER TABLE audit DISABLE TRIGGER audit_append_only", "ALTER TABLE account_events DISABLE TRIGGER account_events_append_only"]
        for statement in switchOff { try await StoreContents.execute(store, statement) }
        func audit(_ record: String) async throws -> (id: Int64, values: String) {
            let row = try #require(try await StoreContents.select(store, "SELECT id, new_values FROM audit WHERE record_id = '\(record)' ORDER BY id").first)
            guard case .integer(let id) = row[0], case .text(let values) = row[1] else { throw CancellationError() }
            return (id, values)
        }
        func brokenAt() async throws -> AuditVerification.Break? { try await AuditVerification.run(store).broken }

        // A value changed: broken at that row; put back, whole again.
        let c02 = try await audit("c02")
        try await StoreContents.execute(store, "UPDATE audit SET new_values = replace(new_values, 'screening', 'enrolled') WHERE id = \(c02.id)")
        #expect(
            try await brokenAt()
                == AuditVerification.Break(
                    chain: "site S01", table: "audit", id: c02.id,
                    problem: "does not match its chain: this row was changed, or a row before it was deleted or inserted"))
        try await StoreContents.execute(store, "UPDATE audit SET new_values = '\(c02.values)' WHERE id = \(c02.id)")
        #expect(try await AuditVerification.run(store) == intact)

        // A row deleted from the middle: broken at the next row of its site.
        let c03 = try await audit("c03")
        let next = try await StoreContents.count(store, "SELECT min(id) FROM audit WHERE site_id = 'S01' AND id > \(c03.id)")
        try await StoreContents.execute(store, "CREATE TABLE kept AS SELECT * FROM audit WHERE id = \(c03.id)")
        try await StoreContents.execute(store, "DELETE FROM audit WHERE id = \(c03.id)")
        #expect(try await brokenAt()?.id == Int64(next))
        try await StoreContents.execute(store, "INSERT INTO audit SELECT * FROM kept")
        #expect(try await AuditVerification.run(store) == intact)

        // The last row deleted: the store's head names a row that is gone.
        let d02 = try await audit("d02")
        try await StoreContents.execute(store, "DROP TABLE kept")
        try await StoreContents.execute(store, "CREATE TABLE kept AS SELECT * FROM audit WHERE id = \(d02.id)")
        try await StoreContents.execute(store, "DELETE FROM audit WHERE id = \(d02.id)")
        let tail = try await brokenAt()
        #expect(tail?.chain == "site S02" && tail?.problem.contains("rows after it were deleted") == true)
        try await StoreContents.execute(store, "INSERT INTO audit SELECT * FROM kept")
        #expect(try await AuditVerification.run(store) == intact)

        // A row inserted by hand, without a hash or with a made-up one.
        try await StoreContents.execute(store, "UPDATE kept SET id = 1000000, hash = NULL")
        try await StoreContents.execute(store, "INSERT INTO audit SELECT * FROM kept")
        #expect(
            try await brokenAt()
                == AuditVerification.Break(
                    chain: "site S02", table: "audit", id: 1_000_000, problem: "has no hash: it was inserted by hand, or its hash was removed"))
        try await StoreContents.execute(store, "UPDATE audit SET hash = '\(String(repeating: "ab", count: 32))' WHERE id = 1000000")
        #expect(try await brokenAt()?.id == 1_000_000)
        try await StoreContents.execute(store, "DELETE FROM audit WHERE id = 1000000")
        #expect(try await AuditVerification.run(store) == intact)

        // An account event changed.
        try await StoreContents.execute(store, "UPDATE account_events SET reason = 'retired' WHERE action = 'deactivated'")
        let account = try await brokenAt()
        #expect(account?.chain == "accounts" && account?.table == "account_events")
        try await StoreContents.execute(store, "UPDATE account_events SET reason = 'left' WHERE action = 'deactivated'")

        // A trail upgraded from a build before accounts: the rows it held have no hash and are
        // counted, not verified; the chains begin after them.
        try await StoreContents.execute(store, "UPDATE audit SET hash = NULL")
        try await StoreContents.execute(store, "UPDATE sites SET audit_head = NULL")
        let last = try await StoreContents.count(store, "SELECT max(id) FROM audit")
        try await StoreContents.execute(store, "UPDATE audit_chains SET last_unchained = \(last) WHERE tbl = 'audit'")
        let upgraded = try await AuditVerification.run(store)
        #expect(upgraded.broken == nil && upgraded.beforeChain == 7 && upgraded.verified == 2)
        // A later push continues the chains.
        _ = try await push(store, "c2", site: "S02", ["d03"], status: "screening", at: "2026-12-01T10:00:03Z", seq: HLC(milliseconds: now - 500))
        let continued = try await AuditVerification.run(store)
        #expect(continued.broken == nil && continued.verified == upgraded.verified + 1)
    }
}
