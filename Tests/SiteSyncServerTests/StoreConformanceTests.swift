import GRDB
import SiteSyncRules
import SiteSyncSQLiteStore
import SiteSyncTestSupport
import Testing
import TrialRecords

/// The store conformance suite (``StoreConformance``) on every store.
@Suite("Store conformance")
struct StoreConformanceTests {
    private func store(_ kind: StoreKind) async throws -> any SyncStore {
        switch kind {
        case .sqlite: try SQLiteSyncStore(writer: DatabaseQueue(), schema: TrialSchema.current)
        case .postgres: try await PostgresTestDatabase.store()
        }
    }

    @Test("Conflicts are listed oldest detection first, then by id, in pages of any size; a page token no server gave is refused", arguments: StoreKind.all)
    func conflictOrderAndPages(kind: StoreKind) async throws {
        try await StoreConformance.conflictOrderAndPages(try await store(kind))
    }

    @Test("A site token reads its site, a reviewer every site, an admin none; what is out of scope is absent", arguments: StoreKind.all)
    func reviewScope(kind: StoreKind) async throws {
        try await StoreConformance.reviewScope(try await store(kind))
    }

    @Test("The audit trail is exported oldest first across pages, in one snapshot; filters select what they name", arguments: StoreKind.all)
    func auditTrail(kind: StoreKind) async throws {
        try await StoreConformance.auditTrail(try await store(kind))
    }

    @Test(
        "An enrolment retried with its credential is answered as the first; another credential, or one past the limit, writes nothing", arguments: StoreKind.all
    )
    func enrolment(kind: StoreKind) async throws {
        try await StoreConformance.enrolment(try await store(kind))
    }

    @Test(
        "Accounts: a username once, changes as the rules allow, each an event; the database refuses deleting accounts and editing events",
        arguments: StoreKind.all)
    func accounts(kind: StoreKind) async throws {
        try await StoreConformance.accounts(try await store(kind))
    }

    @Test(
        "The audit trail's chains verify; a row changed, deleted or inserted by hand breaks them at that row; rows before the chains are counted",
        arguments: StoreKind.all)
    func auditChain(kind: StoreKind) async throws {
        try await StoreConformance.auditChain(try await store(kind))
    }
}
