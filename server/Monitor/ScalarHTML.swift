import Mustache

/// HTML escaping by Unicode scalar, for every value the monitoring page renders.
///
/// swift-mustache's own HTML escaping compares whole `Character`s, that is grapheme clusters: a
/// `<` behind U+0600 (a prepended concatenation mark) or a `>` or `"` before a combining mark is one
/// cluster with its neighbour, matches nothing, and is written raw, so a site user could place
/// markup (a `<meta http-equiv=refresh>`, a `<style>`) on pages that monitors of every site open.
/// Each template selects this content type with the pragma `{{% CONTENT_TYPE: SITESYNC_HTML }}`.
struct ScalarHTMLContentType: MustacheContentType {
    /// The name the templates' pragma uses.
    static let name = "SITESYNC_HTML"

    func escapeText(_ text: String) -> String {
        Self.escape(text)
    }

    static func escape(_ text: String) -> String {
        guard
            text.utf8.contains(where: {
                $0 == UInt8(ascii: "<") || $0 == UInt8(ascii: ">") || $0 == UInt8(ascii: "&") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "'")
            })
        else { return text }
        var escaped = String.UnicodeScalarView()
        escaped.reserveCapacity(text.utf8.count + 16)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "<": escaped.append(contentsOf: "&lt;".unicodeScalars)
            case ">": escaped.append(contentsOf: "&gt;".unicodeScalars)
            case "&": escaped.append(contentsOf: "&amp;".unicodeScalars)
            case "\"": escaped.append(contentsOf: "&quot;".unicodeScalars)
            case "'": escaped.append(contentsOf: "&#39;".unicodeScalars)
            default: escaped.append(scalar)
            }
        }
        return String(escaped)
    }
}
