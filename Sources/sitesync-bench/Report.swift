import Foundation
import SiteSyncCore
import Synchronization

/// Measurements printed as JSON lines as they come, and as a table at the end.
final class Report: Sendable {
    private let lines = Mutex<[(String, [(String, FieldValue)])]>([])

    func add(_ name: String, _ values: [String: FieldValue]) {
        let sorted = values.sorted { $0.key < $1.key }.map { ($0.key, Self.rounded($0.value)) }
        lines.withLock { $0.append((name, sorted)) }
        var object: [String: FieldValue] = ["name": .text(name)]
        for (key, value) in sorted { object[key] = value }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Written unbuffered, so each line shows as soon as it is measured, even into a file.
        FileHandle.standardOutput.write(try! encoder.encode(object) + Data("\n".utf8))
    }

    func printTable() {
        print("")
        let lines = lines.withLock { $0 }
        let width = lines.flatMap { $0.1.map(\.0.count) }.max() ?? 0
        for (name, values) in lines {
            print(name)
            for (key, value) in values {
                print("  " + key.padding(toLength: width + 2, withPad: " ", startingAt: 0) + (value.displayText ?? ""))
            }
        }
    }

    private static func rounded(_ value: FieldValue) -> FieldValue {
        // Two decimals: enough for a ratio near a target (0.48 is not 0.5) and for rates.
        if case .real(let real) = value { return .real((real * 100).rounded() / 100) }
        return value
    }
}
