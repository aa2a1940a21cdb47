import Foundation
import SiteSyncTestSupport
import Testing

/// The client library's reference and its getting-started guide, built as DocC builds them.
@Suite("The client library's documentation")
struct DocumentationTests {
    /// The package's folder.
    private static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A toolchain executable: on the `PATH`, or beside the `swift` found there.
    private static func tool(_ name: String) throws -> String {
        let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        let beside = folders.map { URL(fileURLWithPath: $0).appendingPathComponent("swift").resolvingSymlinksInPath().deletingLastPathComponent().path }
        for folder in folders + beside where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
            return "\(folder)/\(name)"
        }
        throw CocoaError(.fileNoSuchFile, userInfo: [NSLocalizedDescriptionKey: "\(name) is not on the PATH nor beside swift: the toolchain ships it"])
    }

    @Test("Every public declaration of SiteSyncClient has a doc comment, and the DocC catalog with the getting-started guide builds without a warning")
    func clientReference() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("sitesync-docc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let products = Commands.products
        // The symbols of the module as built, with the C modules it imports.
        var arguments = [
            "-module-name", "SiteSyncClient", "-I", products.appendingPathComponent("Modules").path,
            "-minimum-access-level", "public", "-output-dir", work.path,
        ]
        #if arch(x86_64)
            arguments += ["-target", "x86_64-unknown-linux-gnu"]
        #else
            arguments += ["-target", "aarch64-unknown-linux-gnu"]
        #endif
        let builds = try FileManager.default.contentsOfDirectory(atPath: products.path).filter { $0.hasSuffix(".build") }
        let moduleMaps =
            builds.map { products.appendingPathComponent($0).appendingPathComponent("module.modulemap").path }
            .filter { FileManager.default.fileExists(atPath: $0) }
            + [Self.root.appendingPathComponent(".build/checkouts/GRDB.swift/Sources/GRDBSQLite/module.modulemap").path]
        for map in moduleMaps { arguments += ["-Xcc", "-fmodule-map-file=\(map)"] }
        let checkouts = Self.root.appendingPathComponent(".build/checkouts")
        if let walk = FileManager.default.enumerator(atPath: checkouts.path) {
            for case let path as String in walk where path.hasSuffix("/include") {
                arguments += ["-Xcc", "-I\(checkouts.appendingPathComponent(path).path)"]
            }
        }
        let extracted = try await Subprocess.run(try Self.tool("swift-symbolgraph-extract"), arguments)
        #expect(extracted.status == 0, "\(String(decoding: extracted.stderr, as: UTF8.self))")

        // Every public declaration written in the sources (not synthesized by the compiler) says what it is.
        let graph = try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("SiteSyncClient.symbols.json"))) as? [String: Any]
        let symbols = try #require(graph?["symbols"] as? [[String: Any]])
        #expect(symbols.count > 150)
        let undocumented = symbols.filter { $0["location"] != nil && $0["docComment"] == nil }
            .map { ($0["pathComponents"] as? [String] ?? []).joined(separator: ".") }
        #expect(undocumented.isEmpty, "public and undocumented: \(undocumented)")

        // The catalog: the landing page, the guide, every link and every parameter described.
        let converted = try await Subprocess.run(
            try Self.tool("docc"),
            [
                "convert", Self.root.appendingPathComponent("client/SiteSyncClient.docc").path,
                "--additional-symbol-graph-dir", work.path, "--output-path", work.appendingPathComponent("out").path,
                "--warnings-as-errors", "--fallback-display-name", "SiteSyncClient", "--fallback-bundle-identifier", "org.sitesync.client",
            ])
        #expect(converted.status == 0, "\(String(decoding: converted.stdout + converted.stderr, as: UTF8.self))")
        let guide = work.appendingPathComponent("out/data/documentation/sitesyncclient/gettingstarted.json")
        #expect(FileManager.default.fileExists(atPath: guide.path), "the getting-started article was not built")
    }
}
