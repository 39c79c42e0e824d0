import Foundation

// MARK: - What a client used, against its limits

/// A client's use in the windows its limits are judged in, in memory: requests and tokens of the
/// last minute (60 one-second buckets: a sliding window exact to the second), requests, tokens
/// and money of the current UTC day, and money of the current UTC month; and its requests in
/// flight. Pure: every call is given the time (`now`, seconds since 1970), so the windows are
/// tested without sleeping.
///
/// Requests count when they are admitted (a refused one does not count); tokens (prompt +
/// candidates + thoughts) and money when the request ends, as used: a client is refused from the
/// request after the one that took it over a token or money limit, and that one request may
/// overshoot the limit by its own size.
public struct ClientUsageCounters: Sendable, Equatable {
    /// The second each bucket holds (its index is the second modulo 60), and its counts.
    private var bucketSecond = [Int64](repeating: Int64.min, count: 60)
    private var bucketRequests = [Int](repeating: 0, count: 60)
    private var bucketTokens = [Int](repeating: 0, count: 60)
    /// Sums of the buckets within the last 60 s as of ``latestSecond``.
    public private(set) var minuteRequests = 0
    public private(set) var minuteTokens = 0
    private var latestSecond = Int64.min

    /// The UTC day (days since 1970) the day counts are of, and its counts.
    public private(set) var day = Int64.min
    public private(set) var dayRequests = 0
    public private(set) var dayTokens = 0
    public private(set) var dayCostMicros: Int64 = 0
    /// The UTC month (year * 12 + month - 1) and its cost.
    public private(set) var month = Int64.min
    public private(set) var monthCostMicros: Int64 = 0
    /// Requests admitted and not ended.
    public private(set) var inFlight = 0

    public init() {}

    /// Why a request is refused, and in how many seconds the window frees (nil: it does not by
    /// itself, or at once).
    public struct Refusal: Sendable, Equatable {
        public var limit: ClientLimit
        public var retryAfter: Int?
        public init(limit: ClientLimit, retryAfter: Int?) {
            self.limit = limit
            self.retryAfter = retryAfter
        }
    }

    // MARK: Judging and counting

    /// Admits a request of `limits` for `model` at `now` and counts it (a request and one in
    /// flight), or says which limit refuses it and counts nothing. In the order a client can act
    /// on: expiry, models, concurrency, then the windows, shortest first.
    public mutating func admit(_ limits: ClientLimits, model: String?, now: Double) -> Refusal? {
        if let expires = limits.expiresAt, now >= expires.timeIntervalSince1970 {
            return Refusal(limit: .expires, retryAfter: nil)
        }
        if !limits.allows(model: model) { return Refusal(limit: .models, retryAfter: nil) }
        if let maximum = limits.maxConcurrent, inFlight >= maximum { return Refusal(limit: .maxConcurrent, retryAfter: 1) }
        let second = Int64(now.rounded(.down))
        advance(to: second)
        if let rpm = limits.rpm, minuteRequests >= rpm {
            return Refusal(limit: .rpm, retryAfter: secondsUntilMinute(below: rpm, of: bucketRequests, now: second))
        }
        if let tpm = limits.tpm, minuteTokens >= tpm {
            return Refusal(limit: .tpm, retryAfter: secondsUntilMinute(below: tpm, of: bucketTokens, now: second))
        }
        if let rpd = limits.rpd, dayRequests >= rpd { return Refusal(limit: .rpd, retryAfter: Self.secondsToNextDay(second)) }
        if let tpd = limits.tpd, dayTokens >= tpd { return Refusal(limit: .tpd, retryAfter: Self.secondsToNextDay(second)) }
        if let budget = limits.dailyBudgetMicros, dayCostMicros >= budget {
            return Refusal(limit: .dailyBudget, retryAfter: Self.secondsToNextDay(second))
        }
        if let budget = limits.monthlyBudgetMicros, monthCostMicros >= budget {
            return Refusal(limit: .monthlyBudget, retryAfter: Self.secondsToNextMonth(second))
        }
        let slot = Int(second.mod(60))
        bucketRequests[slot] += 1
        minuteRequests += 1
        dayRequests += 1
        inFlight += 1
        return nil
    }

    /// An admitted request ended at `now` having used `tokens` and cost `costMicros`.
    public mutating func finish(tokens: Int, costMicros: Int64, now: Double) {
        inFlight = max(0, inFlight - 1)
        charge(tokens: tokens, costMicros: costMicros, now: now)
    }

    /// Adds use without a request in flight (a rebuild from the request log).
    public mutating func charge(requests: Int = 0, tokens: Int, costMicros: Int64, now: Double) {
        let second = Int64(now.rounded(.down))
        advance(to: second)
        if second > latestSecond - 60 {
            let slot = Int(second.mod(60))
            if bucketSecond[slot] == second {
                bucketRequests[slot] += requests
                bucketTokens[slot] += tokens
                minuteRequests += requests
                minuteTokens += tokens
            }
        }
        let (today, thisMonth) = (Self.day(second), Self.month(second))
        if today == day {
            dayRequests += requests
            dayTokens += tokens
            dayCostMicros += costMicros
        }
        if thisMonth == month { monthCostMicros += costMicros }
    }

    /// Sets the day's and the month's totals as read from the request log (a rebuild at start,
    /// after the last minute's rows were charged one by one, in time order).
    public mutating func restore(dayRequests: Int, dayTokens: Int, dayCostMicros: Int64, monthCostMicros: Int64, now: Double) {
        advance(to: Int64(now.rounded(.down)))
        self.dayRequests = dayRequests
        self.dayTokens = dayTokens
        self.dayCostMicros = dayCostMicros
        self.monthCostMicros = monthCostMicros
    }

    // MARK: The windows

    /// Moves the windows to `second`: buckets older than 60 s leave the minute's sums, a new UTC
    /// day or month starts from 0. A clock that went back keeps the later windows.
    private mutating func advance(to second: Int64) {
        guard second > latestSecond else { return }
        let first = max(latestSecond &+ 1, second - 59)
        var s = first
        while s <= second {
            let slot = Int(s.mod(60))
            if bucketSecond[slot] != s {
                minuteRequests -= bucketRequests[slot]
                minuteTokens -= bucketTokens[slot]
                bucketSecond[slot] = s
                bucketRequests[slot] = 0
                bucketTokens[slot] = 0
            }
            s += 1
        }
        latestSecond = second
        let today = Self.day(second)
        if today != day {
            day = today
            dayRequests = 0
            dayTokens = 0
            dayCostMicros = 0
            let thisMonth = Self.month(second)
            if thisMonth != month {
                month = thisMonth
                monthCostMicros = 0
            }
        }
    }

    /// Seconds from `now` until the last minute's sum of `counts` is below `limit`: when enough
    /// of the oldest buckets have left the window.
    private func secondsUntilMinute(below limit: Int, of counts: [Int], now: Int64) -> Int {
        var sum = counts.reduce(0, +)
        var s = now - 59
        while s <= now {
            let slot = Int(s.mod(60))
            if bucketSecond[slot] == s { sum -= counts[slot] }
            if sum < limit { return Int(s + 60 - now) }
            s += 1
        }
        return 60
    }

    // MARK: Calendar (UTC, integers only)

    /// Days since 1970-01-01 of the UTC day holding `second`.
    public static func day(_ second: Int64) -> Int64 { second.floorDiv(86_400) }

    /// year * 12 + month - 1 of the UTC month holding `second`.
    public static func month(_ second: Int64) -> Int64 {
        let (year, month, _) = UTCCalendar.civil(day(second))
        return year * 12 + month - 1
    }

    static func secondsToNextDay(_ second: Int64) -> Int {
        Int((day(second) + 1) * 86_400 - second)
    }

    static func secondsToNextMonth(_ second: Int64) -> Int {
        let (year, month, _) = UTCCalendar.civil(day(second))
        let next = month == 12 ? UTCCalendar.daysFromCivil(year + 1, 1, 1) : UTCCalendar.daysFromCivil(year, month + 1, 1)
        return Int(next * 86_400 - second)
    }
}

extension Int64 {
    fileprivate func mod(_ d: Int64) -> Int64 {
        let r = self % d
        return r < 0 ? r + d : r
    }
}
