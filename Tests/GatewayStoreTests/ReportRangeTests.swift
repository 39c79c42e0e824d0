import Foundation
@testable import GatewayStore
import Testing

/// `--since`/`--until` parsing and how a range is split between the daily tables and raw rows.
@Suite struct ReportRangeTests {
    static func utc(_ text: String) -> Date { UTC.dateTime(text) ?? UTC.day(text)! }
    let now = utc("2026-11-27 15:30:00")

    @Test func datesTimesAndDurations() throws {
        #expect(try ReportTime.parse("2026-11-01", option: "--since", now: now) == Self.utc("2026-11-01 00:00"))
        #expect(try ReportTime.parse("2026-11-01", option: "--until", now: now) == Self.utc("2026-11-02 00:00"), "a date in --until includes the day")
        #expect(try ReportTime.parse("2026-11-01 12:30", option: "--since", now: now) == Self.utc("2026-11-01 12:30"))
        #expect(try ReportTime.parse("2026-11-01T12:30:15Z", option: "--until", now: now) == Self.utc("2026-11-01 12:30:15"))
        #expect(try ReportTime.parse("2026-11-01T12:30:15.5", option: "--since", now: now) == Self.utc("2026-11-01 12:30:15").addingTimeInterval(0.5))
        #expect(try ReportTime.parse("24h", option: "--since", now: now) == now.addingTimeInterval(-86_400))
        #expect(try ReportTime.parse("7d", option: "--since", now: now) == now.addingTimeInterval(-7 * 86_400))
        #expect(try ReportTime.parse("90m", option: "--since", now: now) == now.addingTimeInterval(-5_400))
        #expect(try ReportTime.parse("30s", option: "--until", now: now) == now.addingTimeInterval(-30))
        #expect(try ReportTime.parse("2w", option: "--since", now: now) == now.addingTimeInterval(-14 * 86_400))
        #expect(try ReportTime.parse("now", option: "--until", now: now) == now)
        let range = try ReportRange.parse(since: nil, until: nil, now: now)
        #expect(range == ReportRange(since: now.addingTimeInterval(-7 * 86_400), until: now))
    }

    @Test(arguments: ["3x", "yesterday", "2026-13-01", "2026-02-30", "2026-11-1", "", "-5h", "24 h", "2026-11-01 25:00", "h"])
    func nonsenseIsRefusedWithAMessage(_ text: String) {
        #expect {
            try ReportTime.parse(text, option: "--since", now: now)
        } throws: { error in
            (error as? ReportTimeError)?.message.hasPrefix("--since '\(text)' is neither a date") == true
        }
    }

    @Test func sinceMustBeBeforeUntil() {
        #expect(throws: ReportTimeError.self) { try ReportRange.parse(since: "2026-11-02", until: "2026-11-01 12:00", now: now) }
        #expect(throws: ReportTimeError.self) { try ReportRange.parse(since: "1h", until: "2h", now: now) }
        #expect(throws: Never.self) { try ReportRange.parse(since: "2026-11-01", until: "2026-11-01", now: now) }
    }

    // MARK: - Plans

    func plan(_ since: String, _ until: String, prunedBefore: String? = nil) -> ReportPlan {
        ReportPlan(ReportRange(since: Self.utc(since), until: Self.utc(until)), prunedBefore: prunedBefore.map(Self.utc))
    }

    @Test func wholeDaysComeFromTheDailyTables() {
        let p = plan("2026-11-01 00:00", "2026-11-04 00:00")
        #expect(p.days?.first == "2026-11-01" && p.days?.last == "2026-11-03")
        #expect(p.windows.isEmpty)
    }

    @Test func cutDaysComeFromRawRows() {
        let inside = plan("2026-11-01 10:00", "2026-11-01 12:00")
        #expect(inside.days == nil)
        #expect(inside.windows.map(\.start) == [Self.utc("2026-11-01 10:00")])
        #expect(inside.windows.map(\.end) == [Self.utc("2026-11-01 12:00")])

        let across = plan("2026-11-01 10:00", "2026-11-04 12:00")
        #expect(across.days?.first == "2026-11-02" && across.days?.last == "2026-11-03")
        #expect(across.windows.map(\.start) == [Self.utc("2026-11-01 10:00"), Self.utc("2026-11-04 00:00")])
        #expect(across.windows.map(\.end) == [Self.utc("2026-11-02 00:00"), Self.utc("2026-11-04 12:00")])

        let toMidnight = plan("2026-11-01 10:00", "2026-11-02 00:00")
        #expect(toMidnight.days == nil)
        #expect(toMidnight.windows.count == 1)

        let nextDay = plan("2026-11-01 10:00", "2026-11-02 08:00")
        #expect(nextDay.days == nil)
        #expect(nextDay.windows.count == 2)
    }

    @Test func aCutDayWhoseRowsWerePrunedIsCountedWhole() {
        let p = plan("2026-11-01 10:00", "2026-11-04 12:00", prunedBefore: "2026-11-02 00:00")
        #expect(p.days?.first == "2026-11-01" && p.days?.last == "2026-11-03")
        #expect(p.widenedDays == ["2026-11-01"])
        #expect(p.windows.map(\.start) == [Self.utc("2026-11-04 00:00")])

        let allPruned = plan("2026-11-01 10:00", "2026-11-01 12:00", prunedBefore: "2026-11-05 00:00")
        #expect(allPruned.days?.first == "2026-11-01" && allPruned.days?.last == "2026-11-01")
        #expect(allPruned.windows.isEmpty)
        #expect(allPruned.widenedDays == ["2026-11-01"])

        let after = plan("2026-11-06 10:00", "2026-11-06 12:00", prunedBefore: "2026-11-05 00:00")
        #expect(after.widenedDays.isEmpty && after.windows.count == 1)
    }

    @Test func theRetentionCutoffIsAMidnight() {
        #expect(AppDatabase.retentionCutoff(retentionDays: 30, now: now) == Self.utc("2026-10-28 00:00"))
        #expect(AppDatabase.retentionCutoff(retentionDays: 1, now: Self.utc("2026-11-27 00:00")) == Self.utc("2026-11-26 00:00"))
    }
}
