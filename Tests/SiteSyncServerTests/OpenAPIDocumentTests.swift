import Foundation
import SiteSyncCore
import Testing

/// docs/openapi.yaml against the code. `.ci/api-check` checks it against a live server with
/// schemathesis; these checks catch, in every `swift test`, a code or an endpoint added to the
/// server and not to the description.
@Suite("The OpenAPI description")
struct OpenAPIDocumentTests {
    private static let document: String = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/openapi.yaml")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    @Test("It lists every error code the server answers with")
    func errorCodes() throws {
        let line = try #require(Self.document.range(of: "enum: [invalid_json").map { Self.document[$0.lowerBound...] })
        let listed = Set(line.prefix { $0 != "]" }.dropFirst("enum: [".count).split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        #expect(listed == Set(ErrorCode.allCases.map(\.rawValue)))
    }

    @Test("It describes every endpoint")
    func endpoints() {
        let paths = [
            "/healthz", "/readyz", "/metrics", "/v1/replicas", SyncProtocol.pushPath, SyncProtocol.pushPath + "/{id}", SyncProtocol.pullPath, "/v1/conflicts",
            "/v1/conflicts/{id}", "/v1/records/{table}/{id}/history", SyncProtocol.signInPath, SyncProtocol.peopleStatusPath,
        ]
        for path in paths {
            #expect(Self.document.contains("\n  \(path):\n"), "\(path)")
        }
        #expect(Self.document.hasPrefix("openapi: 3.1"))
    }
}
