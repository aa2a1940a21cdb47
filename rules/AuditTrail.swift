import SiteSyncCore

/// The audit trail's field changes that a filter selects, oldest first, read a page at a time
/// while they are iterated: an export of any size holds one page in memory.
///
/// A store hands one out inside ``ReviewStore/withAuditTrail(_:_:)``, reading every page from the
/// trail as it stood when the export began; the sequence is valid only inside that call.
public struct AuditTrail: AsyncSequence, Sendable {
    public typealias Element = AuditFieldChange

    /// One page of the trail: its rows' field changes, and the position of its last row, after which
    /// the next page starts.
    package struct Page: Sendable {
        package var changes: [AuditFieldChange]
        package var last: Int64

        package init(changes: [AuditFieldChange], last: Int64) {
            self.changes = changes
            self.last = last
        }
    }

    /// Reads the page of rows after the position given (0 at the start); nil past the last row.
    package typealias PageReader = @Sendable (_ after: Int64) async throws -> Page?

    private let readPage: PageReader

    package init(readPage: @escaping PageReader) {
        self.readPage = readPage
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let readPage: PageReader
        var page: [AuditFieldChange] = []
        var index = 0
        var after: Int64 = 0
        var finished = false

        public mutating func next() async throws -> AuditFieldChange? {
            while index == page.count {
                guard !finished, let next = try await readPage(after) else {
                    finished = true
                    page = []
                    index = 0
                    return nil
                }
                (page, index, after) = (next.changes, 0, next.last)
            }
            defer { index += 1 }
            return page[index]
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(readPage: readPage) }

    /// Audit rows a store reads per page.
    package static let pageRows = 2000
}
