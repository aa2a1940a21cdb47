import SiteSyncCore

/// The field lists of a push's audit rows as JSON text, for a store that keeps them so: encoded
/// once per group of rows, since the rows of one pushed group share one list (the same array, so
/// telling it from the last one costs no comparison of its elements).
package struct AuditFieldsText {
    private var fields: [String] = []
    private var text = "[]"

    package init() {}

    /// The JSON array of `fields`.
    package mutating func text(of fields: [String]) -> String {
        if fields != self.fields {
            self.fields = fields
            text = JSONWriter.array(of: fields)
        }
        return text
    }
}
