import Foundation
import KairosCore
import Testing

@Suite struct LocalCalendarTests {
    func instant(_ text: String) -> Int64 { Timestamp(iso8601: text)!.milliseconds }
    func zone(_ id: String) -> TimeZone { TimeZone(identifier: id)! }

    @Test func nextLocalTimeAcrossBothDaylightSavingChanges() {
        // Paris leaves summer time on Sunday 25 October 2026 (03:00 CEST → 02:00 CET).
        let saturdayEvening = instant("2026-10-24T18:00:00Z")  // 20:00 CEST
        #expect(LocalCalendar.next(minute: 9 * 60, weekdays: [], after: saturdayEvening, zone: zone("Europe/Paris"))
            == instant("2026-10-25T08:00:00Z"))  // 09:00 CET
        #expect(LocalCalendar.next(minute: 9 * 60, weekdays: [], after: instant("2026-10-24T06:00:00Z"), zone: zone("Europe/Paris"))
            == instant("2026-10-24T07:00:00Z"))  // still 09:00 CEST that morning
        // New York enters summer time on 8 March 2026; 02:30 does not exist that day and maps to 03:30.
        #expect(LocalCalendar.next(minute: 150, weekdays: [], after: instant("2026-03-08T05:00:00Z"), zone: zone("America/New_York"))
            == instant("2026-03-08T07:30:00Z"))
    }

    @Test func weekdaysAndLocalDays() {
        // Monday 2 March 2026, 23:30 in Tokyo is still Monday in UTC (14:30).
        let mondayNight = instant("2026-03-02T14:30:00Z")
        let tokyo = zone("Asia/Tokyo")
        #expect(LocalCalendar.dayNumber(mondayNight, zone: tokyo) == Timestamp(iso8601: "2026-03-02")!.dayNumber)
        // The next Friday 08:00 in Tokyo is 6 March 08:00 JST = 5 March 23:00 UTC.
        #expect(LocalCalendar.next(minute: 8 * 60, weekdays: [6], after: mondayNight, zone: tokyo) == instant("2026-03-05T23:00:00Z"))
        // Exactly at the time: the next occurrence, not now.
        #expect(LocalCalendar.next(minute: 0, weekdays: [], after: instant("2026-03-02T00:00:00Z"), zone: zone("UTC"))
            == instant("2026-03-03T00:00:00Z"))
        #expect(LocalCalendar.isKnown("Europe/Paris") && !LocalCalendar.isKnown("Mars/Olympus"))
    }
}
