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

        /// Creates a problem.
        public init(table: String, field: String?, message: String) {
            self.table = table
            self.field = field
            self.message = message
        }

        /// The names as they came, which may be a client's: each cut to 64 bytes, control
        /// characters escaped, so that a message never quotes much of its input.
        public var description: String {
            let table = TextRules.quotable(table, maxBytes: 64)
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
    public init(table: String, field: String? = nil, _ message: String) {
        self.init(problems: [Problem(table: table, field: field, message: message)])
    }

    /// The first 20 problems, and how many more there are.
    public var description: String {
        let shown = problems.prefix(20).map(\.description).joined(separator: "; ")
        return problems.count > 20 ? shown + "; and \(problems.count - 20) more problems" : shown
    }
}
