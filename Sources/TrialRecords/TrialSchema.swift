import SiteSyncCore

/// The case report forms of the IC19 CAR-T study in refractory lupus, as synced tables.
///
/// ```swift
/// let replica = try Replica.open(path: "sitesync.sqlite", schema: TrialSchema.current)
/// ```
public enum TrialSchema {
    /// The schema version this build records.
    ///
    /// Version 1: `subjects`, `adverse_events`. Version 2: the full case report form (screenings,
    /// infusions, visits, and the subject and adverse event fields the protocol's rules need).
    public static let version = 2

    /// Every table of the trial at ``version``, plus the conflict log.
    public static let current = Schema(version: version, tables: [subjects, adverseEvents, screenings, infusions, visits])

    /// Participants, from screening to the end of follow-up.
    public static let subjects = TableSchema(
        "subjects",
        requiresReason: true,
        summary: "Participants screened for the study",
        columns: [
            ColumnSchema("screening_no", .text(maxBytes: 64), required: true, summary: "Screening number given by the site"),
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
            ColumnSchema("weight_kg", .real(1...500), since: 2, summary: "Body weight, kg (for creatinine clearance)"),
            ColumnSchema("childbearing_potential", .flag, since: 2, summary: "Woman of childbearing potential: 1 yes, 0 no"),
            ColumnSchema("survival_over_3_months", .flag, since: 2, summary: "Expected survival over 3 months, investigator's judgement: 1 yes, 0 no"),
        ]
    )

    /// Adverse events, graded by CTCAE 5.0 (CRS and ICANS by ASTCT 2019).
    public static let adverseEvents = TableSchema(
        "adverse_events",
        requiresReason: true,
        summary: "Adverse events reported for a participant",
        columns: [
            ColumnSchema("subject_id", .text(maxBytes: 64), required: true, summary: "Id of the participant"),
            ColumnSchema("term", .text(maxBytes: 500), required: true, summary: "Adverse event term"),
            ColumnSchema("onset_date", .date, summary: "Date of onset (YYYY-MM-DD)"),
            ColumnSchema("grade", .integer(1...5), summary: "Severity grade, CTCAE 5.0 (1-5)"),
            ColumnSchema("serious", .flag, summary: "Serious adverse event: 1 yes, 0 no"),
            ColumnSchema("outcome", .text(maxBytes: 200), summary: "Outcome, e.g. recovered, recovering, fatal"),
            ColumnSchema("category", .choice(["crs", "icans", "other"]), since: 2, summary: "crs, icans or other"),
            ColumnSchema("grading_scale", .choice(["CTCAE 5.0", "ASTCT 2019"]), since: 2, summary: "ASTCT 2019 for CRS and ICANS, CTCAE 5.0 otherwise"),
            ColumnSchema("end_date", .date, since: 2, summary: "Date the event resolved (YYYY-MM-DD)"),
            ColumnSchema("expected", .flag, since: 2, summary: "Listed by the protocol as not a DLT: 1 yes, 0 no"),
        ],
        checks: [
            RecordCheck("CRS and ICANS are graded by ASTCT 2019, other events by CTCAE 5.0", fields: ["category", "grading_scale"]) { record in
                guard case .text(let category)? = record["category"], case .text(let scale)? = record["grading_scale"] else { return nil }
                let expected = category == "other" ? "CTCAE 5.0" : "ASTCT 2019"
                guard scale != expected else { return nil }
                return ("grading_scale", "must be \(expected) for category \(category) (CRS and ICANS by ASTCT 2019, others by CTCAE 5.0); got \"\(scale)\"")
            },
            RecordCheck("CRS and ICANS grades are 1 to 4 (ASTCT 2019)", fields: ["category", "grade"]) { record in
                guard case .text(let category)? = record["category"], category != "other", case .integer(let grade)? = record["grade"], grade > 4
                else { return nil }
                return ("grade", "must be from 1 to 4 for \(category == "crs" ? "CRS" : "ICANS") (ASTCT 2019); got \(grade)")
            },
            RecordCheck("An adverse event ends on or after its onset", fields: ["onset_date", "end_date"]) { record in
                guard case .text(let onset)? = record["onset_date"], case .text(let end)? = record["end_date"], end < onset else { return nil }
                return ("end_date", "must be on or after the onset date; got \(end), onset \(onset)")
            },
        ],
        crossChecks: [
            CrossRecordCheck("An adverse event starts on or after the subject's informed consent") { record, lookup in
                guard case .text(let onset)? = record["onset_date"], case .text(let subject)? = record["subject_id"],
                    case .text(let consent)? = try lookup("subjects", subject)?["consent_date"], onset < consent
                else { return nil }
                return ("onset_date", "\(onset) is before the subject's informed consent on \(consent)")
            }
        ],
        derive: { written in
            // The grading scale is chosen by the category.
            guard written["grading_scale"] == nil, case .text(let category)? = written["category"] else { return [:] }
            return ["grading_scale": .text(category == "other" ? "CTCAE 5.0" : "ASTCT 2019")]
        }
    )

    /// One screening visit's measurements against the inclusion criteria.
    public static let screenings = TableSchema(
        "screenings",
        since: 2,
        requiresReason: true,
        summary: "Screening visits: disease activity, serology, treatment and organ function",
        columns: [
            ColumnSchema("subject_id", .text(maxBytes: 64), required: true, since: 2, summary: "Id of the participant"),
            ColumnSchema("date", .date, required: true, since: 2, summary: "Date of the screening visit (YYYY-MM-DD)"),
            ColumnSchema("sledai_2k", .integer(0...105), since: 2, summary: "SLEDAI-2000 disease activity score (0-105)"),
            ColumnSchema("ana_positive", .flag, since: 2, summary: "Anti-nuclear antibodies positive"),
            ColumnSchema("anti_dsdna_positive", .flag, since: 2, summary: "Anti-dsDNA antibodies positive"),
            ColumnSchema("anti_sm_positive", .flag, since: 2, summary: "Anti-Smith antibodies positive"),
            ColumnSchema("prednisone_mg_day", .real(0...1000), since: 2, summary: "Oral prednisone or equivalent, mg/day"),
            ColumnSchema("on_immunosuppressant_or_biologic", .flag, since: 2, summary: "Also on immunosuppressants and/or biologics"),
            ColumnSchema("neutrophils_1e9_per_l", .real(0...100), since: 2, summary: "Neutrophil count, 10^9/L"),
            ColumnSchema("platelets_1e9_per_l", .real(0...2000), since: 2, summary: "Platelets, 10^9/L"),
            ColumnSchema("hemoglobin_g_per_l", .real(0...300), since: 2, summary: "Haemoglobin, g/L"),
            ColumnSchema("alt_u_per_l", .real(0...10000), since: 2, summary: "ALT, U/L"),
            ColumnSchema("alt_uln", .real(1...1000), since: 2, summary: "ALT upper limit of normal, U/L"),
            ColumnSchema("ast_u_per_l", .real(0...10000), since: 2, summary: "AST, U/L"),
            ColumnSchema("ast_uln", .real(1...1000), since: 2, summary: "AST upper limit of normal, U/L"),
            ColumnSchema("tbil_umol_per_l", .real(0...2000), since: 2, summary: "Total bilirubin, µmol/L"),
            ColumnSchema("tbil_uln", .real(1...200), since: 2, summary: "Total bilirubin upper limit of normal, µmol/L"),
            ColumnSchema("gilbert_syndrome", .flag, since: 2, summary: "Gilbert syndrome"),
            ColumnSchema("creatinine_umol_per_l", .real(1...5000), since: 2, summary: "Serum creatinine, µmol/L"),
            ColumnSchema("creatinine_uln", .real(1...1000), since: 2, summary: "Creatinine upper limit of normal, µmol/L"),
            ColumnSchema("inr", .real(0.1...20), since: 2, summary: "International normalised ratio"),
            ColumnSchema("inr_uln", .real(0.5...5), since: 2, summary: "INR upper limit of normal"),
            ColumnSchema("pt_s", .real(1...300), since: 2, summary: "Prothrombin time, s"),
            ColumnSchema("pt_uln_s", .real(1...100), since: 2, summary: "Prothrombin time upper limit of normal, s"),
            ColumnSchema("lvef_pct", .real(0...100), since: 2, summary: "Left ventricular ejection fraction, %"),
            ColumnSchema("hemodynamically_stable", .flag, since: 2, summary: "Good haemodynamic stability"),
            ColumnSchema("spo2_pct", .real(0...100), since: 2, summary: "Finger pulse oxygen saturation without oxygen, %"),
            ColumnSchema("pregnancy_test", .choice(["negative", "positive", "not_applicable"]), since: 2, summary: "Blood pregnancy test"),
            ColumnSchema("lactating", .flag, since: 2, summary: "Lactating"),
            ColumnSchema("contraception_agreed", .flag, since: 2, summary: "Agrees to effective contraception until the last follow-up"),
            ColumnSchema("consent_signed", .flag, since: 2, summary: "Informed consent form signed by the participant or legal guardian"),
        ]
    )

    /// The single CAR-T infusion.
    public static let infusions = TableSchema(
        "infusions",
        since: 2,
        requiresReason: true,
        summary: "IC19 CAR-T cell infusions",
        columns: [
            ColumnSchema("subject_id", .text(maxBytes: 64), required: true, since: 2, summary: "Id of the participant"),
            ColumnSchema("date", .date, required: true, since: 2, summary: "Date of the infusion (YYYY-MM-DD)"),
            ColumnSchema("dose_cells_per_kg", .real(1...1e10), since: 2, summary: "Dose, CAR-T cells per kg of body weight"),
            ColumnSchema("lot", .text(maxBytes: 64), since: 2, summary: "Product lot number"),
        ],
        crossChecks: [
            CrossRecordCheck("Only an enrolled subject is infused") { record, lookup in
                guard case .text(let subject)? = record["subject_id"], let found = try lookup("subjects", subject),
                    case .text(let status)? = found["status"], status != "enrolled"
                else { return nil }
                return ("subject_id", "subject \(subject) is \(status), not enrolled; enrol the subject before recording an infusion")
            }
        ]
    )

    /// Follow-up visits.
    public static let visits = TableSchema(
        "visits",
        since: 2,
        requiresReason: true,
        summary: "Follow-up visits (D0, D7, D14, D28, M3, M6, …)",
        columns: [
            ColumnSchema("subject_id", .text(maxBytes: 64), required: true, since: 2, summary: "Id of the participant"),
            ColumnSchema("name", .text(maxBytes: 16), required: true, since: 2, summary: "Visit name, e.g. D0, D7, D14, D28, M3, M6"),
            ColumnSchema("date", .date, since: 2, summary: "Date of the visit (YYYY-MM-DD)"),
            ColumnSchema("sledai_2k", .integer(0...105), since: 2, summary: "SLEDAI-2000 disease activity score (0-105)"),
            ColumnSchema("notes", .text(maxBytes: 4000), since: 2, summary: "Free-text notes"),
        ]
    )
}
