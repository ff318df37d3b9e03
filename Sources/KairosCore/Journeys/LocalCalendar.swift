import Foundation
import Synchronization

/// Local days, times of day and weekdays in a contact's time zone, DST included.
/// Pure functions of (instant, zone); zones are looked up once and cached.
public enum LocalCalendar {
    private static let zones = Mutex<[String: TimeZone]>([:])

    static func zone(_ identifier: String) -> TimeZone? {
        if let cached = zones.withLock({ $0[identifier] }) { return cached }
        guard let zone = TimeZone(identifier: identifier) else { return nil }
        zones.withLock { $0[identifier] = zone }
        return zone
    }

    public static func isKnown(_ identifier: String) -> Bool { zone(identifier) != nil }

    /// The zone's offset from UTC at an instant, in milliseconds.
    static func offset(_ zone: TimeZone, at milliseconds: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(milliseconds) / 1000))) * 1000
    }

    /// Local midnight-based day number (days since 1970-01-01 in local time).
    public static func dayNumber(_ milliseconds: Int64, zone: TimeZone) -> Int64 {
        Timestamp(milliseconds: milliseconds + offset(zone, at: milliseconds)).dayNumber
    }

    /// Minutes after local midnight.
    static func minuteOfDay(_ milliseconds: Int64, zone: TimeZone) -> Int {
        let local = milliseconds + offset(zone, at: milliseconds)
        let day = Timestamp(milliseconds: local).dayNumber
        return Int((local - day * Timestamp.millisecondsPerDay) / 60_000)
    }

    /// 1 = Sunday … 7 = Saturday, of a local day number.
    static func weekday(ofDay day: Int64) -> Int {
        // 1970-01-01 was a Thursday (5).
        Int(((day % 7) + 7 + 4) % 7) + 1
    }

    /// The instant of a local wall-clock time (minutes after midnight) on a local day. A time
    /// that a DST change skips maps to the same time after the change.
    static func instant(day: Int64, minute: Int, zone: TimeZone) -> Int64 {
        let local = day * Timestamp.millisecondsPerDay + Int64(minute) * 60_000
        let first = local - offset(zone, at: local)
        let second = local - offset(zone, at: first)
        if second + offset(zone, at: second) == local { return second }
        if first + offset(zone, at: first) == local { return first }
        // In a gap: neither reading exists; the later one is that wall time after the change.
        return max(first, second)
    }

    /// The first instant strictly after `now` that is `minute` local time on one of `weekdays` (all when empty).
    public static func next(minute: Int, weekdays: Set<Int>, after now: Int64, zone: TimeZone) -> Int64 {
        let today = dayNumber(now, zone: zone)
        for day in today...(today + 8) {
            guard weekdays.isEmpty || weekdays.contains(weekday(ofDay: day)) else { continue }
            let candidate = instant(day: day, minute: minute, zone: zone)
            if candidate > now { return candidate }
        }
        return instant(day: today + 8, minute: minute, zone: zone)
    }

    /// When quiet hours hold at `now`, the instant they end; nil otherwise.
    static func quietUntil(_ quiet: JourneyDefinition.QuietHours, at now: Int64, zone: TimeZone) -> Int64? {
        let minute = minuteOfDay(now, zone: zone)
        let inside = quiet.start < quiet.end
            ? minute >= quiet.start && minute < quiet.end
            : minute >= quiet.start || minute < quiet.end
        guard inside else { return nil }
        return next(minute: quiet.end, weekdays: [], after: now, zone: zone)
    }
}
