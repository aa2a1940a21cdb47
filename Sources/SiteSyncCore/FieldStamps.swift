import Foundation

/// The stamps of every field of one record, stored as one default stamp plus the fields that differ.
///
/// A freshly inserted record has every field at the same stamp, so its metadata is a single stamp;
/// an edited field gets an override. This is what the one shadow row per record holds, on the
/// replica and on the server, and what a pulled row carries.
public struct FieldStamps: Equatable, Sendable {
    /// The stamp of every field not listed in ``overrides``.
    public var base: Stamp
    /// Fields whose stamp differs from ``base``.
    public var overrides: [String: Stamp]

    /// Creates the stamps of a record whose fields all share `base`, except `overrides`.
    public init(base: Stamp, overrides: [String: Stamp] = [:]) {
        self.base = base
        self.overrides = overrides
    }

    /// The stamp of `field`.
    public subscript(field: String) -> Stamp {
        get { overrides[field] ?? base }
        set {
            if newValue == base {
                overrides[field] = nil
            } else {
                overrides[field] = newValue
            }
        }
    }

    /// Rewrites the stamps so the most common one becomes the base, keeping the overrides small.
    public mutating func compact(fields: [String]) {
        guard !overrides.isEmpty else { return }
        var counts: [Stamp: Int] = [:]
        for field in fields { counts[self[field], default: 0] += 1 }
        guard let common = counts.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key.version < $1.key.version) })?.key,
            common != base
        else { return }
        let all = Dictionary(uniqueKeysWithValues: fields.map { ($0, self[$0]) })
        base = common
        overrides = all.filter { $0.value != common }
    }
}

extension FieldStamps {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// The overrides as stored in the shadow row's `fields` column: a JSON object, or nil when empty.
    public var overridesJSON: String? {
        guard !overrides.isEmpty else { return nil }
        // Encoding a dictionary of stamps cannot fail.
        return String(decoding: try! Self.encoder.encode(overrides), as: UTF8.self)
    }

    /// Reads the overrides stored in a shadow row's `fields` column.
    public static func overrides(fromJSON json: String?) throws -> [String: Stamp] {
        guard let json, !json.isEmpty else { return [:] }
        return try JSONDecoder().decode([String: Stamp].self, from: Data(json.utf8))
    }
}
