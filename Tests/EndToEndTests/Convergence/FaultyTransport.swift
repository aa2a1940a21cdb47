import Foundation
import HTTPTypes
import SiteSyncClient
import SiteSyncCore
import SiteSyncTestSupport
import Synchronization

/// What the network does to one request, drawn from the history's seeded generator.
enum Fault: String, Sendable {
    /// Delivered and answered.
    case none
    /// The server handles the request, and the answer never arrives.
    case answerLost
    /// The request arrives twice (a proxy retrying); the second answer comes back.
    case sentTwice
    /// The connection drops half-way through the body: the server sees a truncated request.
    case resetMidBody
    /// An asynchronous push is accepted and applied, then the server restarts before the client
    /// reads the outcome: the new instance answers it from the store (a refusal, which only the
    /// old instance knew, is not found, and the client pushes again).
    case restartBeforeOutcome
}

/// The faults of a history: drawn in order from one seeded generator, switched off for the quiet round.
final class FaultPlan: Sendable {
    private let state: Mutex<(generator: SeededGenerator, enabled: Bool)>

    init(seed: UInt64) {
        state = Mutex((SeededGenerator(seed: seed), true))
    }

    func disable() { state.withLock { $0.enabled = false } }

    /// The next request's fault: most requests get through.
    func draw(body: Bool) -> Fault {
        state.withLock { state in
            guard state.enabled else { return .none }
            let roll = Int.random(in: 0..<100, using: &state.generator)
            switch roll {
            case 0..<8: return .answerLost
            case 8..<12: return .sentTwice
            case 12..<16: return body ? .resetMidBody : .answerLost
            case 16..<19: return body ? .restartBeforeOutcome : .none
            default: return .none
            }
        }
    }
}

/// Every pushed row the server answered for: the values it received (kept to check each is in the
/// record's history).
final class ReceivedPushes: Sendable {
    private let requests = Mutex<[PushRequest]>([])

    func record(_ request: PushRequest) { requests.withLock { $0.append(request) } }

    var all: [PushRequest] { requests.withLock { $0 } }
}

/// The replica's protocol over an ``InProcessServer``, with the faults of a ``FaultPlan``; the
/// requests and answers are the bytes ``HTTPTransport`` would send and read.
struct FaultyTransport: SyncTransport {
    let server: InProcessServer
    let replica: Replica
    let faults: FaultPlan
    let received: ReceivedPushes

    private var headers: HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json", .authorization: "Bearer \(replica.identity?.token ?? "")"]
        headers[HTTPField.Name(SyncProtocol.protocolHeader)!] = String(SyncProtocol.version)
        headers[HTTPField.Name(SyncProtocol.schemaHeader)!] = String(replica.schema.version)
        return headers
    }

    private static let dropped = SyncError.unreachable("in-process server", "the connection dropped")

    func enrol(_ request: EnrolRequest) async throws -> EnrolResponse {
        let body = Array(try JSONEncoder().encode(request))
        let answer = try await server.execute(.post, SyncProtocol.replicasPath, headers: headers, body: body)
        if faults.draw(body: false) == .answerLost { throw Self.dropped }
        return try decode(answer)
    }

    func push(_ request: PushRequest) async throws -> PushResponse {
        let body = try request.wireJSON()
        switch faults.draw(body: true) {
        case .none:
            return try await pushOnce(request, body)
        case .answerLost:
            _ = try await pushOnce(request, body)
            throw Self.dropped
        case .sentTwice:
            _ = try? await pushOnce(request, body)
            return try await pushOnce(request, body)
        case .resetMidBody:
            let answer = try await server.execute(.post, SyncProtocol.pushPath, headers: headers, body: Array(body.prefix(body.count / 2)))
            // 400; or 503 when the store failed first (reading the credential, on a failing PostgreSQL).
            guard answer.status == 400 || answer.status == 503 else {
                throw SyncError.invalidResponse("a truncated push was answered \(answer.status), not 400")
            }
            throw Self.dropped
        case .restartBeforeOutcome:
            var asynchronous = headers
            asynchronous[HTTPField.Name(SyncProtocol.preferHeader)!] = SyncProtocol.respondAsync
            let accepted = try await server.execute(.post, SyncProtocol.pushPath, headers: asynchronous, body: body)
            guard accepted.status == 202, let location = Self.location(accepted.body) else { return try decode(accepted) }
            // Applied before the restart (awaited here), so the replay is deterministic.
            let applied = try await server.execute(.get, location, headers: headers)
            try await server.restart()
            let after = try await server.execute(.get, location, headers: headers)
            // On a failing PostgreSQL, reading the outcome back from the store after the restart can
            // fail too: 503, which the laptop retries like any.
            if after.status == 503 { try refuse(after) }
            guard applied.status == 200 else {
                if after.status == 200 {
                    // Applied; only reading its outcome failed before the restart (503).
                    let answer: PushResponse = try decode(after)
                    received.record(request)
                    return answer
                }
                guard after.status == 404 else { throw SyncError.invalidResponse("a refusal's outcome survived a restart (\(after.status))") }
                return try await pushOnce(request, body)
            }
            let first: PushResponse = try decode(applied)
            let answer: PushResponse = try decode(after)
            guard answer.acked == first.acked, answer.applied == first.applied, answer.conflicts == first.conflicts else {
                throw SyncError.invalidResponse("after a restart the outcome read \(answer), not \(first)")
            }
            received.record(request)
            return answer
        }
    }

    /// One push as `HTTPTransport` makes it: accepted asynchronously, its outcome then collected.
    private func pushOnce(_ request: PushRequest, _ body: [UInt8]) async throws -> PushResponse {
        var asynchronous = headers
        asynchronous[HTTPField.Name(SyncProtocol.preferHeader)!] = SyncProtocol.respondAsync
        var answer = try await server.execute(.post, SyncProtocol.pushPath, headers: asynchronous, body: body)
        if answer.status == 202, let location = Self.location(answer.body) {
            answer = try await server.execute(.get, location, headers: headers)
        }
        let response: PushResponse = try decode(answer)
        received.record(request)
        return response
    }

    func pull(_ request: PullRequest) async throws -> PullResponse {
        let query = request.queryItems.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let fault = faults.draw(body: false)
        let answer = try await server.execute(.get, "\(SyncProtocol.pullPath)?\(query)", headers: headers)
        if fault == .answerLost { throw Self.dropped }
        try refuse(answer)
        do {
            return try answer.body.withUnsafeBytes { try PullResponse(wireJSON: $0) }
        } catch {
            throw SyncError.invalidResponse(String(describing: error))
        }
    }

    private static func location(_ body: [UInt8]) -> String? {
        (try? JSONDecoder().decode([String: String].self, from: Data(body)))?["location"]
    }

    private func refuse(_ answer: (status: Int, body: [UInt8])) throws {
        guard !(200..<300).contains(answer.status) else { return }
        let error = try? JSONDecoder().decode(ErrorResponse.self, from: Data(answer.body))
        throw SyncError.refused(status: answer.status, code: error?.error.code ?? "http_\(answer.status)", message: error?.error.message ?? "")
    }

    private func decode<T: Decodable>(_ answer: (status: Int, body: [UInt8])) throws -> T {
        try refuse(answer)
        return try JSONDecoder().decode(T.self, from: Data(answer.body))
    }
}
