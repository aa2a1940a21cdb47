import Foundation
import Hummingbird
import SiteSyncCore

extension Request {
    /// The whole body, refused with `413 body_too_large` past `limit` bytes.
    func collectBody(limit: Int) async throws -> ByteBuffer {
        do {
            return try await body.collect(upTo: limit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw ServerError.bodyTooLarge(limit: limit)
        }
    }

    /// Decodes a small JSON message with Foundation's decoder; a body that is not one is `400 invalid_json`.
    /// The body is checked first as the bulk messages are (``JSONReader/checkWellFormed(_:)``):
    /// a member given twice, or nesting past 64, is refused the same way on every endpoint.
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        let buffer = try await collectBody(limit: limit)
        do {
            try buffer.withUnsafeReadableBytes { bytes throws(JSONReadError) in try JSONReader.checkWellFormed(bytes) }
        } catch {
            throw ServerError.invalidJSON("\(error).")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw ServerError.invalidJSON(Self.describe(error))
        }
    }

    /// A short description of a decoding error: where and what, never the offending value.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return path.isEmpty ? "" : " at \(TextRules.quotable(path))"
        }
        switch error {
        case .dataCorrupted(let context): return "malformed JSON\(path(context))."
        case .keyNotFound(let key, let context): return "missing \"\(key.stringValue)\"\(path(context))."
        case .typeMismatch(let type, let context): return "expected \(type)\(path(context))."
        case .valueNotFound(let type, let context): return "expected \(type)\(path(context)), found null."
        @unknown default: return "it does not match the message format."
        }
    }
}
