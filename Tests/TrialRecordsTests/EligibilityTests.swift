import Foundation
import SiteSyncCore
import Testing

@testable import TrialRecords

@Suite("Eligibility")
struct EligibilityTests {
    /// A woman of 46 on 2026-11-01 who meets every criterion.
    static let subject: [String: FieldValue] = [
        "sex": .text("F"), "birth_date": .text("1980-06-15"), "weight_kg": .real(60),
        "childbearing_potential": .integer(1), "survival_over_3_months": .integer(1),
    ]
    static let screening: [String: FieldValue] = [
        "id": .text("scr-1"), "date": .text("2026-11-01"), "sledai_2k": .integer(10),
        "ana_positive": .integer(1), "anti_dsdna_positive": .integer(0), "anti_sm_positive": .integer(0),
        "prednisone_mg_day": .real(10), "on_immunosuppressant_or_biologic": .integer(0),
        "neutrophils_1e9_per_l": .real(2), "platelets_1e9_per_l": .real(150), "hemoglobin_g_per_l": .real(120),
        "alt_u_per_l": .real(30), "alt_uln": .real(40), "ast_u_per_l": .real(30), "ast_uln": .real(40),
        "tbil_umol_per_l": .real(10), "tbil_uln": .real(21), "gilbert_syndrome": .integer(0),
        "creatinine_umol_per_l": .real(70), "creatinine_uln": .real(100),
        "inr": .real(1.0), "inr_uln": .real(1.1), "pt_s": .real(12), "pt_uln_s": .real(13),
        "lvef_pct": .real(60), "hemodynamically_stable": .integer(1), "spo2_pct": .real(98),
        "pregnancy_test": .text("negative"), "lactating": .integer(0), "contraception_agreed": .integer(1), "consent_signed": .integer(1),
    ]

    private func evaluate(subject: [String: FieldValue] = [:], screening: [String: FieldValue] = [:]) -> EligibilityReport {
        Eligibility.evaluate(
            subjectID: "s1",
            subject: Self.subject.merging(subject) { $1 },
            screening: Self.screening.merging(screening) { $1 }
        )
    }

    @Test("The baseline subject passes every criterion")
    func eligible() {
        let report = evaluate()
        #expect(report.verdict == .eligible)
        #expect(report.criteria.count == 20)
        #expect(report.criteria.allSatisfy { $0.result == .pass }, "\(report.criteria.filter { $0.result != .pass })")
        #expect(report.screeningID == "scr-1")
        #expect(report["age"]?.measured == "46 years")
    }

    @Test(
        "Each screening threshold: at, just below and just above",
        arguments: [
            ("sledai", "sledai_2k", FieldValue.integer(8), CriterionResult.Outcome.pass), ("sledai", "sledai_2k", .integer(7), .fail),
            ("sledai", "sledai_2k", .integer(9), .pass),
            ("prednisone", "prednisone_mg_day", .real(7.5), .pass), ("prednisone", "prednisone_mg_day", .real(7.4), .fail),
            ("prednisone", "prednisone_mg_day", .real(7.6), .pass),
            ("prednisone", "prednisone_mg_day", .real(60), .pass), ("prednisone", "prednisone_mg_day", .real(59.9), .pass),
            ("prednisone", "prednisone_mg_day", .real(60.1), .fail),
            ("neutrophils", "neutrophils_1e9_per_l", .real(1), .pass), ("neutrophils", "neutrophils_1e9_per_l", .real(0.99), .fail),
            ("neutrophils", "neutrophils_1e9_per_l", .real(1.01), .pass),
            ("platelets", "platelets_1e9_per_l", .real(50), .pass), ("platelets", "platelets_1e9_per_l", .real(49.9), .fail),
            ("platelets", "platelets_1e9_per_l", .real(50.1), .pass),
            ("hemoglobin", "hemoglobin_g_per_l", .real(60), .pass), ("hemoglobin", "hemoglobin_g_per_l", .real(59.9), .fail),
            ("hemoglobin", "hemoglobin_g_per_l", .real(60.1), .pass),
            ("alt", "alt_u_per_l", .real(100), .pass), ("alt", "alt_u_per_l", .real(99.9), .pass), ("alt", "alt_u_per_l", .real(100.1), .fail),
            ("ast", "ast_u_per_l", .real(100), .pass), ("ast", "ast_u_per_l", .real(99.9), .pass), ("ast", "ast_u_per_l", .real(100.1), .fail),
            ("bilirubin", "tbil_umol_per_l", .real(31.5), .pass), ("bilirubin", "tbil_umol_per_l", .real(31.4), .pass),
            ("bilirubin", "tbil_umol_per_l", .real(31.6), .fail),
            ("inr", "inr", .real(1.65), .pass), ("inr", "inr", .real(1.64), .pass), ("inr", "inr", .real(1.66), .fail),
            ("pt", "pt_s", .real(19.5), .pass), ("pt", "pt_s", .real(19.4), .pass), ("pt", "pt_s", .real(19.6), .fail),
            ("lvef", "lvef_pct", .real(50), .pass), ("lvef", "lvef_pct", .real(49.9), .fail), ("lvef", "lvef_pct", .real(50.1), .pass),
            ("spo2", "spo2_pct", .real(92), .pass), ("spo2", "spo2_pct", .real(91.9), .fail), ("spo2", "spo2_pct", .real(92.1), .pass),
            ("hemodynamics", "hemodynamically_stable", .integer(0), .fail),
            ("consent", "consent_signed", .integer(0), .fail),
            ("lactation", "lactating", .integer(1), .fail),
            ("serology", "ana_positive", .integer(0), .fail),
            ("serology", "anti_dsdna_positive", .null, .pass),
            ("pregnancy", "pregnancy_test", .text("positive"), .fail),
            ("pregnancy", "contraception_agreed", .integer(0), .fail),
        ] as [(String, String, FieldValue, CriterionResult.Outcome)]
    )
    func thresholds(criterion: String, field: String, value: FieldValue, expected: CriterionResult.Outcome) {
        let report = evaluate(screening: [field: value])
        #expect(report[criterion]?.result == expected, "\(report[criterion].map { "\($0)" } ?? "none")")
        #expect(report.verdict == (expected == .pass ? .eligible : .ineligible))
    }

    @Test(
        "Age 18 to 70 inclusive at the screening date",
        arguments: [
            ("2008-11-01", CriterionResult.Outcome.pass, "18 years"), ("2008-11-02", .fail, "17 years"), ("2008-10-31", .pass, "18 years"),
            ("1956-11-01", .pass, "70 years"), ("1955-11-02", .pass, "70 years"), ("1955-11-01", .fail, "71 years"),
        ]
    )
    func age(birth: String, expected: CriterionResult.Outcome, measured: String) {
        let report = evaluate(subject: ["birth_date": .text(birth)])
        #expect(report["age"]?.result == expected)
        #expect(report["age"]?.measured == measured)
    }

    @Test("With immunosuppressants or biologics there is no prednisone minimum, but still a maximum")
    func immunosuppressantException() {
        #expect(evaluate(screening: ["prednisone_mg_day": .real(5), "on_immunosuppressant_or_biologic": .integer(1)])["prednisone"]?.result == .pass)
        #expect(evaluate(screening: ["prednisone_mg_day": .real(0), "on_immunosuppressant_or_biologic": .integer(1)])["prednisone"]?.result == .pass)
        #expect(evaluate(screening: ["prednisone_mg_day": .real(5), "on_immunosuppressant_or_biologic": .integer(0)])["prednisone"]?.result == .fail)
        #expect(evaluate(screening: ["prednisone_mg_day": .real(5), "on_immunosuppressant_or_biologic": .null])["prednisone"]?.result == .missing)
        #expect(evaluate(screening: ["prednisone_mg_day": .real(61), "on_immunosuppressant_or_biologic": .integer(1)])["prednisone"]?.result == .fail)
    }

    @Test("Gilbert syndrome raises the liver limits to 5 × ULN and bilirubin to 3 × ULN")
    func gilbertException() {
        let gilbert: [String: FieldValue] = ["gilbert_syndrome": .integer(1)]
        #expect(evaluate(screening: gilbert.merging(["alt_u_per_l": .real(200)]) { $1 })["alt"]?.result == .pass)
        #expect(evaluate(screening: gilbert.merging(["alt_u_per_l": .real(200.1)]) { $1 })["alt"]?.result == .fail)
        #expect(evaluate(screening: gilbert.merging(["ast_u_per_l": .real(200)]) { $1 })["ast"]?.result == .pass)
        #expect(evaluate(screening: gilbert.merging(["tbil_umol_per_l": .real(63)]) { $1 })["bilirubin"]?.result == .pass)
        #expect(evaluate(screening: gilbert.merging(["tbil_umol_per_l": .real(63.1)]) { $1 })["bilirubin"]?.result == .fail)
        #expect(
            evaluate(screening: ["alt_u_per_l": .real(150), "gilbert_syndrome": .null])["alt"]?.result == .missing, "between the limits, Gilbert status decides"
        )
    }

    @Test("Cockcroft-Gault matches hand-computed values, rounded half up to 0.01 mL/min")
    func cockcroftGault() {
        // Female, 50 years, 60 kg, creatinine 80 µmol/L: 90 × 60 × 0.85 × 88.4 / (72 × 80) = 405,756 / 5,760 = 70.44375
        let female = Eligibility.creatinineClearance(ageYears: 50, weightKilograms: 60, female: true, creatinineMicromolPerLitre: 80)
        #expect(female == Decimal(string: "70.44"))
        // Male, 30 years, 80 kg, creatinine 100 µmol/L: 110 × 80 × 88.4 / (72 × 100) = 777,920 / 7,200 = 108.0444…
        let male = Eligibility.creatinineClearance(ageYears: 30, weightKilograms: 80, female: false, creatinineMicromolPerLitre: 100)
        #expect(male == Decimal(string: "108.04"))
        // Half up at the boundary: 40.005 is 40.01
        #expect(Decimal(string: "40.005")!.rounded(2) == Decimal(string: "40.01"))
    }

    @Test(
        "Renal thresholds: creatinine 1.5 × ULN, then clearance 40 mL/min",
        arguments: [
            // ULN 100: at, just below and just above 1.5 × ULN (above falls back to the clearance, 38.98 mL/min)
            (100.0, 150.0, CriterionResult.Outcome.pass), (100, 149.9, .pass), (100, 150.1, .fail),
            // ULN 90, so the clearance decides: 147 µmol/L gives 40.04 mL/min, 147.3 gives 39.96
            (90, 147, .pass), (90, 147.3, .fail), (90, 135, .pass),
        ]
    )
    func renalThresholds(uln: Double, creatinine: Double, expected: CriterionResult.Outcome) {
        let report = evaluate(screening: ["creatinine_umol_per_l": .real(creatinine), "creatinine_uln": .real(uln)])
        #expect(report["renal"]?.result == expected, "\(report["renal"]?.measured ?? "")")
    }

    @Test("Renal: creatinine within 1.5 × ULN, else a clearance of at least 40 mL/min")
    func renal() {
        #expect(evaluate(screening: ["creatinine_umol_per_l": .real(150)])["renal"]?.result == .pass)
        // 151 µmol/L, age 46, 60 kg, female: CrCl 38.98 mL/min
        let low = evaluate(screening: ["creatinine_umol_per_l": .real(151)])["renal"]
        #expect(low?.result == .fail)
        #expect(low?.measured?.contains("CrCl 38.98 mL/min") == true, "\(low?.measured ?? "")")
        // The same creatinine at 70 kg: CrCl 45.48 mL/min
        let heavier = Eligibility.evaluate(
            subjectID: "s1", subject: Self.subject.merging(["weight_kg": .real(70)]) { $1 },
            screening: Self.screening.merging(["creatinine_umol_per_l": .real(151)]) { $1 })
        #expect(heavier["renal"]?.result == .pass)
        #expect(heavier["renal"]?.measured?.contains("CrCl 45.48 mL/min") == true)
        let noWeight = Eligibility.evaluate(
            subjectID: "s1", subject: Self.subject.merging(["weight_kg": .null]) { $1 },
            screening: Self.screening.merging(["creatinine_umol_per_l": .real(151)]) { $1 })
        #expect(noWeight["renal"]?.result == .missing)
    }

    @Test("Missing data is reported as missing, and the verdict is incomplete")
    func missingData() {
        let report = evaluate(screening: ["sledai_2k": .null, "inr_uln": .null])
        #expect(report["sledai"]?.result == .missing)
        #expect(report["inr"]?.result == .missing)
        #expect(report.verdict == .incomplete)
        let none = Eligibility.evaluate(subjectID: "s1", subject: Self.subject, screening: nil)
        #expect(none.verdict == .incomplete)
        #expect(none.screeningID == nil)
        #expect(none["age"]?.result == .missing)
        #expect(none["survival"]?.result == .pass, "the subject's own fields still count")
        // A failure outweighs missing data
        #expect(evaluate(screening: ["sledai_2k": .null, "spo2_pct": .real(80)]).verdict == .ineligible)
    }

    @Test("Expected survival over 3 months is the investigator's judgement on the subject")
    func survival() {
        #expect(evaluate(subject: ["survival_over_3_months": .integer(0)])["survival"]?.result == .fail)
        #expect(evaluate(subject: ["survival_over_3_months": .integer(0)]).verdict == .ineligible)
        #expect(evaluate(subject: ["survival_over_3_months": .null])["survival"]?.result == .missing)
    }

    @Test("Men and women without childbearing potential pass the pregnancy criteria")
    func childbearing() {
        #expect(
            evaluate(subject: ["sex": .text("M")], screening: ["pregnancy_test": .text("not_applicable"), "lactating": .null])["pregnancy"]?.result == .pass)
        #expect(evaluate(subject: ["sex": .text("M")], screening: ["lactating": .null])["lactation"]?.result == .pass)
        #expect(
            evaluate(subject: ["childbearing_potential": .integer(0)], screening: ["pregnancy_test": .text("not_applicable"), "contraception_agreed": .null])[
                "pregnancy"]?.result == .pass)
        #expect(evaluate(subject: ["childbearing_potential": .null])["pregnancy"]?.result == .missing)
    }
}
