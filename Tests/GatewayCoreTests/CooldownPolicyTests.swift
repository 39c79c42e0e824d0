import Foundation
import Testing
@testable import GatewayCore

@Suite("CooldownPolicy")
struct CooldownPolicyTests {
    let policy = CooldownPolicy()

    // MARK: Backoff

    @Test func backoffDoublesFromBaseUpToTheCap() {
        let steps = (1...8).map { CooldownPolicy.backoff(base: 60, max: 3600, streak: $0) }
        #expect(steps == [60, 120, 240, 480, 960, 1920, 3600, 3600])
        #expect(CooldownPolicy.backoff(base: 60, max: 3600, streak: 0) == 60)
        #expect(CooldownPolicy.backoff(base: 60, max: 3600, streak: -5) == 60)
        #expect(CooldownPolicy.backoff(base: 2, max: 300, streak: Int.max) == 300)
    }

    // MARK: Throttles

    @Test func perMinuteUsesRetryDelayIncludingFractions() {
        let throttle = Throttle(kind: .perMinute, retryDelay: 37.82626638)
        #expect(policy.throttleUntil(throttle, now: baseDate, streak: 5) == baseDate.addingTimeInterval(37.82626638))
        #expect(policy.throttleUntil(Throttle(kind: .perMinute, retryDelay: 0.5), now: baseDate, streak: 1)
            == baseDate.addingTimeInterval(0.5))
    }

    @Test func hugeRetryDelaysAreCapped() {
        let throttle = Throttle(kind: .perMinute, retryDelay: 86_400 * 7)
        #expect(policy.throttleUntil(throttle, now: baseDate, streak: 1) == baseDate.addingTimeInterval(3600))
    }

    @Test func bareThrottleBacksOffWithTheStreak() {
        let bare = Throttle(kind: .perMinute)
        #expect(policy.throttleUntil(bare, now: baseDate, streak: 1) == baseDate.addingTimeInterval(60))
        #expect(policy.throttleUntil(bare, now: baseDate, streak: 2) == baseDate.addingTimeInterval(120))
        #expect(policy.throttleUntil(bare, now: baseDate, streak: 3) == baseDate.addingTimeInterval(240))
        #expect(policy.throttleUntil(bare, now: baseDate, streak: 20) == baseDate.addingTimeInterval(3600))
    }

    @Test func noQuotaCoolsForADay() {
        #expect(policy.throttleUntil(Throttle(kind: .noQuota, retryDelay: 5), now: baseDate, streak: 1)
            == baseDate.addingTimeInterval(86_400))
    }

    @Test func perDayIgnoresRetryDelayAndWaitsForPacificMidnight() {
        // 2025-06-15 10:00 PDT (UTC-7) -> 2025-06-16 00:00 PDT = 07:00 UTC.
        let now = utc("2025-06-15T17:00:00Z")
        let throttle = Throttle(kind: .perDay, retryDelay: 37)
        #expect(policy.throttleUntil(throttle, now: now, streak: 1) == utc("2025-06-16T07:00:00Z"))
    }

    // MARK: Midnight across DST

    @Test(arguments: [
        // Winter (PST, UTC-8).
        ("2025-01-15T12:00:00Z", "2025-01-16T08:00:00Z"),
        // Just before a PST midnight, and exactly at it (strictly after: the next one).
        ("2025-01-16T07:59:59Z", "2025-01-16T08:00:00Z"),
        ("2025-01-16T08:00:00Z", "2025-01-17T08:00:00Z"),
        // Spring forward on Sunday 2025-03-09 at 02:00 PST: that day has 23 hours.
        ("2025-03-08T20:00:00Z", "2025-03-09T08:00:00Z"),  // Sat 12:00 PST -> Sun 00:00 PST
        ("2025-03-09T09:30:00Z", "2025-03-10T07:00:00Z"),  // Sun 01:30 PST -> Mon 00:00 PDT
        ("2025-03-09T10:30:00Z", "2025-03-10T07:00:00Z"),  // Sun 03:30 PDT -> Mon 00:00 PDT
        // Summer (PDT, UTC-7).
        ("2025-07-04T06:59:00Z", "2025-07-04T07:00:00Z"),
        // Fall back on Sunday 2025-11-02 at 02:00 PDT: that day has 25 hours.
        ("2025-11-01T19:00:00Z", "2025-11-02T07:00:00Z"),  // Sat 12:00 PDT -> Sun 00:00 PDT
        ("2025-11-02T08:30:00Z", "2025-11-03T08:00:00Z"),  // Sun 01:30 PDT -> Mon 00:00 PST
        ("2025-11-02T09:30:00Z", "2025-11-03T08:00:00Z"),  // Sun 01:30 PST (again) -> Mon 00:00 PST
        ("2025-11-02T20:00:00Z", "2025-11-03T08:00:00Z"),  // Sun 12:00 PST
        // 2026 switches: March 8 and November 1.
        ("2026-03-08T12:00:00Z", "2026-03-09T07:00:00Z"),
        ("2026-11-01T12:00:00Z", "2026-11-02T08:00:00Z"),
    ])
    func nextPacificMidnight(now: String, expected: String) {
        #expect(CooldownPolicy.nextMidnight(after: utc(now), in: CooldownPolicy.pacific) == utc(expected))
    }

    @Test func pacificZoneIsTheRealOne() {
        #expect(CooldownPolicy.pacific.identifier == "America/Los_Angeles")
    }

    @Test func resetZoneIsTunable() {
        var policy = CooldownPolicy()
        policy.quotaResetTimeZone = TimeZone(identifier: "UTC")!
        #expect(policy.throttleUntil(Throttle(kind: .perDay), now: utc("2025-03-09T10:30:00Z"), streak: 1)
            == utc("2025-03-10T00:00:00Z"))
    }

    // MARK: Verdicts

    @Test func keyCooldownsPerVerdict() {
        #expect(policy.keyCooldownUntil(for: .keyUnusable(reason: "SERVICE_DISABLED"), now: baseDate, streak: 1)
            == baseDate.addingTimeInterval(600))
        #expect(policy.keyCooldownUntil(for: .throttled(Throttle(kind: .perMinute, retryDelay: 26)), now: baseDate, streak: 1)
            == baseDate.addingTimeInterval(26))
        for verdict: Verdict in [.success, .keyDead(reason: "X"), .clientError(reason: "X"), .transient(reason: "X"),
                                 .upstreamFailure(reason: "X"), .upstreamBlocked(reason: "X"), .cancelled] {
            #expect(policy.keyCooldownUntil(for: verdict, now: baseDate, streak: 1) == nil)
        }
    }

    @Test func upstreamCooldownsPerVerdict() {
        let failure = Verdict.upstreamFailure(reason: "CONNECTION_RESET")
        #expect(policy.upstreamCooldownUntil(for: failure, now: baseDate, streak: 1) == baseDate.addingTimeInterval(2))
        #expect(policy.upstreamCooldownUntil(for: failure, now: baseDate, streak: 2) == baseDate.addingTimeInterval(4))
        #expect(policy.upstreamCooldownUntil(for: failure, now: baseDate, streak: 9) == baseDate.addingTimeInterval(300))
        #expect(policy.upstreamCooldownUntil(for: .upstreamBlocked(reason: "LOCATION_NOT_SUPPORTED"), now: baseDate, streak: 1)
            == baseDate.addingTimeInterval(1800))
        #expect(policy.upstreamCooldownUntil(for: .transient(reason: "UNAVAILABLE"), now: baseDate, streak: 3) == nil)
        #expect(policy.upstreamCooldownUntil(for: .throttled(Throttle(kind: .perDay)), now: baseDate, streak: 1) == nil)
    }
}
