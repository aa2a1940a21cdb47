import Foundation

/// Where a command reads a password from: never its arguments, which other users of the machine
/// see in the process list and which shells keep in their history.
public enum PasswordInput {
    /// Why no password could be read.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads a password: the first line of `file` (`-`: standard input) when given; else, when
    /// standard input is a terminal, typed at `prompt` without echo (twice when `confirm`, which
    /// must match); else the first line of standard input. The line's end is not part of it.
    public static func read(file: String?, prompt: String, confirm: Bool = false) throws -> String {
        if let file, file != "-" {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw Failure(description: "Cannot read the password file \(file).")
            }
            return firstLine(String(decoding: data, as: UTF8.self))
        }
        guard file == nil, isatty(STDIN_FILENO) == 1 else {
            guard let line = Swift.readLine(strippingNewline: true) else {
                throw Failure(description: "No password on standard input: give it as one line.")
            }
            return line
        }
        let password = try typed(prompt)
        if confirm, try typed("Again, to confirm: ") != password {
            throw Failure(description: "The two passwords differ; nothing was changed.")
        }
        return password
    }

    /// A line typed at the terminal with its echo off, the prompt on standard error.
    private static func typed(_ prompt: String) throws -> String {
        FileHandle.standardError.write(Data(prompt.utf8))
        var saved = termios()
        let hasTerminal = tcgetattr(STDIN_FILENO, &saved) == 0
        if hasTerminal {
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        defer {
            if hasTerminal { tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved) }
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = Swift.readLine(strippingNewline: true) else { throw Failure(description: "No password was typed.") }
        return line
    }

    private static func firstLine(_ text: String) -> String {
        String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            .trimmingCharacters(in: CharacterSet(charactersIn: "\r"))
    }
}

/// Who runs a command on this machine: the login name of its user, for the audit trail of what
/// operators do at the server (`sitesync-server user …`).
public enum OperatingUser {
    /// The name of the process's effective user, else `uid N`.
    public static var name: String {
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name { return String(cString: name) }
        return "uid \(geteuid())"
    }
}
