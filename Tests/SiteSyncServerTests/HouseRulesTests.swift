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

    @Test("The sync rules import nothing but SiteSyncCore and the standard library's modules: no HTTP, no database library")
    func rulesImports() throws {
        let allowed: Set = ["SiteSyncCore", "Foundation", "Synchronization"]
        let folder = Self.root.appendingPathComponent("rules")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count >= 8, "the rules' files are found: \(files)")
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ")
                guard let index = words.firstIndex(of: "import"), words[..<index].allSatisfy({ $0.hasPrefix("@") }), index + 1 < words.count else { continue }
                let module = String(words[index + 1])
                #expect(allowed.contains(module), "rules/\(file) imports \(module)")
            }
        }
        let manifest = try String(contentsOf: Self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        #expect(manifest.contains(#".target(name: "SiteSyncRules", dependencies: ["SiteSyncCore"], path: "rules""#))
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
