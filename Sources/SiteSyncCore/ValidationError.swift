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

        public var description: String {
            if let field { "\(table).\(field): \(message)" } else { "\(table): \(message)" }
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

    public var description: String {
        problems.map(\.description).joined(separator: "; ")
    }
}
