/// A point in time as whole milliseconds since the Unix epoch (UTC).
///
/// The domain core never reads a clock: every function takes `now` as a `Timestamp`,
/// so replay from a journal reproduces the same results.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public init(seconds: Double) { self.milliseconds = Int64((seconds * 1000).rounded()) }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public static func + (lhs: Timestamp, rhs: TimeSpan) -> Timestamp {
        Timestamp(milliseconds: lhs.milliseconds &+ rhs.milliseconds)
    }

    public static func - (lhs: Timestamp, rhs: TimeSpan) -> Timestamp {
        Timestamp(milliseconds: lhs.milliseconds &- rhs.milliseconds)
    }

    public static func - (lhs: Timestamp, rhs: Timestamp) -> TimeSpan {
        TimeSpan(milliseconds: lhs.milliseconds - rhs.milliseconds)
    }

    public var description: String { iso8601 }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let parsed = Timestamp(iso8601: text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "'\(text)' is not an ISO-8601 date-time")
            }
            self = parsed
        } else {
            self.milliseconds = try container.decode(Int64.self)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(iso8601)
    }
}

/// A length of time in milliseconds; the domain's own type, so `Swift.Duration`'s
/// attosecond arithmetic stays off hot paths.
public struct TimeSpan: Hashable, Comparable, Sendable, Codable {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func milliseconds(_ value: Int64) -> TimeSpan { TimeSpan(milliseconds: value) }
    public static func seconds(_ value: Int64) -> TimeSpan { TimeSpan(milliseconds: value * 1000) }
    public static func minutes(_ value: Int64) -> TimeSpan { TimeSpan(milliseconds: value * 60_000) }
    public static func hours(_ value: Int64) -> TimeSpan { TimeSpan(milliseconds: value * 3_600_000) }
    public static func days(_ value: Int64) -> TimeSpan { TimeSpan(milliseconds: value * 86_400_000) }

    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public var days: Double { Double(milliseconds) / 86_400_000 }
}

// MARK: - ISO-8601

extension Timestamp {
    static let millisecondsPerDay: Int64 = 86_400_000

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff…]]` with `Z` or `±HH[:MM]`
    /// (no zone means UTC). Hand-written because Foundation's formatter costs
    /// microseconds per call and events carry up to three dates each.
    public init?(iso8601 text: String) {
        var utf8 = Array(text.utf8)
        if utf8.count < 10 { return nil }
        var index = 0

        func digits(_ count: Int) -> Int? {
            guard index + count <= utf8.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let byte = utf8[index]
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
                index += 1
            }
            return value
        }
        func expect(_ byte: UInt8) -> Bool {
            guard index < utf8.count, utf8[index] == byte else { return false }
            index += 1
            return true
        }

        guard let year = digits(4), expect(45), let month = digits(2), expect(45), let day = digits(2),
            (1...12).contains(month), day >= 1, day <= Timestamp.daysIn(month: month, year: year)
        else { return nil }
        var hour = 0
        var minute = 0
        var second = 0
        var millis = 0
        var offsetMinutes = 0
        if index < utf8.count {
            guard utf8[index] == 84 || utf8[index] == 116 || utf8[index] == 32 else { return nil }  // T, t or space
            index += 1
            guard let h = digits(2), expect(58), let m = digits(2), h < 24, m < 60 else { return nil }
            hour = h
            minute = m
            if expect(58) {
                guard let s = digits(2), s < 61 else { return nil }
                second = min(s, 59)
                if expect(46) || expect(44) {
                    var scale = 100
                    var sawDigit = false
                    while index < utf8.count, utf8[index] >= 48, utf8[index] <= 57 {
                        millis += Int(utf8[index] - 48) * scale
                        scale /= 10
                        index += 1
                        sawDigit = true
                    }
                    guard sawDigit else { return nil }
                }
            }
            if index < utf8.count {
                let sign = utf8[index]
                if sign == 90 || sign == 122 {  // Z
                    index += 1
                } else if sign == 43 || sign == 45 {  // + -
                    index += 1
                    guard let oh = digits(2), oh < 24 else { return nil }
                    var om = 0
                    if index < utf8.count {
                        _ = expect(58)
                        guard let parsedMinutes = digits(2), parsedMinutes < 60 else { return nil }
                        om = parsedMinutes
                    }
                    offsetMinutes = (oh * 60 + om) * (sign == 45 ? -1 : 1)
                } else {
                    return nil
                }
            }
            guard index == utf8.count else { return nil }
        }
        utf8.removeAll()
        let days = Timestamp.daysFromCivil(year: year, month: month, day: day)
        let secondsOfDay = Int64(hour * 3600 + minute * 60 + second - offsetMinutes * 60)
        self.milliseconds = (days * 86_400 + secondsOfDay) * 1000 + Int64(millis)
    }

    /// `2026-11-21T15:04:05.123Z`
    public var iso8601: String {
        let days = milliseconds >= 0 ? milliseconds / Timestamp.millisecondsPerDay
            : (milliseconds - Timestamp.millisecondsPerDay + 1) / Timestamp.millisecondsPerDay
        let msOfDay = milliseconds - days * Timestamp.millisecondsPerDay
        let (year, month, day) = Timestamp.civilFromDays(days)
        let hour = msOfDay / 3_600_000
        let minute = (msOfDay / 60_000) % 60
        let second = (msOfDay / 1000) % 60
        let millis = msOfDay % 1000
        guard (0...9999).contains(year) else {
            func pad(_ value: Int64, _ width: Int) -> String {
                let text = String(value)
                return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
            }
            return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(millis, 3))Z"
        }
        return String(unsafeUninitializedCapacity: 24) { buffer in
            Timestamp.writeISO8601(year: year, month: month, day: day, msOfDay: msOfDay, into: buffer)
        }
    }

    /// The calendar date of the last day written: the times of one answer mostly fall on a
    /// few days, and working out the date from the day number is most of writing a time.
    public struct DateMemo: Sendable {
        @usableFromInline var dayNumber: Int64 = .min
        @usableFromInline var date: (year: Int64, month: Int64, day: Int64) = (0, 0, 0)

        @inlinable public init() {}
    }

    /// Appends the ISO-8601 form in quotes (a JSON string) without making a `String` first.
    public func appendQuotedISO8601(to output: inout [UInt8]) {
        var memo = DateMemo()
        appendQuotedISO8601(to: &output, memo: &memo)
    }

    /// `appendQuotedISO8601(to:)`, remembering the last day's date in `memo`.
    public func appendQuotedISO8601(to output: inout [UInt8], memo: inout DateMemo) {
        let days = dayNumber
        let msOfDay = milliseconds - days * Timestamp.millisecondsPerDay
        if memo.dayNumber != days {
            memo.dayNumber = days
            memo.date = Timestamp.civilFromDays(days)
        }
        let (year, month, day) = memo.date
        guard (0...9999).contains(year) else {
            JSONValue.writeString(iso8601, into: &output)
            return
        }
        // 26 bytes on the stack, then one append: answers carry dozens of times each.
        var quoted: (UInt64, UInt64, UInt64, UInt16) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &quoted) { raw in
            let buffer = raw.bindMemory(to: UInt8.self)
            buffer[0] = 34
            _ = Timestamp.writeISO8601(
                year: year, month: month, day: day, msOfDay: msOfDay, into: UnsafeMutableBufferPointer(rebasing: buffer[1..<25]))
            buffer[25] = 34
            output.append(contentsOf: buffer)
        }
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.fffZ` (24 bytes; years 0–9999) two digits at a time from a
    /// table: answers carry many times, and string interpolation cost microseconds each.
    private static func writeISO8601(year: Int64, month: Int64, day: Int64, msOfDay: Int64, into buffer: UnsafeMutableBufferPointer<UInt8>)
        -> Int
    {
        let pairs = Timestamp.digitPairs.utf8Start
        func put(_ value: Int64, at position: Int) {
            let pair = Int(value) * 2
            buffer[position] = pairs[pair]
            buffer[position + 1] = pairs[pair + 1]
        }
        let seconds = msOfDay / 1000
        let millis = msOfDay - seconds * 1000
        put(year / 100, at: 0); put(year % 100, at: 2); buffer[4] = 45
        put(month, at: 5); buffer[7] = 45
        put(day, at: 8); buffer[10] = 84
        put(seconds / 3600, at: 11); buffer[13] = 58
        put((seconds / 60) % 60, at: 14); buffer[16] = 58
        put(seconds % 60, at: 17); buffer[19] = 46
        buffer[20] = 48 + UInt8(millis / 100); put(millis % 100, at: 21); buffer[23] = 90
        return 24
    }

    /// "00", "01", … "99" back to back.
    private static let digitPairs: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Whole days since the epoch (UTC), used for calendar periods.
    public var dayNumber: Int64 {
        milliseconds >= 0 ? milliseconds / Timestamp.millisecondsPerDay
            : (milliseconds - Timestamp.millisecondsPerDay + 1) / Timestamp.millisecondsPerDay
    }

    /// Year and month (UTC) as one ordinal, used for calendar months.
    public var monthNumber: Int64 {
        let (year, month, _) = Timestamp.civilFromDays(dayNumber)
        return year * 12 + month - 1
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's civil-date algorithms.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
