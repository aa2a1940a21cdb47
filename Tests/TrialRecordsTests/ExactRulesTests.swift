import Foundation
import SiteSyncCore
import SiteSyncTestSupport
import Testing
import TrialRecords

/// Every threshold of the inclusion criteria at its exact edge, for ULNs whose products in binary
/// floating point are inexact, and each rule against an exact rational reference over random inputs.
@Suite("Eligibility rules in exact arithmetic")
struct ExactRulesTests {
    private func evaluate(subject: [String: FieldValue] = [:], screening: [String: FieldValue]) -> EligibilityReport {
        Eligibility.evaluate(
            subjectID: "s1",
            subject: EligibilityTests.subject.merging(subject) { $1 },
            screening: EligibilityTests.screening.merging(screening) { $1 }
        )
    }

    /// A real as a person would type it: the double nearest the decimal `text`.
    private func real(_ text: String) -> FieldValue { .real(Double(text)!) }

    /// `value` moved by `cents` hundredths, as decimal text.
    private func shifted(_ value: Decimal, by cents: Int) -> String {
        NSDecimalNumber(decimal: value + Decimal(cents) / 100).stringValue
    }

    @Test("INR exactly 1.5 × ULN 1.2 passes, and the text shows the numbers compared")
    func inrRegression() {
        let report = evaluate(screening: ["inr": real("1.8"), "inr_uln": real("1.2")])
        #expect(report["inr"]?.result == .pass)
        #expect(report["inr"]?.measured == "1.8; 1.5 × ULN 1.2 = 1.8")
        #expect(1.8 > 1.5 * 1.2, "in doubles the product is below 1.8; the rule must not use doubles")
    }

    /// The "≤ k × ULN" criteria: field, ULN field, k, and the screening fields that make the edge decide.
    static let timesULN: [(id: String, value: String, uln: String, k: String, extra: [String: FieldValue])] = [
        ("inr", "inr", "inr_uln", "1.5", [:]),
        ("pt", "pt_s", "pt_uln_s", "1.5", [:]),
        ("alt", "alt_u_per_l", "alt_uln", "2.5", ["gilbert_syndrome": .integer(0)]),
        ("ast", "ast_u_per_l", "ast_uln", "2.5", ["gilbert_syndrome": .integer(0)]),
        ("bilirubin", "tbil_umol_per_l", "tbil_uln", "1.5", ["gilbert_syndrome": .integer(0)]),
        ("alt", "alt_u_per_l", "alt_uln", "5", ["gilbert_syndrome": .integer(1)]),
        ("ast", "ast_u_per_l", "ast_uln", "5", ["gilbert_syndrome": .integer(1)]),
        ("bilirubin", "tbil_umol_per_l", "tbil_uln", "3", ["gilbert_syndrome": .integer(1)]),
    ]

    @Test("Every k × ULN limit passes exactly at k × ULN and fails one hundredth above", arguments: ["1.1", "1.2", "0.7", "2.3", "40.1"])
    func timesULNEdges(uln: String) {
        for rule in Self.timesULN {
            let bound = Decimal(string: rule.k)! * Decimal(string: uln)!
            for (cents, expected) in [(-1, CriterionResult.Outcome.pass), (0, .pass), (1, .fail)] {
                let screening = rule.extra.merging([rule.value: real(shifted(bound, by: cents)), rule.uln: real(uln)]) { $1 }
                let result = evaluate(screening: screening)[rule.id]
                #expect(result?.result == expected, "\(rule.id) \(shifted(bound, by: cents)) against \(rule.k) × ULN \(uln): \(result?.measured ?? "")")
            }
        }
    }

    @Test("Creatinine exactly 1.5 × ULN passes without the clearance", arguments: ["1.1", "1.2", "0.7", "2.3", "40.1"])
    func creatinineEdge(uln: String) {
        let bound = Decimal(string: "1.5")! * Decimal(string: uln)!
        let report = evaluate(screening: ["creatinine_umol_per_l": real(shifted(bound, by: 0)), "creatinine_uln": real(uln)])
        #expect(report["renal"]?.result == .pass)
        #expect(report["renal"]?.measured?.contains("CrCl") == false, "decided by creatinine alone: \(report["renal"]?.measured ?? "")")
    }

    @Test("The clearance passes at 40.00 mL/min after rounding, and fails at 39.99")
    func clearanceEdge() {
        // Female, 46 years, 60 kg: CrCl = 423,789.6 / (72 × creatinine). ULN 90, so creatinine above 135 leaves it to the clearance.
        let at = evaluate(screening: ["creatinine_umol_per_l": real("147.15"), "creatinine_uln": real("90")])["renal"]
        #expect(at?.result == .pass)
        #expect(at?.measured?.contains("CrCl 40 mL/min (Cockcroft-Gault, rounded half up to 0.01 mL/min") == true, "\(at?.measured ?? "")")
        let below = evaluate(screening: ["creatinine_umol_per_l": real("147.17"), "creatinine_uln": real("90")])["renal"]
        #expect(below?.result == .fail)
        #expect(below?.measured?.contains("CrCl 39.99 mL/min") == true, "\(below?.measured ?? "")")
    }

    @Test(
        "Every ≥ and ≤ limit passes exactly at the limit and fails one unit beyond",
        arguments: [
            ("neutrophils", "neutrophils_1e9_per_l", "1", "0.99"), ("platelets", "platelets_1e9_per_l", "50", "49.99"),
            ("hemoglobin", "hemoglobin_g_per_l", "60", "59.99"), ("lvef", "lvef_pct", "50", "49.99"), ("spo2", "spo2_pct", "92", "91.99"),
            ("prednisone", "prednisone_mg_day", "60", "60.01"), ("prednisone", "prednisone_mg_day", "7.5", "7.49"),
        ]
    )
    func inclusiveLimits(id: String, field: String, limit: String, beyond: String) {
        #expect(evaluate(screening: [field: real(limit)])[id]?.result == .pass)
        #expect(evaluate(screening: [field: real(beyond)])[id]?.result == .fail)
    }

    @Test("SLEDAI-2000 of 8 passes and 7 fails")
    func sledaiLimit() {
        #expect(evaluate(screening: ["sledai_2k": .integer(8)])["sledai"]?.result == .pass)
        #expect(evaluate(screening: ["sledai_2k": .integer(7)])["sledai"]?.result == .fail)
    }

    @Test("The k × ULN rules agree with an exact rational reference over random hundredths", arguments: [UInt64(1), 2, 3])
    func timesULNAgainstRationals(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        for _ in 0..<400 {
            let rule = Self.timesULN[Int.random(in: 0..<Self.timesULN.count, using: &random)]
            let measured = Int.random(in: 1...30_000, using: &random)
            let uln = Int.random(in: 10...10_000, using: &random)
            // k as a fraction of tenths: pass exactly when measured ≤ k × uln, all in hundredths.
            let kTenths = Int((Decimal(string: rule.k)! * 10).description)!
            let expected: CriterionResult.Outcome = measured * 10 <= kTenths * uln ? .pass : .fail
            let text = { (cents: Int) in "\(cents / 100).\(String(format: "%02d", cents % 100))" }
            let screening = rule.extra.merging([rule.value: real(text(measured)), rule.uln: real(text(uln))]) { $1 }
            // The liver rules between the two limits depend on Gilbert syndrome, which `extra` records.
            let result = evaluate(screening: screening)[rule.id]?.result
            #expect(result == expected, "\(rule.id) \(text(measured)) against \(rule.k) × ULN \(text(uln))")
        }
    }

    @Test("Cockcroft-Gault agrees with an exact rational reference, rounded half up to hundredths", arguments: [UInt64(1), 2, 3])
    func clearanceAgainstRationals(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        for _ in 0..<400 {
            let age = Int.random(in: 18...70, using: &random)
            let weight = Int.random(in: 3_000...15_000, using: &random) // hundredths of a kg
            let creatinine = Int.random(in: 2_000...80_000, using: &random) // hundredths of µmol/L
            let female = Bool.random(using: &random)
            // (140 − age) × w/100 × (85/100) × 884/10 / (72 × c/100), as numerator / denominator
            let numerator = (140 - age) * weight * (female ? 85 : 100) * 884
            let denominator = 72 * creatinine * 100 * 10
            // Half up to hundredths: floor(value × 100 + 1/2)
            let hundredths = (200 * numerator + denominator) / (2 * denominator)
            let computed = Eligibility.creatinineClearance(
                ageYears: age, weightKilograms: Decimal(weight) / 100, female: female, creatinineMicromolPerLitre: Decimal(creatinine) / 100
            )
            #expect(computed * 100 == Decimal(hundredths), "age \(age), weight \(weight)/100 kg, \(female ? "F" : "M"), creatinine \(creatinine)/100 µmol/L")
        }
    }
}
