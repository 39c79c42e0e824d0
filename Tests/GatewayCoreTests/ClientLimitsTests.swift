import Foundation
import GatewayCore
import Testing

/// The windows a client's limits are judged in, with the clock given (never slept on).
@Suite struct ClientLimitsTests {
    /// 2026-12-07 13:00:00 UTC.
    static let t0 = 1_796_648_400.0

    @Test func theFourthRequestWithinAMinuteIsRefusedUntilTheFirstLeavesTheWindow() {
        var counters = ClientUsageCounters()
        let limits = ClientLimits(rpm: 3)
        for offset in [0.0, 10.5, 20] { #expect(counters.admit(limits, model: "m", now: Self.t0 + offset) == nil) }
        let refusal = counters.admit(limits, model: "m", now: Self.t0 + 30)
        #expect(refusal == .init(limit: .rpm, retryAfter: 30), "the first request leaves the window at t0 + 60")
        #expect(counters.minuteRequests == 3, "a refused request is not counted")
        #expect(counters.admit(limits, model: "m", now: Self.t0 + 59.9) != nil)
        #expect(counters.admit(limits, model: "m", now: Self.t0 + 60) == nil, "60 s after the first, it is out")
        #expect(counters.admit(limits, model: "m", now: Self.t0 + 61) != nil)
    }

    @Test func aDayOfRequestsEndsAtUTCMidnight() {
        var counters = ClientUsageCounters()
        let limits = ClientLimits(rpd: 2)
        let lateEvening = Self.t0 + 10 * 3600 + 59 * 60  // 23:59:00
        #expect(counters.admit(limits, model: nil, now: lateEvening) == nil)
        #expect(counters.admit(limits, model: nil, now: lateEvening + 1) == nil)
        #expect(counters.admit(limits, model: nil, now: lateEvening + 2) == .init(limit: .rpd, retryAfter: 58))
        #expect(counters.admit(limits, model: nil, now: lateEvening + 60) == nil, "a new UTC day")
    }

    @Test func tokensAreJudgedOnWhatWasUsedSoOneRequestMayOvershoot() {
        var counters = ClientUsageCounters()
        let limits = ClientLimits(tpm: 100, tpd: 1_000)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == nil)
        // Two requests admitted while under the limit, the first then uses 250 tokens.
        #expect(counters.admit(limits, model: nil, now: Self.t0 + 1) == nil)
        counters.finish(tokens: 250, costMicros: 0, now: Self.t0 + 2)
        #expect(counters.minuteTokens == 250 && counters.dayTokens == 250)
        #expect(counters.admit(limits, model: nil, now: Self.t0 + 3) == .init(limit: .tpm, retryAfter: 59))
        #expect(counters.admit(limits, model: nil, now: Self.t0 + 62) == nil, "the tokens of t0 + 2 left the minute")
        counters.finish(tokens: 800, costMicros: 0, now: Self.t0 + 63)
        let refusal = counters.admit(limits, model: nil, now: Self.t0 + 200)
        #expect(refusal?.limit == .tpd)
        #expect(refusal?.retryAfter == 11 * 3600 - 200)
    }

    @Test func moneyPerDayAndPerMonthInMicroDollars() {
        var counters = ClientUsageCounters()
        let limits = ClientLimits(dailyBudgetMicros: 5_000_000, monthlyBudgetMicros: 6_000_000)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == nil)
        counters.finish(tokens: 10, costMicros: 4_999_999, now: Self.t0 + 1)
        #expect(counters.admit(limits, model: nil, now: Self.t0 + 2) == nil, "under by one micro-dollar")
        counters.finish(tokens: 10, costMicros: 2, now: Self.t0 + 3)
        #expect(counters.admit(limits, model: nil, now: Self.t0 + 4)?.limit == .dailyBudget)
        // The next UTC day: the daily budget is fresh, the month's is not.
        let tomorrow = Self.t0 + 86_400
        #expect(counters.admit(limits, model: nil, now: tomorrow) == nil)
        counters.finish(tokens: 10, costMicros: 1_000_000, now: tomorrow)
        let refusal = counters.admit(limits, model: nil, now: tomorrow + 1)
        #expect(refusal?.limit == .monthlyBudget)
        // 2026-12-08 13:00:01 to 2027-01-01 00:00:00.
        #expect(refusal?.retryAfter == 23 * 86_400 + 11 * 3600 - 1)
    }

    @Test func concurrencyCountsRequestsUntilTheyEnd() {
        var counters = ClientUsageCounters()
        let limits = ClientLimits(maxConcurrent: 2)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == nil)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == nil)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == .init(limit: .maxConcurrent, retryAfter: 1))
        counters.finish(tokens: 0, costMicros: 0, now: Self.t0)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == nil)
    }

    @Test func modelsAndExpiry() {
        var counters = ClientUsageCounters()
        let limits = ClientLimits(models: ["gemini-2.5-flash*", "gemini-embedding-001"], expiresAt: Date(timeIntervalSince1970: Self.t0 + 10))
        #expect(counters.admit(limits, model: "gemini-2.5-flash", now: Self.t0) == nil)
        #expect(counters.admit(limits, model: "gemini-2.5-flash-lite", now: Self.t0) == nil)
        #expect(counters.admit(limits, model: "models/gemini-embedding-001", now: Self.t0) == nil)
        #expect(counters.admit(limits, model: nil, now: Self.t0) == nil, "a models list names no model")
        #expect(counters.admit(limits, model: "gemini-2.5-pro", now: Self.t0) == .init(limit: .models, retryAfter: nil))
        #expect(counters.admit(limits, model: "gemini-2.5-flash", now: Self.t0 + 10) == .init(limit: .expires, retryAfter: nil))
        #expect(ClientLimits.glob("gemini-?.5-*", matches: "gemini-2.5-pro"))
        #expect(!ClientLimits.glob("gemini-2.5-flash", matches: "gemini-2.5-flash-lite"))
    }

    @Test func restoredCountersCarryTheDayAndTheLastMinute() {
        var counters = ClientUsageCounters()
        counters.charge(requests: 1, tokens: 40, costMicros: 0, now: Self.t0 - 30)
        counters.charge(requests: 1, tokens: 60, costMicros: 0, now: Self.t0 - 5)
        counters.restore(dayRequests: 7, dayTokens: 900, dayCostMicros: 1_500_000, monthCostMicros: 9_000_000, now: Self.t0)
        #expect(counters.minuteRequests == 2 && counters.minuteTokens == 100)
        #expect(counters.admit(ClientLimits(rpm: 2), model: nil, now: Self.t0)?.limit == .rpm)
        #expect(counters.admit(ClientLimits(dailyBudgetMicros: 1_500_000), model: nil, now: Self.t0)?.limit == .dailyBudget)
        #expect(counters.admit(ClientLimits(rpd: 8), model: nil, now: Self.t0) == nil)
        #expect(counters.dayRequests == 8)
    }

    @Test func dollarsAreReadAndWrittenExactly() {
        #expect(Micros.parse(dollars: "5") == 5_000_000)
        #expect(Micros.parse(dollars: "0.30") == 300_000)
        #expect(Micros.parse(dollars: "$12.345678") == 12_345_678)
        #expect(Micros.parse(dollars: ".5") == 500_000)
        for bad in ["", "-1", "1.2345678", "1e3", "abc", "1.", "."] { #expect(Micros.parse(dollars: bad) == nil, "\(bad)") }
        #expect(Micros.dollars(5_000_000) == "5.00")
        #expect(Micros.dollars(33) == "0.000033")
        #expect(Micros.dollars(1_234_500) == "1.2345")
    }

    @Test func calendarArithmeticAgreesWithFoundation() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        // Foundation's Gregorian calendar is Julian before 1582: compare 1900 to 2300.
        for days in stride(from: -25_567 as Int64, through: 120_000, by: 97) {
            let date = Date(timeIntervalSince1970: Double(days) * 86_400)
            let c = calendar.dateComponents([.year, .month, .day], from: date)
            let (y, m, d) = UTCCalendar.civil(days)
            #expect(y == Int64(c.year!) && m == Int64(c.month!) && d == Int64(c.day!), "\(days)")
        }
    }
}
