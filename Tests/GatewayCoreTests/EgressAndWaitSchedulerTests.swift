import Foundation
import Testing
@testable import GatewayCore

/// What the scheduler says a request may wait for, and when it blames an upstream's egress for
/// a burst of 429s instead of the keys.
@Suite("Scheduler: waits and egress")
struct EgressAndWaitSchedulerTests {
    let flash = "gemini-2.5-flash"
    let perMinute = Throttle(kind: .perMinute, retryDelay: 30, quotaID: "GenerateRequestsPerMinutePerProjectPerModel")

    // MARK: What a request waits for

    @Test func theSoonestPerMinuteCooldownIsWaitedFor() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 30)), key: 1, upstream: 1, model: flash, now: baseDate)
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 5)), key: 2, upstream: 1, model: flash, now: baseDate)
        #expect(scheduler.waitableReturn(model: flash, now: baseDate) == baseDate.addingTimeInterval(5))
        #expect(scheduler.waitableReturn(key: 1, model: flash, now: baseDate) == baseDate.addingTimeInterval(30))
        // Another model has nothing to wait for: its keys are not cooling.
        #expect(scheduler.waitableReturn(model: "gemini-2.5-pro", now: baseDate) == nil)
    }

    @Test func perDayNoQuotaAndUnusableKeysAreNeverWaitedFor() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perDay, quotaID: "GenerateRequestsPerDayPerProjectPerModel-FreeTier")),
                             key: 1, upstream: 1, model: flash, now: baseDate)
        _ = scheduler.record(.throttled(Throttle(kind: .noQuota, quotaID: "X")), key: 2, upstream: 1, model: flash, now: baseDate)
        _ = scheduler.record(.keyUnusable(reason: "SERVICE_DISABLED"), key: 3, upstream: 1, model: flash, now: baseDate)
        guard case .allKeysCooling = scheduler.pick(model: flash, now: baseDate) else {
            Issue.record("expected every key cooling")
            return
        }
        #expect(scheduler.waitableReturn(model: flash, now: baseDate) == nil)
        // Even a minute before midnight, the per-day key is not waited for.
        #expect(scheduler.waitableReturn(key: 1, model: flash, now: baseDate) == nil)
    }

    @Test func aKeyWithAPerMinuteAndAPerDayCooldownIsNotWaitedFor() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perDay, quotaID: "XPerDay")), key: 1, upstream: 1, model: flash, now: baseDate)
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 1)), key: 1, upstream: 1, model: flash, now: baseDate)
        #expect(scheduler.waitableReturn(model: flash, now: baseDate) == nil)
    }

    // MARK: Blaming the egress

    /// Keys 1-3 in projects p1, p2, p3 (and 4-6 likewise), two upstreams.
    private func threeProjects() -> Scheduler {
        Scheduler(keys: poolKeys(6) { "p\(($0 - 1) % 3 + 1)" }, upstreams: poolUpstreams(2))
    }

    @Test func keysOfThreeProjectsThrottledThroughOneUpstreamBlameIt() {
        var scheduler = threeProjects()
        _ = scheduler.record(.success, key: 4, upstream: 2, model: flash, now: baseDate)
        var changes: [StateChange] = []
        for (offset, key) in [1, 2, 3].enumerated() {
            changes = scheduler.record(.throttled(perMinute), key: Int64(key), upstream: 1, model: flash,
                                       now: baseDate.addingTimeInterval(Double(offset)))
        }
        let now = baseDate.addingTimeInterval(2)
        // The upstream cools, for the egress...
        #expect(scheduler.upstream(id: 1)?.isCooling(at: now) == true)
        #expect(changes.contains { if case .upstreamFailed(1, _, _, EgressRule.reason, _) = $0 { true } else { false } })
        // ...and no key or project stays cooled for it: all three are lifted, in memory and in writing.
        #expect(scheduler.activeKeyCooldowns(now: now).isEmpty)
        #expect(scheduler.activeProjectCooldowns(now: now).isEmpty)
        #expect(changes.filter { if case .keyCooldownLifted = $0 { true } else { false } }.count == 3)
        #expect(changes.filter { if case .projectCooldownLifted = $0 { true } else { false } }.count == 3)
        #expect(scheduler.key(id: 1)?.throttleStreak == 0)
        // The next pick goes through the other upstream.
        #expect(scheduler.pick(model: flash, now: now).upstreamID == 2)
    }

    @Test func keysOfOneProjectThrottledTogetherCoolTheKeysNotTheUpstream() {
        var scheduler = Scheduler(keys: poolKeys(10) { _ in "one" }, upstreams: poolUpstreams(2))
        _ = scheduler.record(.success, key: 1, upstream: 2, model: flash, now: baseDate)
        for key in 1...10 {
            _ = scheduler.record(.throttled(perMinute), key: Int64(key), upstream: 1, model: flash, now: baseDate)
        }
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate) == false)
        #expect(scheduler.activeKeyCooldowns(now: baseDate).count == 10)
        #expect(scheduler.activeProjectCooldowns(now: baseDate).count == 1)
    }

    @Test func withOneUpstreamThereIsNothingToCompareWith() {
        var scheduler = Scheduler(keys: poolKeys(6) { "p\($0)" }, upstreams: poolUpstreams(1))
        _ = scheduler.record(.success, key: 6, upstream: 1, model: flash, now: baseDate)
        for key in 1...5 {
            _ = scheduler.record(.throttled(perMinute), key: Int64(key), upstream: 1, model: flash, now: baseDate)
        }
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate) == false)
        #expect(scheduler.activeKeyCooldowns(now: baseDate).count == 5)
    }

    @Test func withoutASuccessElsewhereTheKeysCool() {
        // Every upstream throttles alike (or the other was not used lately): nothing says the
        // egress is at fault.
        var scheduler = threeProjects()
        _ = scheduler.record(.success, key: 4, upstream: 2, model: flash, now: baseDate)
        for key in 1...3 {
            _ = scheduler.record(.throttled(perMinute), key: Int64(key), upstream: 1, model: flash, now: baseDate.addingTimeInterval(11))
        }
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate.addingTimeInterval(11)) == false)
        #expect(scheduler.activeKeyCooldowns(now: baseDate.addingTimeInterval(11)).count == 3)
    }

    @Test func throttlesOutsideTheWindowAndPerDayOnesDoNotCount() {
        var scheduler = threeProjects()
        _ = scheduler.record(.success, key: 4, upstream: 2, model: flash, now: baseDate.addingTimeInterval(20))
        _ = scheduler.record(.throttled(perMinute), key: 1, upstream: 1, model: flash, now: baseDate)
        _ = scheduler.record(.throttled(Throttle(kind: .perDay, quotaID: "XPerDay")), key: 2, upstream: 1, model: flash,
                             now: baseDate.addingTimeInterval(20))
        _ = scheduler.record(.throttled(perMinute), key: 3, upstream: 1, model: flash, now: baseDate.addingTimeInterval(20))
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate.addingTimeInterval(20)) == false)
    }

    @Test func aCooldownALaterThrottleExtendedIsNotLifted() {
        var scheduler = threeProjects()
        _ = scheduler.record(.success, key: 4, upstream: 2, model: flash, now: baseDate)
        // Key 1's project was cooling for an hour already (an honest quota through the other upstream).
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 3600, quotaID: "XPerMinute")),
                             key: 4, upstream: 2, model: flash, now: baseDate)
        for key in [1, 2, 3] {
            _ = scheduler.record(.throttled(perMinute), key: Int64(key), upstream: 1, model: flash, now: baseDate)
        }
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate) == true)
        #expect(scheduler.activeProjectCooldowns(now: baseDate).map(\.project) == ["p1"])
    }

    @Test func theRuleCanBeTurnedOff() {
        var scheduler = threeProjects()
        var policy = CooldownPolicy()
        policy.egress.minimumProjects = 0
        _ = scheduler.record(.success, key: 4, upstream: 2, model: flash, now: baseDate, policy: policy)
        for key in 1...3 {
            _ = scheduler.record(.throttled(perMinute), key: Int64(key), upstream: 1, model: flash, now: baseDate, policy: policy)
        }
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate) == false)
    }
}
