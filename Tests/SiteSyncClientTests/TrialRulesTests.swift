import Foundation
import SiteSyncClient
import SiteSyncCore
import Testing
import TrialRecords

@Suite("Trial rules at write time")
struct TrialRulesTests {
    private func event(_ values: [String: FieldValue]) -> [String: FieldValue] {
        ["subject_id": .text("s1"), "term": .text("Cytokine release syndrome")].merging(values) { $1 }
    }

    @Test("CRS and ICANS take ASTCT 2019 grades 1-4; other events CTCAE 5.0")
    func gradingScale() throws {
        let replica = try makeReplica()
        #expect(
            throws: ValidationError(
                table: "adverse_events", field: "grading_scale",
                "must be ASTCT 2019 for category crs (CRS and ICANS by ASTCT 2019, others by CTCAE 5.0); got \"CTCAE 5.0\"")
        ) {
            try replica.put("adverse_events", event(["category": .text("crs"), "grading_scale": .text("CTCAE 5.0"), "grade": .integer(2)]))
        }
        #expect(throws: ValidationError(table: "adverse_events", field: "grade", "must be from 1 to 4 for ICANS (ASTCT 2019); got 5")) {
            try replica.put("adverse_events", event(["category": .text("icans"), "grading_scale": .text("ASTCT 2019"), "grade": .integer(5)]))
        }
        // The scale is chosen by the category when not given, and a CRS grade 5 is refused either way
        #expect(throws: ValidationError(table: "adverse_events", field: "grade", "must be from 1 to 4 for CRS (ASTCT 2019); got 5")) {
            try replica.put("adverse_events", event(["category": .text("crs"), "grade": .integer(5)]))
        }
        let derived = try replica.put("adverse_events", event(["category": .text("crs"), "grade": .integer(2)]))
        #expect(try replica.get("adverse_events", id: derived)?["grading_scale"] == .text("ASTCT 2019"))
        let other = try replica.put("adverse_events", event(["category": .text("other"), "grade": .integer(2)]))
        #expect(try replica.get("adverse_events", id: other)?["grading_scale"] == .text("CTCAE 5.0"))
        #expect(throws: Never.self) {
            try replica.put("adverse_events", event(["category": .text("other"), "grading_scale": .text("CTCAE 5.0"), "grade": .integer(5)]))
        }
        let id = try replica.put("adverse_events", event(["category": .text("crs"), "grading_scale": .text("ASTCT 2019"), "grade": .integer(4)]))
        #expect(throws: ValidationError.self) {
            try replica.put("adverse_events", id: id, ["grade": .integer(5)], reason: "Corrected from the source document")
        }
        #expect(try replica.get("adverse_events", id: id)?["grade"] == .integer(4), "nothing written")
    }

    @Test("An event ends on or after its onset, and starts on or after the subject's consent")
    func dates() throws {
        let replica = try makeReplica()
        #expect(throws: ValidationError(table: "adverse_events", field: "end_date", "must be on or after the onset date; got 2026-03-09, onset 2026-03-10")) {
            try replica.put("adverse_events", event(["onset_date": .text("2026-03-10"), "end_date": .text("2026-03-09")]))
        }
        let subject = try replica.put("subjects", ["screening_no": .text("S01-001"), "consent_date": .text("2026-02-01")])
        #expect(throws: ValidationError(table: "adverse_events", field: "onset_date", "2026-01-31 is before the subject's informed consent on 2026-02-01")) {
            try replica.put("adverse_events", ["subject_id": .text(subject), "term": .text("Rash"), "onset_date": .text("2026-01-31")])
        }
        #expect(throws: Never.self) {
            try replica.put("adverse_events", ["subject_id": .text(subject), "term": .text("Rash"), "onset_date": .text("2026-02-01")])
        }
        // A subject this laptop does not hold cannot be checked: records arrive in any order.
        #expect(throws: Never.self) {
            try replica.put("adverse_events", ["subject_id": .text("elsewhere"), "term": .text("Rash"), "onset_date": .text("2020-01-01")])
        }
    }

    @Test("Only an enrolled subject is infused")
    func infusion() throws {
        let replica = try makeReplica()
        let subject = try replica.put("subjects", ["screening_no": .text("S01-001")])
        #expect(
            throws: ValidationError(
                table: "infusions", field: "subject_id", "subject \(subject) is screening, not enrolled; enrol the subject before recording an infusion")
        ) {
            try replica.put("infusions", ["subject_id": .text(subject), "date": .text("2026-03-01")])
        }
        try replica.put("subjects", id: subject, ["status": .text("enrolled")], reason: "Corrected from the source document")
        #expect(throws: Never.self) { try replica.put("infusions", ["subject_id": .text(subject), "date": .text("2026-03-01")]) }
    }
}
