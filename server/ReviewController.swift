import Foundation
import Hummingbird
import SiteSyncCore
import SiteSyncRules

/// The review endpoints: conflicts and record histories, scoped by token (docs/PROTOCOL.md, "Review").
struct ReviewController {
    let store: any ReviewStore

    func addRoutes(to group: RouterGroup<SyncRequestContext>) {
        group.get("conflicts", use: list)
        group.get("conflicts/:id", use: show)
        group.get("records/:table/:id/history", use: history)
    }

    @Sendable func list(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var filter = ConflictFilter(status: nil)
        switch query.get("status") ?? ConflictStatus.open.rawValue {
        case "all": filter.status = nil
        case let named:
            guard let status = ConflictStatus(rawValue: named) else {
                throw ServerError.validation("status must be open, resolved or all; got \"\(TextRules.quotable(named))\".")
            }
            filter.status = status
        }
        filter.site = try lookup(query.get("site"), "site")
        filter.table = try lookup(query.get("table"), "table")
        filter.after = try lookup(query.get("after"), "after")
        if let limit = query.get("limit") {
            guard let value = Int(limit), (1...1000).contains(value) else {
                throw ServerError.validation("limit must be a whole number from 1 to 1000; got \"\(TextRules.quotable(limit))\".")
            }
            filter.limit = value
        }
        return try JSONResponse.ok(try await store.conflicts(filter, principal: context.requirePrincipal()))
    }

    /// Text from the URL that the store looks up, which follows the rules of stored text: a
    /// NUL, which PostgreSQL refuses in text, is a bad request, not a server error.
    private func lookup(_ value: String?, _ name: String) throws -> String? {
        try value.map { try lookup($0, name) }
    }

    private func lookup(_ value: String, _ name: String) throws -> String {
        if let problem = TextRules.problem(value, maxBytes: Self.maximumLookupBytes) { throw ServerError.validation("\(name) \(problem).") }
        return value
    }

    /// The longest site, table, id or cursor a review request may name.
    static let maximumLookupBytes = 1024

    @Sendable func show(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let id = try lookup(context.parameters.require("id"), "The conflict id")
        guard let detail = try await store.conflict(id: id, principal: context.requirePrincipal()) else {
            throw ServerError(.notFound, .notFound, "No conflict \(id) that this token may see.")
        }
        return try JSONResponse.ok(detail)
    }

    @Sendable func history(_ request: Request, context: SyncRequestContext) async throws -> Response {
        let table = try lookup(context.parameters.require("table"), "The table")
        let id = try lookup(context.parameters.require("id"), "The record id")
        guard let history = try await store.history(table: table, id: id, principal: context.requirePrincipal()) else {
            throw ServerError(.notFound, .notFound, "No record \(id) in \(table) that this token may see.")
        }
        return try JSONResponse.ok(history)
    }
}

/// JSON success responses.
enum JSONResponse {
    static func ok(_ value: some Encodable) throws -> Response {
        ok(bytes: try JSONEncoder().encode(value))
    }

    /// A response whose JSON text is already written.
    static func ok(bytes: some Sequence<UInt8>) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
