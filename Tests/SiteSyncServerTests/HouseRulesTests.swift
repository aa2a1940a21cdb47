import Foundation
import SiteSyncCore
import SiteSyncRules
import SiteSyncServer
import Testing

/// The boundaries between targets that the package manifest cannot state by itself, and the one
/// place where the rules' refusals get their HTTP status.
@Suite("House rules")
struct HouseRulesTests {
    /// The package's root folder, from this file's path.
    private static let root = URL(filePath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The Swift files under `folder`, at any depth, by their path in it, with the modules each imports.
    private static func imports(under folder: String) throws -> [String: [String]] {
        let base = root.appendingPathComponent(folder)
        var found: [String: [String]] = [:]
        let files = try FileManager.default.subpathsOfDirectory(atPath: base.path).filter { $0.hasSuffix(".swift") }
        for file in files {
            let text = try String(contentsOf: base.appendingPathComponent(file), encoding: .utf8)
            found[file] = text.split(separator: "\n").compactMap { line in
                let words = line.split(separator: " ")
                guard let index = words.firstIndex(of: "import"), words[..<index].allSatisfy({ $0.hasPrefix("@") }), index + 1 < words.count else {
                    return nil
                }
                return String(words[index + 1])
            }
        }
        return found
    }

    @Test("The sync rules and the store ports import nothing but SiteSyncCore and the standard library's modules: no HTTP, no database library")
    func rulesImports() throws {
        let allowed: Set = ["SiteSyncCore", "Foundation", "Synchronization"]
        let files = try Self.imports(under: "rules")
        #expect(files.count >= 12 && files.keys.contains("Ports/SyncStore.swift"), "the rules' files are found, the ports' too: \(files.keys.sorted())")
        for (file, modules) in files {
            for module in modules { #expect(allowed.contains(module), "rules/\(file) imports \(module)") }
        }
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.contains(#".target(name: "SiteSyncRules", dependencies: ["SiteSyncCore"], path: "rules""#))
    }

    @Test("Each store is a target of its own that knows no HTTP and no other store")
    func storeImports() throws {
        let http = ["Hummingbird", "HummingbirdCore", "HummingbirdTLS", "HTTPTypes", "NIOHTTP1", "NIOHTTPTypes", "AsyncHTTPClient", "Mustache", "Prometheus"]
        for (folder, other) in [("stores/SQLite", "SiteSyncPostgresStore"), ("stores/Postgres", "SiteSyncSQLiteStore")] {
            let files = try Self.imports(under: folder)
            #expect(files.count >= 5, "\(folder): \(files.keys.sorted())")
            for (file, modules) in files {
                for module in modules {
                    #expect(!http.contains(module) && module != "SiteSyncServer" && module != other, "\(folder)/\(file) imports \(module)")
                }
            }
        }
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.contains(#"path: "stores/SQLite""#) && manifest.contains(#"path: "stores/Postgres""#))
    }

    @Test("Each refusal of the rules is answered with the HTTP status docs/PROTOCOL.md gives its code")
    func refusalStatuses() throws {
        let protocolText = try String(contentsOf: Self.root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        // `| 422 | `reason_required` | …`: the statuses documented for each code.
        var documented: [String: Set<Int>] = [:]
        for line in protocolText.split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, let status = Int(cells[0]) else { continue }
            for code in cells[1].split(separator: ",") {
                documented[code.trimmingCharacters(in: CharacterSet(charactersIn: " `")), default: []].insert(status)
            }
        }
        for code in ErrorCode.allCases {
            let status = ServerError(SyncRefusal(code, "A refusal.")).status.code
            let expected = try #require(documented[code.rawValue], "docs/PROTOCOL.md lists \(code.rawValue)")
            #expect(expected.contains(status), "\(code.rawValue): \(status), documented \(expected.sorted())")
        }
    }
}
