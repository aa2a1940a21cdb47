import SiteSyncCore
import Testing

@Suite("Times and durations as people are shown them")
struct TimestampTests {
    @Test("A duration in its two largest units that matter")
    func durations() {
        #expect(describeDuration(40) == "40 s")
        #expect(describeDuration(3 * 60 + 12) == "3 min")
        #expect(describeDuration(3 * 3600) == "3 h")
        #expect(describeDuration(3 * 3600 + 12 * 60 + 5) == "3 h 12 min")
        #expect(describeDuration(4 * 86_400 + 2 * 3600 + 59) == "4 d 2 h")
        #expect(describeDuration(7 * 86_400) == "7 d")
    }

    @Test("A stamp's wall-clock time, ISO 8601 in UTC to the second")
    func stamps() {
        #expect(HLC(milliseconds: 1_700_000_000_999).iso8601 == "2023-11-14T22:13:20Z")
        #expect(Timestamp.iso8601(milliseconds: 0) == "1970-01-01T00:00:00Z")
    }
}
