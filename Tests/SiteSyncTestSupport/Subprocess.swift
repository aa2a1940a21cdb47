import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process for tests, started with `posix_spawn` directly rather than Foundation's `Process`.
///
/// On Linux, `Process.run()` in the Foundation that Swift 6.3 ships scans `/proc/self/fd` and copies
/// 256 bytes out of each directory entry, which are 24 bytes long
/// (swiftlang/swift-corelibs-foundation#5472, fixed after 6.3). Once the process holds more
/// descriptors than fill glibc's 32 KiB directory buffer (about 1,360), the copy can run off the
/// end of the heap and the whole test process dies with "Bad pointer dereference". The suite holds
/// up to 1,720 at its busiest (the flood's idle sockets beside the PostgreSQL pools), and it crashed
/// so once. Here the child closes every descriptor above standard error itself
/// (`posix_spawn_file_actions_addclosefrom_np`), and nothing is scanned.
public final class Subprocess: Sendable {
    /// The child's process id.
    public let processIdentifier: pid_t
    private let state = Mutex<(status: Int32?, waiting: [CheckedContinuation<Int32, Never>])>((nil, []))

    /// Starts `executable` with `arguments`.
    ///
    /// - Parameters:
    ///   - directory: the child's working directory; nil keeps this process's.
    ///   - environment: the child's whole environment; nil passes this process's.
    ///   - standardInput, standardOutput, standardError: descriptors the child gets as 0, 1 and 2;
    ///     nil is `/dev/null`. The caller keeps and closes its own copies.
    public init(
        _ executable: String, _ arguments: [String], directory: String? = nil, environment: [String: String]? = nil,
        standardInput: Int32? = nil, standardOutput: Int32? = nil, standardError: Int32? = nil
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(STDIN_FILENO, standardInput), (STDOUT_FILENO, standardOutput), (STDERR_FILENO, standardError)] {
            if let source {
                try Self.check(posix_spawn_file_actions_adddup2(&actions, source, target), "dup2")
            } else {
                try Self.check(
                    posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == STDIN_FILENO ? O_RDONLY : O_WRONLY, 0), "open /dev/null")
            }
        }
        try Self.check(Self.closeFrom(&actions, 3), "closefrom")
        if let directory { try Self.check(Self.chdir(&actions, directory), "chdir \(directory)") }

        let environment = environment ?? ProcessInfo.processInfo.environment
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        try Self.check(posix_spawn(&pid, executable, &actions, nil, argv, envp), executable)
        processIdentifier = pid
        // A thread of its own per child waits for it (``Blocking``), so that `exit()` blocks no pool.
        Thread { [self, pid] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            // Exit code, or 128 plus the signal that ended it, as a shell reports it.
            let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            let waiting = state.withLock { state in
                state.status = code
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume(returning: code) }
        }.start()
    }

    /// Sends SIGTERM.
    public func terminate() {
        kill(processIdentifier, SIGTERM)
    }

    /// Waits until the child has exited; its exit code, or 128 plus the signal that ended it.
    @discardableResult
    public func exit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.withLock { state -> Int32? in
                if state.status == nil { state.waiting.append(continuation) }
                return state.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Runs `executable` to its end with `input` on its standard input; its exit code and output.
    public static func run(
        _ executable: String, _ arguments: [String], directory: String? = nil, environment: [String: String]? = nil, input: Data? = nil
    ) async throws -> (status: Int32, stdout: Data, stderr: Data) {
        _ = ignoreBrokenPipes
        let (stdin, stdout, stderr) = (try Channel(), try Channel(), try Channel())
        let child: Subprocess
        do {
            child = try Subprocess(
                executable, arguments, directory: directory, environment: environment,
                standardInput: input == nil ? nil : stdin.read, standardOutput: stdout.write, standardError: stderr.write
            )
        } catch {
            for fd in [stdin.read, stdin.write, stdout.read, stdout.write, stderr.read, stderr.write] { close(fd) }
            throw error
        }
        for fd in [stdin.read, stdout.write, stderr.write] { close(fd) }
        async let written: Void = Blocking.run { [fd = stdin.write] in
            input?.withUnsafeBytes { bytes in _ = Glibc.write(fd, bytes.baseAddress, bytes.count) }
            close(fd)
        }
        async let out = Blocking.run { [fd = stdout.read] in Channel.readAll(fd) }
        async let err = Blocking.run { [fd = stderr.read] in Channel.readAll(fd) }
        let output = await (out, err)
        await written
        return (await child.exit(), output.0, output.1)
    }

    /// A child that stops reading its input early must not kill the test process with SIGPIPE.
    private static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

    /// A pipe whose ends are closed on `exec`; the child gets its end through `dup2`, and closes
    /// every other descriptor anyway.
    struct Channel {
        let read: Int32
        let write: Int32

        init() throws {
            var fds: [Int32] = [0, 0]
            try Subprocess.check(pipe(&fds) == 0 ? 0 : errno, "pipe")
            (read, write) = (fds[0], fds[1])
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }

        /// Reads `fd` to its end and closes it.
        static func readAll(_ fd: Int32) -> Data {
            defer { close(fd) }
            var data = Data()
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = Glibc.read(fd, &buffer, buffer.count)
                if count > 0 {
                    data.append(contentsOf: buffer[0..<count])
                } else if count == 0 || errno != EINTR {
                    return data
                }
            }
        }
    }

    private static func check(_ code: Int32, _ what: String) throws {
        guard code == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO, userInfo: [NSLocalizedDescriptionKey: "\(what): \(String(cString: strerror(code)))"])
        }
    }

    // glibc 2.34 and 2.29 have these, but Swift's Glibc module does not declare them.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let closeFromFunction = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: CloseFrom.self) }
    private static let changeDirectoryFunction = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: ChangeDirectory.self) }

    private static func closeFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ fd: Int32) -> Int32 {
        closeFromFunction?(actions, fd) ?? ENOSYS
    }

    private static func chdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: String) -> Int32 {
        changeDirectoryFunction?(actions, path) ?? ENOSYS
    }
}
