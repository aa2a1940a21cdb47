/// A write refused because a value breaks the schema; names every offending field and the rule it breaks.
public struct ValidationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One broken rule.
    public struct Problem: Equatable, Sendable, CustomStringConvertible {
        /// The table, for example `adverse_events`.
        public var table: String
        /// The field, or nil when the problem concerns the whole record or table.
        public var field: String?
        /// What is wrong, as a sentence fragment naming the rule.
        public var message: String
        /// The offending value as given (cut short), shown after the message to the person who
        /// typed it; the server leaves it out of what it answers and logs (``redacted``).
        public var got: String?

        /// Creates a problem. A `message` written `RULE; got VALUE` is taken apart into the rule
        /// and the value, as if `got` had been given.
        public init(table: String, field: String?, message: String, got: String? = nil) {
            self.table = table
            self.field = field
            if got == nil, let split = message.range(of: "; got ", options: .backwards) {
                self.message = String(message[..<split.lowerBound])
                self.got = String(message[split.upperBound...])
            } else {
                self.message = message
                self.got = got
            }
        }

        /// The names as they came, which may be a client's: each cut to 64 bytes, control
        /// characters escaped, so that a message never quotes much of its input.
        public var description: String {
            let table = TextRules.quotable(table, maxBytes: 64)
            let message = got.map { "\(self.message); got \(TextRules.quotable($0, maxBytes: 64))" } ?? self.message
            return if let field { "\(table).\(TextRules.quotable(field, maxBytes: 64)): \(message)" } else { "\(table): \(message)" }
        }
    }

    /// Every broken rule, in field order.
    public var problems: [Problem]

    /// Creates an error from its problems.
    public init(problems: [Problem]) {
        self.problems = problems
    }

    /// Creates an error with one problem.
    public init(table: String, field: String? = nil, _ message: String, got: String? = nil) {
        self.init(problems: [Problem(table: table, field: field, message: message, got: got)])
    }

    /// The same problems without the values that caused them: what the server answers and logs,
    /// so that no record value travels back or lands in a log.
    public var redacted: ValidationError {
        ValidationError(problems: problems.map { Problem(table: $0.table, field: $0.field, message: $0.message) })
    }

    /// The first 20 problems, and how many more there are.
    public var description: String {
        let shown = problems.prefix(20).map(\.description).joined(separator: "; ")
        return problems.count > 20 ? shown + "; and \(problems.count - 20) more problems" : shown
    }
}
