import SiteSyncCore
import Testing
import TrialRecords

@Suite("Safety rules")
struct SafetyTests {
    private func flags(onset: String, grade: Int64 = 3, expected: Int64 = 0, infusion: String? = "2026-03-01") -> Safety.Flags {
        Safety.flags(event: ["onset_date": .text(onset), "grade": .integer(grade), "expected": .integer(expected)], infusionDate: infusion)
    }

    @Test(
        "The DLT window runs from the infusion (day 0) to day 28",
        arguments: [
            ("2026-03-01", 0, true), ("2026-03-29", 28, true), ("2026-03-30", 29, false), ("2026-02-28", -1, false), ("2026-03-15", 14, true),
        ]
    )
    func window(onset: String, day: Int, inWindow: Bool) {
        let result = flags(onset: onset)
        #expect(result.day == day)
        #expect(result.dltWindow == inWindow)
        #expect(result.dltCandidate == inWindow, "grade 3, not expected")
    }

    @Test("A DLT candidate is grade 3 or more, in the window, not expected")
    func candidate() {
        #expect(flags(onset: "2026-03-10", grade: 2).dltCandidate == false)
        #expect(flags(onset: "2026-03-10", grade: 3).dltCandidate == true)
        #expect(flags(onset: "2026-03-10", grade: 5).dltCandidate == true)
        #expect(flags(onset: "2026-03-10", grade: 4, expected: 1).dltCandidate == false)
    }

    @Test("Grade 3 or 4 after day 28 goes to the safety review committee")
    func srcReview() {
        #expect(flags(onset: "2026-03-30", grade: 3).srcReview == true)
        #expect(flags(onset: "2026-03-30", grade: 4).srcReview == true)
        #expect(flags(onset: "2026-03-30", grade: 5).srcReview == false)
        #expect(flags(onset: "2026-03-30", grade: 2).srcReview == false)
        #expect(flags(onset: "2026-03-29", grade: 3).srcReview == false, "day 28 is still in the window")
    }

    @Test("Without an infusion or an onset the flags are unknown")
    func unknown() {
        #expect(flags(onset: "2026-03-10", infusion: nil) == Safety.Flags())
        #expect(Safety.flags(event: ["grade": .integer(4)], infusionDate: "2026-03-01") == Safety.Flags())
        #expect(Safety.infusionDate([["date": .text("2026-03-05")], ["date": .text("2026-03-01")]]) == "2026-03-01")
        #expect(Safety.days(from: "2024-02-28", to: "2024-03-01") == 2, "leap year")
    }
}
