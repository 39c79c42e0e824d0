import Foundation

// MARK: - The time range of a report

/// The time range a report covers: `[since, until)`, in UTC.
public struct ReportRange: Sendable, Equatable {
    public var since: Date
    public var until: Date

    public init(since: Date, until: Date) {
        self.since = since
        self.until = until
    }

    /// The default: the last 7 days up to now.
    public static func lastDays(_ days: Int, now: Date = Date()) -> ReportRange {
        ReportRange(since: now.addingTimeInterval(-Double(days) * 86_400), until: now)
    }

    /// The range from `--since` and `--until` text (either may be nil: 7 days ago, now).
    /// Errors say which option is wrong and what is accepted.
    public static func parse(since: String?, until: String?, now: Date = Date()) throws(ReportTimeError) -> ReportRange {
        let start = try since.map { text throws(ReportTimeError) in try ReportTime.parse(text, option: "--since", now: now) }
            ?? now.addingTimeInterval(-7 * 86_400)
        let end = try until.map { text throws(ReportTimeError) in try ReportTime.parse(text, option: "--until", now: now) }
            ?? now
        guard start < end else {
            throw ReportTimeError(message: "--since (\(UTC.timestamp(start))) must be before --until (\(UTC.timestamp(end)))")
        }
        return ReportRange(since: start, until: end)
    }
}

/// A `--since`/`--until` value that cannot be understood.
public struct ReportTimeError: Error, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

// MARK: - Parsing dates and durations

/// Turns report times into instants. Accepted, all UTC:
/// - a date, `2026-11-01`: its midnight for `--since`; for `--until` the day is included, so the
///   end is the next midnight;
/// - a date and time, `2026-11-01 12:00`, `2026-11-01T12:00:30`, optionally ending in `Z`;
/// - a duration back from now, `90s`, `30m`, `24h`, `7d`, `2w`;
/// - `now`.
public enum ReportTime {
    public static func parse(_ text: String, option: String, now: Date) throws(ReportTimeError) -> Date {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased() == "now" { return now }
        if let seconds = duration(trimmed) { return now.addingTimeInterval(-seconds) }
        if let day = UTC.day(trimmed) {
            return option == "--until" ? day.addingTimeInterval(86_400) : day
        }
        if let instant = UTC.dateTime(trimmed) { return instant }
        throw ReportTimeError(message: """
            \(option) '\(text)' is neither a date (2026-11-01, 2026-11-01 12:00, UTC) nor a duration \
            (90s, 30m, 24h, 7d, 2w)
            """)
    }

    /// An expiry (`clients add/set --expires`): a date is valid through that UTC day (it expires at
    /// the next midnight), a date and time at that instant (UTC), a duration (`30d`) from now.
    public static func parseExpiry(_ text: String, now: Date) throws(ReportTimeError) -> Date {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let seconds = duration(trimmed) { return now.addingTimeInterval(seconds) }
        if let day = UTC.day(trimmed) { return day.addingTimeInterval(86_400) }
        if let instant = UTC.dateTime(trimmed) { return instant }
        throw ReportTimeError(message: """
            --expires '\(text)' is neither a date (2027-06-30: valid through that UTC day), a date and \
            time (2027-06-30 12:00, UTC) nor a duration from now (90d, 12h)
            """)
    }

    /// Seconds in `24h`, `7d` and the like; nil if `text` is not one.
    static func duration(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let amount = Int(text.dropLast()), amount >= 0, amount <= 100_000 else { return nil }
        switch unit {
        case "s": return Double(amount)
        case "m": return Double(amount) * 60
        case "h": return Double(amount) * 3_600
        case "d": return Double(amount) * 86_400
        case "w": return Double(amount) * 7 * 86_400
        default: return nil
        }
    }
}

// MARK: - UTC days and times as stored

/// Days and times as the database stores them: UTC `YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS.SSS`.
enum UTC {
    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    /// The midnight that starts the day of `date`.
    static func startOfDay(_ date: Date) -> Date { calendar.startOfDay(for: date) }

    /// `2026-11-27`.
    static func dayString(_ date: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }

    /// `2026-11-27 15:03:09`.
    static func timestamp(_ date: Date) -> String {
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    /// The midnight of `YYYY-MM-DD`, or nil.
    static func day(_ text: String) -> Date? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
              (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        let components = DateComponents(year: year, month: month, day: day)
        guard let date = calendar.date(from: components),
              calendar.component(.day, from: date) == day  // 2026-02-30 is refused, not rolled over
        else { return nil }
        return date
    }

    /// `YYYY-MM-DD HH:MM[:SS[.fff]]`, with a space or `T`, optionally ending in `Z`; or nil.
    static func dateTime(_ text: String) -> Date? {
        var rest = Substring(text)
        if rest.hasSuffix("Z") || rest.hasSuffix("z") { rest = rest.dropLast() }
        guard rest.count >= 16 else { return nil }
        let dayPart = rest.prefix(10)
        let separator = rest[rest.index(rest.startIndex, offsetBy: 10)]
        guard separator == " " || separator == "T", let midnight = day(String(dayPart)) else { return nil }
        let time = rest.dropFirst(11).split(separator: ":", omittingEmptySubsequences: false)
        guard time.count == 2 || time.count == 3, time[0].count == 2, time[1].count == 2,
              let hour = Int(time[0]), let minute = Int(time[1]), (0...23).contains(hour), (0...59).contains(minute)
        else { return nil }
        var seconds = 0.0
        if time.count == 3 {
            guard time[2].count >= 2, let value = Double(time[2]), value >= 0, value < 60 else { return nil }
            seconds = value
        }
        return midnight.addingTimeInterval(Double(hour * 3600 + minute * 60) + seconds)
    }
}

// MARK: - Which rows answer a range

/// How a report reads a range: whole UTC days from the daily tables, and the parts of days the
/// range cuts (at most one at each end) from the raw rows. A cut day whose raw rows were pruned
/// is read whole from the daily tables instead, and listed in `widenedDays`.
struct ReportPlan: Sendable, Equatable {
    /// First and last whole day read from the daily tables (`YYYY-MM-DD`), or nil.
    var days: (first: String, last: String)?
    /// Time windows `[start, end)` read from the raw rows.
    var windows: [(start: Date, end: Date)]
    /// Days the range cuts but which are shown whole.
    var widenedDays: [String]

    static func == (a: ReportPlan, b: ReportPlan) -> Bool {
        a.days?.first == b.days?.first && a.days?.last == b.days?.last && a.widenedDays == b.widenedDays
            && a.windows.map(\.start) == b.windows.map(\.start) && a.windows.map(\.end) == b.windows.map(\.end)
    }

    /// `prunedBefore` is the midnight before which raw rows are gone (nil: nothing pruned).
    init(_ range: ReportRange, prunedBefore: Date?) {
        let day: TimeInterval = 86_400
        var whole: [Date] = []
        var cut: [(day: Date, start: Date, end: Date)] = []
        let firstDay = UTC.startOfDay(range.since)
        let lastDay = UTC.startOfDay(range.until)
        if firstDay == lastDay {
            cut.append((firstDay, range.since, range.until))
        } else {
            if range.since == firstDay { whole.append(firstDay) } else { cut.append((firstDay, range.since, firstDay + day)) }
            var next = firstDay + day
            if next < lastDay {
                whole.append(next)
                next = lastDay - day
                whole.append(next)  // only the ends matter: the days in between are contiguous
            }
            if range.until > lastDay { cut.append((lastDay, lastDay, range.until)) }
        }
        var widened: [String] = []
        windows = []
        for part in cut {
            if let prunedBefore, part.day < prunedBefore {
                whole.append(part.day)
                widened.append(UTC.dayString(part.day))
            } else {
                windows.append((part.start, part.end))
            }
        }
        widenedDays = widened
        if let first = whole.min(), let last = whole.max() {
            days = (UTC.dayString(first), UTC.dayString(last))
        } else {
            days = nil
        }
    }
}
