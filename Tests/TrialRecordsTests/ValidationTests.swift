import SiteSyncCore
import Testing
import TrialRecords

@Suite("Trial record validation")
struct ValidationTests {
    let schema = TrialSchema.current

    private func problems(_ table: String, _ values: [String: FieldValue], creating: Bool = false) -> [String] {
        do {
            _ = try schema.table(table).validate(values, creating: creating)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test(
        "Each broken rule is named with its field and rule",
        arguments: [
            ("adverse_events", "grade", FieldValue.integer(7), "adverse_events.grade: must be a whole number from 1 to 5; got 7"),
            ("adverse_events", "grade", .integer(0), "adverse_events.grade: must be a whole number from 1 to 5; got 0"),
            ("adverse_events", "grade", .text("3"), "adverse_events.grade: must be a whole number from 1 to 5; got \"3\""),
            ("adverse_events", "serious", .integer(2), "adverse_events.serious: must be 0 (no) or 1 (yes); got 2"),
            ("adverse_events", "onset_date", .text("2026-13-45"), "adverse_events.onset_date: must be a calendar date written YYYY-MM-DD; got \"2026-13-45\""),
            ("subjects", "birth_date", .text("2023-02-29"), "subjects.birth_date: must be a calendar date written YYYY-MM-DD; got \"2023-02-29\""),
            ("subjects", "sex", .text("X"), "subjects.sex: must be one of F, M; got \"X\""),
            ("subjects", "status", .text("cured"), "subjects.status: must be one of screening, enrolled, screen_failed, withdrawn, completed; got \"cured\""),
            ("subjects", "screening_no", .null, "subjects.screening_no: is required and cannot be empty"),
            ("subjects", "site_id", .text("S 01"), "subjects.site_id: a site id is 1 to 32 letters, digits, '-' or '_'; got \"S 01\""),
            (
                "subjects", "nickname", .text("x"),
                "subjects.nickname: is not a field of subjects; its fields are site_id, screening_no, sex, birth_date, status, consent_date, weight_kg, childbearing_potential, survival_over_3_months, _deleted"
            ),
            ("screenings", "sledai_2k", .integer(106), "screenings.sledai_2k: must be a whole number from 0 to 105; got 106"),
            ("screenings", "pregnancy_test", .text("pending"), "screenings.pregnancy_test: must be one of negative, positive, not_applicable; got \"pending\""),
            ("screenings", "spo2_pct", .real(101), "screenings.spo2_pct: must be a number from 0 to 100; got 101"),
            ("screenings", "date", .text("2026-02-30"), "screenings.date: must be a calendar date written YYYY-MM-DD; got \"2026-02-30\""),
            ("adverse_events", "category", .text("cardiac"), "adverse_events.category: must be one of crs, icans, other; got \"cardiac\""),
            ("adverse_events", "grading_scale", .text("CTCAE 4.0"), "adverse_events.grading_scale: must be one of CTCAE 5.0, ASTCT 2019; got \"CTCAE 4.0\""),
            ("infusions", "dose_cells_per_kg", .real(0), "infusions.dose_cells_per_kg: must be a number from 1 to 10000000000; got 0"),
            ("subjects", "weight_kg", .text("70kg"), "subjects.weight_kg: must be a number from 1 to 500; got \"70kg\""),
        ] as [(String, String, FieldValue, String)]
    )
    func ruleMessages(table: String, field: String, value: FieldValue, message: String) {
        #expect(problems(table, [field: value]) == [message])
    }

    @Test("Valid values pass, and a leap day is a date")
    func validValues() throws {
        let values = try schema.table("adverse_events").validate(
            ["grade": .integer(5), "serious": .integer(1), "onset_date": .text("2024-02-29"), "term": .text("CRS")], creating: false
        )
        #expect(values["grade"] == .integer(5))
    }

    @Test("A new record needs its required fields and gets its defaults")
    func creating() throws {
        #expect(
            problems("adverse_events", ["site_id": .text("S01")], creating: true) == [
                "adverse_events.subject_id: is required for a new record",
                "adverse_events.term: is required for a new record",
            ])
        let subject = try schema.table("subjects").validate(["site_id": .text("S01"), "screening_no": .text("S01-001")], creating: true)
        #expect(subject["status"] == .text("screening"))
    }

    @Test("An unknown table names the known ones")
    func unknownTable() {
        #expect(
            throws: ValidationError(table: "labs", "is not a known table; the tables are subjects, adverse_events, screenings, infusions, visits, conflicts")
        ) {
            try schema.table("labs")
        }
    }

    @Test("Typed input reports every problem at once")
    func parseReportsEverything() {
        #expect(throws: ValidationError.self) { try schema.table("subjects").parse([("sex", "X")]) }
        do {
            _ = try schema.table("adverse_events").parse([("grade", "7"), ("serious", "yes"), ("colour", "red"), ("onset_date", "2026-13-45")])
            Issue.record("expected a validation error")
        } catch {
            #expect(error.problems.map(\.field) == ["serious", "colour", "onset_date", "grade"])
        }
    }
}
