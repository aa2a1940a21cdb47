import Foundation
import SiteSyncCore

/// The inclusion criteria of the protocol, evaluated against a subject and their latest screening.
///
/// Each criterion is `pass`, `fail` or `missing` (the data to decide is not recorded), with the
/// measured value and the threshold. The verdict is `ineligible` if any criterion fails, otherwise
/// `incomplete` if any is missing, otherwise `eligible`.
///
/// Every rule computes in decimal, never in binary floating point: a stored number is read as the
/// decimal it was written as (the shortest that gives back the stored double), limits are exact
/// decimals, and "k × ULN" is an exact product. The protocol's limits are inclusive, so a value
/// exactly at one passes whatever the ULN (1.8 is within 1.5 × ULN 1.2, which 1.5 × 1.2 in doubles
/// is not). The text shown is built from the very numbers compared.
///
/// ```swift
/// let report = Eligibility.evaluate(subjectID: id, subject: subjectFields, screening: screeningFields)
/// report.verdict // .eligible
/// ```
public enum Eligibility {
    /// Creatinine: µmol/L per mg/dL.
    public static let creatinineMicromolPerMilligram = Decimal.exact("88.4")
    /// The creatinine clearance is rounded half up to this many decimals (0.01 mL/min) before it is
    /// compared or shown.
    public static let clearanceDecimals = 2

    /// Evaluates every inclusion criterion.
    ///
    /// - Parameters:
    ///   - subject: the subject's fields (`sex`, `birth_date`, `weight_kg`, `childbearing_potential`, …).
    ///   - screening: the latest screening's fields, with `id`; nil when the subject has none.
    public static func evaluate(subjectID: String, subject: [String: FieldValue], screening: [String: FieldValue]?) -> EligibilityReport {
        let facts = Facts(subject: subject, screening: screening ?? [:])
        let criteria = [
            age(facts), sledai(facts), serology(facts), prednisone(facts),
            atLeast(facts, "neutrophils", "Neutrophil count", "neutrophils_1e9_per_l", 1, "× 10^9/L"),
            atLeast(facts, "platelets", "Platelets", "platelets_1e9_per_l", 50, "× 10^9/L"),
            atLeast(facts, "hemoglobin", "Haemoglobin", "hemoglobin_g_per_l", 60, "g/L"),
            liver(facts, "alt", "ALT", value: "alt_u_per_l", uln: "alt_uln", limit: .exact("2.5"), gilbertLimit: 5),
            liver(facts, "ast", "AST", value: "ast_u_per_l", uln: "ast_uln", limit: .exact("2.5"), gilbertLimit: 5),
            liver(facts, "bilirubin", "Total bilirubin", value: "tbil_umol_per_l", uln: "tbil_uln", limit: .exact("1.5"), gilbertLimit: 3),
            renal(facts),
            timesULN(facts, "inr", "INR", value: "inr", uln: "inr_uln", limit: .exact("1.5"), unit: ""),
            timesULN(facts, "pt", "Prothrombin time", value: "pt_s", uln: "pt_uln_s", limit: .exact("1.5"), unit: " s"),
            atLeast(facts, "lvef", "Left ventricular ejection fraction", "lvef_pct", 50, "%"),
            flag(facts, "hemodynamics", "Good haemodynamic stability", facts.screening["hemodynamically_stable"]),
            atLeast(facts, "spo2", "SpO2 without oxygen", "spo2_pct", 92, "%"),
            flag(facts, "survival", "Expected survival over 3 months", facts.subject["survival_over_3_months"]),
            childbearing(facts), lactation(facts),
            flag(facts, "consent", "Informed consent signed", facts.screening["consent_signed"]),
        ]
        let verdict: EligibilityReport.Verdict =
            criteria.contains { $0.result == .fail } ? .ineligible : criteria.contains { $0.result == .missing } ? .incomplete : .eligible
        return EligibilityReport(
            subjectID: subjectID,
            screeningID: screening?["id"]?.displayText,
            screeningDate: screening?["date"]?.displayText,
            verdict: verdict,
            criteria: criteria
        )
    }

    /// Creatinine clearance by Cockcroft-Gault, mL/min, rounded half up to 0.01 mL/min
    /// (``clearanceDecimals``):
    /// `(140 − age) × weight kg × (0.85 if female) / (72 × serum creatinine mg/dL)`,
    /// with creatinine given in µmol/L (÷ 88.4 to mg/dL), computed in decimal.
    public static func creatinineClearance(ageYears: Int, weightKilograms: Decimal, female: Bool, creatinineMicromolPerLitre: Decimal) -> Decimal {
        // mg/dL = µmol/L ÷ 88.4, so dividing by it multiplies by 88.4: one division, at the end.
        let numerator = Decimal(140 - ageYears) * weightKilograms * (female ? Decimal.exact("0.85") : 1) * creatinineMicromolPerMilligram
        return (numerator / (72 * creatinineMicromolPerLitre)).rounded(clearanceDecimals)
    }

    /// Whole years from `birth` to `date`, both `YYYY-MM-DD`.
    public static func age(birth: String, at date: String) -> Int? {
        guard let born = Day(birth), let on = Day(date), on >= born else { return nil }
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day) ? 1 : 0)
    }

    // MARK: - Criteria

    private static func age(_ facts: Facts) -> CriterionResult {
        let criterion = CriterionResult.Template(id: "age", criterion: "Age 18 to 70 years inclusive at the screening date", threshold: "18–70 years")
        guard case .text(let birth)? = facts.subject["birth_date"], case .text(let date)? = facts.screening["date"],
            let years = age(birth: birth, at: date)
        else { return criterion.missing }
        return criterion.judge((18...70).contains(years), measured: "\(years) years")
    }

    private static func sledai(_ facts: Facts) -> CriterionResult {
        let criterion = CriterionResult.Template(id: "sledai", criterion: "SLEDAI-2000 at screening", threshold: "≥ 8")
        guard let score = facts.number("sledai_2k") else { return criterion.missing }
        return criterion.judge(score >= 8, measured: score.text)
    }

    private static func serology(_ facts: Facts) -> CriterionResult {
        let criterion = CriterionResult.Template(id: "serology", criterion: "ANA, anti-dsDNA or anti-Smith antibodies positive", threshold: "any one positive")
        let tests = [("ANA", "ana_positive"), ("anti-dsDNA", "anti_dsdna_positive"), ("anti-Sm", "anti_sm_positive")]
        let results = tests.map { ($0.0, facts.number($0.1)) }
        let measured = results.map { "\($0.0) \($0.1.map { $0 == 1 ? "+" : "−" } ?? "?")" }.joined(separator: ", ")
        if results.contains(where: { $0.1 == 1 }) { return criterion.judge(true, measured: measured) }
        if results.contains(where: { $0.1 == nil }) { return criterion.missing(measured: measured) }
        return criterion.judge(false, measured: measured)
    }

    private static func prednisone(_ facts: Facts) -> CriterionResult {
        let combined = facts.number("on_immunosuppressant_or_biologic")
        let criterion = CriterionResult.Template(
            id: "prednisone", criterion: "Oral prednisone or equivalent",
            threshold: combined == 1 ? "≤ 60 mg/day (with immunosuppressants or biologics: no minimum)" : "7.5–60 mg/day"
        )
        guard let dose = facts.number("prednisone_mg_day") else { return criterion.missing }
        let measured = "\(dose.text) mg/day"
        if dose > 60 { return criterion.judge(false, measured: measured) }
        if dose >= Decimal.exact("7.5") { return criterion.judge(true, measured: measured) }
        guard let combined else {
            return criterion.missing(measured: measured, note: "below 7.5 mg/day: record whether immunosuppressants or biologics are given")
        }
        return criterion.judge(combined == 1, measured: measured)
    }

    private static func atLeast(_ facts: Facts, _ id: String, _ name: String, _ field: String, _ limit: Decimal, _ unit: String) -> CriterionResult {
        let space = unit.hasPrefix("%") ? "" : " "
        let criterion = CriterionResult.Template(id: id, criterion: name, threshold: "≥ \(limit.text)\(space)\(unit)")
        guard let value = facts.number(field) else { return criterion.missing }
        return criterion.judge(value >= limit, measured: "\(value.text)\(space)\(unit)")
    }

    /// "≤ k × ULN": the value against the exact product, both shown as compared.
    private static func timesULN(_ facts: Facts, _ id: String, _ name: String, value: String, uln: String, limit: Decimal, unit: String) -> CriterionResult {
        let criterion = CriterionResult.Template(id: id, criterion: name, threshold: "≤ \(limit.text) × ULN")
        guard let measured = facts.number(value), let normal = facts.number(uln) else { return criterion.missing }
        let bound = limit * normal
        return criterion.judge(measured <= bound, measured: "\(measured.text)\(unit); \(limit.text) × ULN \(normal.text)\(unit) = \(bound.text)\(unit)")
    }

    private static func liver(_ facts: Facts, _ id: String, _ name: String, value: String, uln: String, limit: Decimal, gilbertLimit: Decimal)
        -> CriterionResult
    {
        let gilbert = facts.number("gilbert_syndrome")
        let applied = gilbert == 1 ? gilbertLimit : limit
        let criterion = CriterionResult.Template(
            id: id, criterion: name,
            threshold: "≤ \(applied.text) × ULN" + (gilbert == 1 ? " (Gilbert syndrome)" : " (\(gilbertLimit.text) × ULN with Gilbert syndrome)")
        )
        guard let measured = facts.number(value), let normal = facts.number(uln) else { return criterion.missing }
        let text =
            "\(measured.text); \(limit.text) × ULN \(normal.text) = \((limit * normal).text), \(gilbertLimit.text) × ULN = \((gilbertLimit * normal).text)"
        if measured <= limit * normal { return criterion.judge(true, measured: text) }
        if measured > gilbertLimit * normal { return criterion.judge(false, measured: text) }
        // Between the two limits, Gilbert syndrome decides.
        guard let gilbert else { return criterion.missing(measured: text, note: "record whether the subject has Gilbert syndrome") }
        return criterion.judge(gilbert == 1, measured: text)
    }

    private static func renal(_ facts: Facts) -> CriterionResult {
        let criterion = CriterionResult.Template(
            id: "renal", criterion: "Creatinine, or creatinine clearance (Cockcroft-Gault)", threshold: "≤ 1.5 × ULN, or CrCl ≥ 40 mL/min")
        let creatinine = facts.number("creatinine_umol_per_l")
        let uln = facts.number("creatinine_uln")
        var parts: [String] = []
        var passes = false
        var decided = false
        if let creatinine, let uln {
            let bound = Decimal.exact("1.5") * uln
            parts.append("creatinine \(creatinine.text) µmol/L; 1.5 × ULN \(uln.text) = \(bound.text)")
            passes = creatinine <= bound
            decided = true
        }
        if !passes, let creatinine, case .text(let birth)? = facts.subject["birth_date"], case .text(let date)? = facts.screening["date"],
            let years = age(birth: birth, at: date), let weight = facts.subjectNumber("weight_kg"), case .text(let sex)? = facts.subject["sex"]
        {
            let clearance = creatinineClearance(ageYears: years, weightKilograms: weight, female: sex == "F", creatinineMicromolPerLitre: creatinine)
            parts.append(
                "CrCl \(clearance.text) mL/min (Cockcroft-Gault, rounded half up to 0.01 mL/min: age \(years), \(weight.text) kg, \(sex == "F" ? "female × 0.85" : "male"), creatinine \(creatinine.text) µmol/L ÷ 88.4 = \((creatinine / creatinineMicromolPerMilligram).rounded(2).text) mg/dL)"
            )
            passes = clearance >= 40
            decided = true
        }
        guard decided else { return criterion.missing(measured: parts.isEmpty ? nil : parts.joined(separator: "; ")) }
        if !passes, creatinine != nil, facts.subjectNumber("weight_kg") == nil || facts.subject["sex"] == nil || facts.subject["birth_date"] == nil {
            return criterion.missing(
                measured: parts.joined(separator: "; "), note: "creatinine above 1.5 × ULN: record age, weight and sex to compute the clearance")
        }
        return criterion.judge(passes, measured: parts.joined(separator: "; "))
    }

    private static func flag(_ facts: Facts, _ id: String, _ name: String, _ value: FieldValue?) -> CriterionResult {
        let criterion = CriterionResult.Template(id: id, criterion: name, threshold: "yes")
        guard case .integer(let flag)? = value else { return criterion.missing }
        return criterion.judge(flag == 1, measured: flag == 1 ? "yes" : "no")
    }

    private static func childbearing(_ facts: Facts) -> CriterionResult {
        let criterion = CriterionResult.Template(
            id: "pregnancy", criterion: "Women of childbearing potential: negative pregnancy test and contraception agreed",
            threshold: "negative test and contraception agreed, or not of childbearing potential"
        )
        guard case .text(let sex)? = facts.subject["sex"] else { return criterion.missing }
        if sex == "M" { return criterion.judge(true, measured: "male", note: "male participants with partners agree to contraception per protocol") }
        guard let potential = facts.subjectNumber("childbearing_potential") else { return criterion.missing(measured: "female") }
        if potential == 0 { return criterion.judge(true, measured: "not of childbearing potential") }
        let test = facts.screening["pregnancy_test"]?.displayText
        let contraception = facts.number("contraception_agreed")
        let measured = "test \(test ?? "?"), contraception \(contraception.map { $0 == 1 ? "agreed" : "not agreed" } ?? "?")"
        if test == "positive" || contraception == 0 { return criterion.judge(false, measured: measured) }
        guard test == "negative", contraception == 1 else { return criterion.missing(measured: measured) }
        return criterion.judge(true, measured: measured)
    }

    private static func lactation(_ facts: Facts) -> CriterionResult {
        let criterion = CriterionResult.Template(id: "lactation", criterion: "Not lactating", threshold: "not lactating")
        if facts.subject["sex"] == .text("M") { return criterion.judge(true, measured: "male") }
        guard let lactating = facts.number("lactating") else { return criterion.missing }
        return criterion.judge(lactating == 0, measured: lactating == 0 ? "not lactating" : "lactating")
    }

}

extension Decimal {
    /// The decimal `text` denotes, exactly; for the protocol's constants.
    static func exact(_ text: String) -> Decimal { Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))! }

    /// The decimal a stored double was written as: the shortest decimal that gives back the same
    /// double (Swift's description), not the double's binary expansion (1.8 is 1.8, not 1.8000000000000000444).
    init(written value: Double) {
        self = Decimal(string: "\(value)", locale: Locale(identifier: "en_US_POSIX")) ?? Decimal(value)
    }

    /// Rounded half up (away from zero) to `decimals` places.
    func rounded(_ decimals: Int) -> Decimal {
        var value = self
        var result = Decimal()
        NSDecimalRound(&result, &value, decimals, .plain)
        return result
    }

    /// The number in plain decimal notation, without trailing zeros.
    var text: String { NSDecimalNumber(decimal: self).stringValue }
}

/// The fields a criterion reads.
private struct Facts {
    let subject: [String: FieldValue]
    let screening: [String: FieldValue]

    /// A screening field as an exact decimal.
    func number(_ field: String) -> Decimal? { Self.number(screening[field]) }

    /// A subject field as an exact decimal.
    func subjectNumber(_ field: String) -> Decimal? { Self.number(subject[field]) }

    private static func number(_ value: FieldValue?) -> Decimal? {
        switch value {
        case .integer(let integer)?: Decimal(integer)
        case .real(let real)? where real.isFinite: Decimal(written: real)
        default: nil
        }
    }
}

/// A calendar day read from `YYYY-MM-DD`.
private struct Day: Comparable {
    let year: Int
    let month: Int
    let day: Int

    init?(_ text: String) {
        guard ColumnSchema.isCalendarDate(text) else { return nil }
        let parts = text.split(separator: "-").compactMap { Int($0) }
        (year, month, day) = (parts[0], parts[1], parts[2])
    }

    static func < (lhs: Day, rhs: Day) -> Bool { (lhs.year, lhs.month, lhs.day) < (rhs.year, rhs.month, rhs.day) }
}

/// The outcome of the inclusion criteria for one subject: `sitesync eligibility SUBJECT_ID --json`.
public struct EligibilityReport: Codable, Sendable, Equatable {
    /// The overall verdict.
    public enum Verdict: String, Codable, Sendable {
        case eligible, ineligible, incomplete
    }

    public var subjectID: String
    /// The screening evaluated (the latest), if any.
    public var screeningID: String?
    public var screeningDate: String?
    public var verdict: Verdict
    public var criteria: [CriterionResult]

    enum CodingKeys: String, CodingKey {
        case subjectID = "subject_id", screeningID = "screening_id", screeningDate = "screening_date", verdict, criteria
    }

    /// The result of the criterion `id`.
    public subscript(id: String) -> CriterionResult? { criteria.first { $0.id == id } }
}

/// One criterion's outcome, with what was measured and the threshold.
public struct CriterionResult: Codable, Sendable, Equatable {
    /// Pass, fail, or missing data.
    public enum Outcome: String, Codable, Sendable {
        case pass, fail, missing
    }

    public var id: String
    public var criterion: String
    public var result: Outcome
    public var measured: String?
    public var threshold: String
    public var note: String?

    struct Template {
        let id: String
        let criterion: String
        let threshold: String

        func judge(_ passes: Bool, measured: String, note: String? = nil) -> CriterionResult {
            CriterionResult(id: id, criterion: criterion, result: passes ? .pass : .fail, measured: measured, threshold: threshold, note: note)
        }

        var missing: CriterionResult { missing() }

        func missing(measured: String? = nil, note: String? = nil) -> CriterionResult {
            CriterionResult(id: id, criterion: criterion, result: .missing, measured: measured, threshold: threshold, note: note)
        }
    }
}
