import SiteSyncCore

/// The case report forms of the IC19 CAR-T study in refractory lupus, as synced tables.
///
/// ```swift
/// let replica = try Replica.open(path: "sitesync.sqlite", schema: TrialSchema.current)
/// ```
public enum TrialSchema {
    /// The schema version this build records.
    public static let version = 1

    /// Every table of the trial at ``version``, plus the conflict log.
    public static let current = Schema(version: version, tables: [subjects, adverseEvents])

    /// Participants, from screening to the end of follow-up.
    public static let subjects = TableSchema(
        "subjects",
        summary: "Participants screened for the study",
        columns: [
            ColumnSchema("screening_no", .text(maxLength: 64), required: true, summary: "Screening number given by the site"),
            ColumnSchema("sex", .choice(["F", "M"]), summary: "Sex at birth"),
            ColumnSchema("birth_date", .date, summary: "Date of birth (YYYY-MM-DD)"),
            ColumnSchema(
                "status",
                .choice(["screening", "enrolled", "screen_failed", "withdrawn", "completed"]),
                required: true,
                default: .text("screening"),
                summary: "Where the participant stands in the study"
            ),
            ColumnSchema("consent_date", .date, summary: "Date the informed consent form was signed (YYYY-MM-DD)"),
        ]
    )

    /// Adverse events, graded by CTCAE 5.0 (CRS and ICANS by ASTCT 2019).
    public static let adverseEvents = TableSchema(
        "adverse_events",
        summary: "Adverse events reported for a participant",
        columns: [
            ColumnSchema("subject_id", .text(maxLength: 64), required: true, summary: "Id of the participant"),
            ColumnSchema("term", .text(maxLength: 500), required: true, summary: "Adverse event term"),
            ColumnSchema("onset_date", .date, summary: "Date of onset (YYYY-MM-DD)"),
            ColumnSchema("grade", .integer(1...5), summary: "Severity grade, CTCAE 5.0 (1-5)"),
            ColumnSchema("serious", .flag, summary: "Serious adverse event: 1 yes, 0 no"),
            ColumnSchema("outcome", .text(maxLength: 200), summary: "Outcome, e.g. recovered, recovering, fatal"),
        ]
    )
}
