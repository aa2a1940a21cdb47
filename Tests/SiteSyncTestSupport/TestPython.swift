import Foundation

/// The Python the tests run helpers with (Tests/Browser/monitor.py): `SITESYNC_TEST_PYTHON`, which
/// `.ci/run` makes a virtual environment with `prometheus_client` and `html5lib` for, else `python3`.
public enum TestPython {
    public static let path = ProcessInfo.processInfo.environment["SITESYNC_TEST_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/bin/python3"

    /// Tests/Browser/monitor.py.
    public static let browserScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Browser/monitor.py").standardized.path

    /// Whether `module` imports in ``path``. In CI (`CI` set) it is taken to be there, so that a
    /// missing module fails the tests that need it instead of skipping them.
    public static func has(_ module: String) -> Bool {
        if ProcessInfo.processInfo.environment["CI"] != nil { return true }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-c", "import \(module)"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
