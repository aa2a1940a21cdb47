/// What a person's account lets them do at its sites (docs/SECURITY.md, "People and their accounts").
public enum PersonRole: String, Codable, Sendable, CaseIterable {
    /// Enters and corrects its sites' records, resolves their conflicts.
    case coordinator
    /// What a coordinator does; the role that will sign records.
    case investigator
    /// Resolves conflicts, at its sites or at every site; the role that will lock records.
    case dataManager = "data-manager"
    /// Reads records, conflicts and the monitoring page.
    case monitor

    /// Whether the role enters, corrects and deletes records.
    public var entersRecords: Bool { self == .coordinator || self == .investigator }

    /// Whether the role resolves conflicts.
    public var resolvesConflicts: Bool { self != .monitor }

    /// Whether the role may cover every site (`--site '*'`): people who review, not people who
    /// enter a site's records.
    public var mayCoverEverySite: Bool { self == .dataManager || self == .monitor }
}
