import Testing
@testable import KairosCore

@Suite struct TimestampTests {
    @Test func parsesAndFormatsISO8601() {
        #expect(Timestamp(iso8601: "1970-01-01T00:00:00Z")?.milliseconds == 0)
        #expect(Timestamp(iso8601: "2026-11-21T15:04:05.123Z")?.iso8601 == "2026-11-21T15:04:05.123Z")
        #expect(Timestamp(iso8601: "2026-11-21T16:04:05.123+01:00")?.iso8601 == "2026-11-21T15:04:05.123Z")
        #expect(Timestamp(iso8601: "2026-11-21T10:04:05-0500")?.iso8601 == "2026-11-21T15:04:05.000Z")
        #expect(Timestamp(iso8601: "2024-02-29")?.iso8601 == "2024-02-29T00:00:00.000Z")
        #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.milliseconds == -1000)
        #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.iso8601 == "1969-12-31T23:59:59.000Z")
    }

    @Test func formattingAgreesWithParsingAcrossCenturies() {
        var state: UInt64 = 42
        for _ in 0..<20_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            // Years 0001 to 9999 (outside them the slower general path writes the same shape).
            let milliseconds = Int64(state >> 20) % 315_000_000_000_000 - 62_000_000_000_000
            let time = Timestamp(milliseconds: milliseconds)
            #expect(time.iso8601.utf8.count == 24)
            #expect(Timestamp(iso8601: time.iso8601) == time, "\(milliseconds) → \(time.iso8601)")
            var quoted: [UInt8] = [1]
            time.appendQuotedISO8601(to: &quoted)
            #expect(quoted == [1, 34] + Array(time.iso8601.utf8) + [34])
        }
        #expect(Timestamp(milliseconds: 1_779_000_000_007).iso8601 == "2026-05-17T06:40:00.007Z")
    }

    @Test(arguments: ["", "2026-13-01", "2023-02-29", "2026-01-01T25:00:00Z", "2026-01-01T10:00:00X", "yesterday", "2026-01-01T10:00:00.Z"])
    func rejectsMalformedDates(_ text: String) {
        #expect(Timestamp(iso8601: text) == nil)
    }

    @Test func calendarPeriods() {
        let monday = Timestamp(iso8601: "2026-11-16T00:00:00Z")!
        let sunday = Timestamp(iso8601: "2026-11-22T23:59:59Z")!
        let nextMonday = Timestamp(iso8601: "2026-11-23T00:00:00Z")!
        #expect(CapPeriod.week.ordinal(of: monday) == CapPeriod.week.ordinal(of: sunday))
        #expect(CapPeriod.week.ordinal(of: nextMonday) == CapPeriod.week.ordinal(of: sunday) + 1)
        #expect(CapPeriod.month.ordinal(of: Timestamp(iso8601: "2026-11-30T23:00:00Z")!) + 1
            == CapPeriod.month.ordinal(of: Timestamp(iso8601: "2026-12-01T00:00:00Z")!))
    }
}
