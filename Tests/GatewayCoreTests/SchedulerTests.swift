import Foundation
import Testing
import TestSupport
@testable import GatewayCore

@Suite("Scheduler")
struct SchedulerTests {
    let policy = CooldownPolicy()
    let flash = "gemini-2.5-flash"
    let pro = "gemini-2.5-pro"

    // MARK: Fairness

    @Test func roundRobinOverKeysAndUpstreams() {
        var scheduler = Scheduler(keys: poolKeys(4), upstreams: poolUpstreams(2))
        var keyCounts: [Int64: Int] = [:]
        var upstreamCounts: [Int64: Int] = [:]
        for step in 0..<400 {
            let result = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step) * 0.01))
            keyCounts[result.keyID ?? -1, default: 0] += 1
            upstreamCounts[result.upstreamID ?? -1, default: 0] += 1
        }
        #expect(keyCounts == [1: 100, 2: 100, 3: 100, 4: 100])
        #expect(upstreamCounts == [1: 200, 2: 200])
    }

    @Test func roundRobinEvenWhenEveryPickHasTheSameInstant() {
        var scheduler = Scheduler(keys: poolKeys(4), upstreams: poolUpstreams(2))
        var order: [Int64] = []
        var keyCounts: [Int64: Int] = [:]
        for _ in 0..<400 {
            let id = scheduler.pick(model: flash, now: baseDate).keyID ?? -1
            if order.count < 8 { order.append(id) }
            keyCounts[id, default: 0] += 1
        }
        #expect(order == [1, 2, 3, 4, 1, 2, 3, 4])
        #expect(keyCounts == [1: 100, 2: 100, 3: 100, 4: 100])
    }

    @Test func leastRecentlyUsedFromTheDatabaseGoesFirst() {
        let keys = [
            PoolKey(id: 1, secret: "a", fingerprint: "a", lastUsedAt: baseDate.addingTimeInterval(-10)),
            PoolKey(id: 2, secret: "b", fingerprint: "b", lastUsedAt: baseDate.addingTimeInterval(-30)),
            PoolKey(id: 3, secret: "c", fingerprint: "c", lastUsedAt: nil),
            PoolKey(id: 4, secret: "d", fingerprint: "d", lastUsedAt: baseDate.addingTimeInterval(-100), lastThrottledAt: baseDate.addingTimeInterval(-50)),
        ]
        var scheduler = Scheduler(keys: keys, upstreams: poolUpstreams(1))
        let order = (0..<4).map { scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double($0))).keyID }
        // Key 4 was throttled once: it waits while never-throttled keys are healthy.
        #expect(order == [3, 2, 1, 3])
    }

    @Test func pickMarksKeyAndUpstreamUsed() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        guard case .pair(let key, let upstream) = scheduler.pick(model: flash, now: baseDate) else {
            Issue.record("no pair")
            return
        }
        #expect(key.lastUsedAt == baseDate)
        #expect(upstream.lastUsedAt == baseDate)
        #expect(key.secret == "AIza-secret-1")
        #expect(scheduler.key(id: 1)?.lastUsedAt == baseDate)
        #expect(scheduler.upstream(id: 1)?.lastUsedAt == baseDate)
    }

    // MARK: Throttling

    @Test func throttledKeyWaitsForItsDelayButServesOtherModels() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        #expect(scheduler.pick(model: flash, now: baseDate).keyID == 1)
        let changes = scheduler.record(
            .throttled(Throttle(kind: .perMinute, retryDelay: 30, quotaID: "XPerMinute")),
            key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes.contains(.keyThrottled(id: 1, at: baseDate, streak: 1)))
        #expect(changes.contains(.keyCooldown(KeyCooldown(
            keyID: 1, model: flash, until: baseDate.addingTimeInterval(30), reason: "RATE_LIMIT_PER_MINUTE", quotaID: "XPerMinute"))))

        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)) == .allKeysCooling(until: baseDate.addingTimeInterval(30)))
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(29.9)) == .allKeysCooling(until: baseDate.addingTimeInterval(30)))
        #expect(scheduler.pick(model: pro, now: baseDate.addingTimeInterval(2)).keyID == 1)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(30)).keyID == 1)
    }

    @Test func throttledKeyIsSkippedWhileOthersServe() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 60)), key: 2, upstream: 1, model: flash, now: baseDate, policy: policy)
        var seen: Set<Int64> = []
        for step in 1...30 {
            seen.insert(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).keyID ?? -1)
        }
        #expect(seen == [1, 3])
        #expect(scheduler.cooldownEnd(keyID: 2, model: flash, now: baseDate.addingTimeInterval(59)) == baseDate.addingTimeInterval(60))
        #expect(scheduler.cooldownEnd(keyID: 2, model: flash, now: baseDate.addingTimeInterval(60)) == nil)
    }

    @Test func leastRecentlyThrottledIsPreferred() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(1))
        // Throttle every key briefly, at different times, for another model.
        for (offset, id) in [(0.0, Int64(3)), (1.0, Int64(1)), (2.0, Int64(2))] {
            _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 1)), key: id, upstream: 1, model: pro,
                                 now: baseDate.addingTimeInterval(offset), policy: policy)
        }
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(10)).keyID == 3)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(11)).keyID == 3)
        // A success does not forget the throttle time: order stays by last throttle.
        _ = scheduler.record(.success, key: 3, upstream: 1, model: flash, now: baseDate.addingTimeInterval(11), policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(12)).keyID == 3)
    }

    @Test func bareThrottlesBackOffAndSuccessResetsTheStreak() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        var now = baseDate
        var ends: [TimeInterval] = []
        for _ in 0..<3 {
            let changes = scheduler.record(.throttled(Throttle(kind: .perMinute)), key: 1, upstream: 1, model: flash, now: now, policy: policy)
            for case .keyCooldown(let cooldown) in changes { ends.append(cooldown.until.timeIntervalSince(now)) }
            now = now.addingTimeInterval(10_000)
        }
        #expect(ends == [60, 120, 240])
        #expect(scheduler.key(id: 1)?.throttleStreak == 3)
        #expect(scheduler.record(.success, key: 1, upstream: 1, model: flash, now: now, policy: policy) == [.keyRecovered(id: 1)])
        #expect(scheduler.key(id: 1)?.throttleStreak == 0)
        let changes = scheduler.record(.throttled(Throttle(kind: .perMinute)), key: 1, upstream: 1, model: flash, now: now, policy: policy)
        #expect(changes.contains(.keyCooldown(KeyCooldown(keyID: 1, model: flash, until: now.addingTimeInterval(60), reason: "RATE_LIMIT"))))
    }

    @Test func cooldownsAreExtendedNeverShortened() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .noQuota)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        let changes = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 5)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes.contains(.keyCooldown(KeyCooldown(keyID: 1, model: flash, until: baseDate.addingTimeInterval(86_400), reason: "NO_QUOTA"))))
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate.addingTimeInterval(10)) == baseDate.addingTimeInterval(86_400))
    }

    // MARK: Projects

    @Test func projectWideCooldownCoversEveryKeyOfTheProject() {
        let keys = poolKeys(4) { id in id <= 2 ? "p" : (id == 3 ? "q" : nil) }
        var scheduler = Scheduler(keys: keys, upstreams: poolUpstreams(1))
        let now = utc("2025-06-15T17:00:00Z")
        let midnight = utc("2025-06-16T07:00:00Z")
        let throttle = Throttle(kind: .perDay, retryDelay: 37, quotaID: "GenerateRequestsPerDayPerProjectPerModel-FreeTier", model: flash)
        let changes = scheduler.record(.throttled(throttle), key: 1, upstream: 1, model: flash, now: now, policy: policy)
        #expect(changes.contains(.projectCooldown(ProjectCooldown(
            project: "p", model: flash, until: midnight, reason: "QUOTA_PER_DAY",
            quotaID: "GenerateRequestsPerDayPerProjectPerModel-FreeTier"))))

        var flashKeys: Set<Int64> = []
        var proKeys: Set<Int64> = []
        for step in 1...40 {
            flashKeys.insert(scheduler.pick(model: flash, now: now.addingTimeInterval(Double(step))).keyID ?? -1)
            proKeys.insert(scheduler.pick(model: pro, now: now.addingTimeInterval(Double(step) + 0.5)).keyID ?? -1)
        }
        #expect(flashKeys == [3, 4])
        // Key 1 was throttled, so never-throttled keys go first; but it is not cooling for pro.
        #expect(proKeys == [2, 3, 4])
        #expect(scheduler.cooldownEnd(keyID: 1, model: pro, now: now) == nil)
        #expect(scheduler.cooldownEnd(keyID: 2, model: flash, now: now) == midnight)
        #expect(scheduler.activeProjectCooldowns(now: now).map(\.project) == ["p"])
        // After midnight the project serves the model again.
        #expect(scheduler.cooldownEnd(keyID: 2, model: flash, now: midnight) == nil)
    }

    @Test func bareThrottleOnALabelledKeyStaysOnTheKey() {
        var scheduler = Scheduler(keys: poolKeys(2) { _ in "p" }, upstreams: poolUpstreams(1))
        let changes = scheduler.record(.throttled(Throttle(kind: .perMinute)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(!changes.contains { if case .projectCooldown = $0 { true } else { false } })
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)).keyID == 2)
        #expect(scheduler.cooldownEnd(keyID: 2, model: flash, now: baseDate) == nil)
    }

    @Test func unlabelledKeysNeverCoolOthers() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        let changes = scheduler.record(.throttled(Throttle(kind: .noQuota, quotaID: "Q")), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes.count == 2)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)).keyID == 2)
    }

    // MARK: Dead and unusable keys

    @Test func deadKeyIsNeverPickedAgain() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(2))
        let changes = scheduler.record(.keyDead(reason: "API_KEY_INVALID"), key: 2, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes == [.keyDeleted(id: 2, reason: "API_KEY_INVALID", at: baseDate)])
        #expect(scheduler.keyCount == 2)
        #expect(scheduler.key(id: 2) == nil)
        for step in 0..<100 {
            #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).keyID != 2)
        }
        // A second verdict for the same key (a concurrent attempt) changes nothing.
        #expect(scheduler.record(.keyDead(reason: "API_KEY_INVALID"), key: 2, upstream: 1, model: flash, now: baseDate, policy: policy) == [])
        #expect(scheduler.record(.throttled(Throttle(kind: .perDay)), key: 2, upstream: 1, model: flash, now: baseDate, policy: policy) == [])
    }

    @Test func lastKeyDyingMeansNoKeys() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.record(.keyDead(reason: "KEY_LEAKED"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate) == .noKeys)
    }

    @Test func unusableKeyCoolsForEveryModel() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        let changes = scheduler.record(.keyUnusable(reason: "SERVICE_DISABLED"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes.contains(.keyCooldown(KeyCooldown(keyID: 1, model: "*", until: baseDate.addingTimeInterval(600), reason: "SERVICE_DISABLED"))))
        #expect(scheduler.key(id: 1)?.throttleStreak == 0)
        for (step, model) in [flash, pro, ModelName.unknown, "x"].enumerated() {
            #expect(scheduler.pick(model: model, now: baseDate.addingTimeInterval(Double(step))).keyID == 2)
        }
        #expect(scheduler.cooldownEnd(keyID: 1, model: "anything", now: baseDate) == baseDate.addingTimeInterval(600))
        #expect(scheduler.cooldownEnd(keyID: 1, model: "anything", now: baseDate.addingTimeInterval(600)) == nil)
    }

    @Test func clientErrorsAndCancellationsChangeNothing() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.pick(model: flash, now: baseDate)
        let before = (scheduler.key(id: 1), scheduler.upstream(id: 1))
        #expect(scheduler.record(.clientError(reason: "NOT_FOUND"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy) == [])
        #expect(scheduler.record(.cancelled, key: 1, upstream: 1, model: flash, now: baseDate, policy: policy) == [])
        #expect(scheduler.key(id: 1) == before.0)
        #expect(scheduler.upstream(id: 1) == before.1)
    }

    // MARK: No pair

    @Test func allKeysCoolingReportsTheSoonestEnd() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(1))
        for (id, delay) in [(Int64(1), 50.0), (2, 20), (3, 40)] {
            _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: delay)), key: id, upstream: 1, model: flash, now: baseDate, policy: policy)
        }
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)) == .allKeysCooling(until: baseDate.addingTimeInterval(20)))
        // Cached answer is the same, and forgotten once it has passed.
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(2)) == .allKeysCooling(until: baseDate.addingTimeInterval(20)))
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(20)).keyID == 2)
        #expect(scheduler.pick(model: pro, now: baseDate.addingTimeInterval(21)).keyID != nil)
    }

    @Test func aKeyCoolingTwiceIsFreeAtItsLatestEnd() {
        var scheduler = Scheduler(keys: poolKeys(2) { _ in "p" }, upstreams: poolUpstreams(1))
        // Key 1: own cooldown 10 s, project cooldown 100 s; key 2: project cooldown 100 s only.
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 100, quotaID: "QPerMinute")), key: 2, upstream: 1, model: flash, now: baseDate, policy: policy)
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 10)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)) == .allKeysCooling(until: baseDate.addingTimeInterval(100)))
    }

    @Test func emptyPools() {
        var empty = Scheduler()
        #expect(empty.pick(model: flash, now: baseDate) == .noKeys)
        var noUpstreams = Scheduler(keys: poolKeys(2), upstreams: [])
        #expect(noUpstreams.pick(model: flash, now: baseDate) == .noUpstreams)
        var noKeys = Scheduler(keys: [], upstreams: poolUpstreams(2))
        #expect(noKeys.pick(model: flash, now: baseDate) == .noKeys)
    }

    // MARK: Tried pairs

    @Test func triedPairsAreExcluded() {
        var oneKey = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(2))
        #expect(oneKey.pick(model: flash, now: baseDate).pairID == PairID(key: 1, upstream: 1))
        #expect(oneKey.pick(model: flash, now: baseDate, tried: [PairID(key: 1, upstream: 1)]).pairID == PairID(key: 1, upstream: 2))
        #expect(oneKey.pick(model: flash, now: baseDate, tried: [PairID(key: 1, upstream: 1), PairID(key: 1, upstream: 2)]) == .exhausted)

        var oneUpstream = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        #expect(oneUpstream.pick(model: flash, now: baseDate, tried: [PairID(key: 1, upstream: 1)]).pairID == PairID(key: 2, upstream: 1))
    }

    @Test func anotherKeyOnAHealthyUpstreamBeatsACoolingUpstream() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(2))
        _ = scheduler.record(.upstreamFailure(reason: "TIMEOUT"), key: 1, upstream: 2, model: flash, now: baseDate, policy: policy)
        let result = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(0.5), tried: [PairID(key: 1, upstream: 1)])
        #expect(result.pairID == PairID(key: 2, upstream: 1))
    }

    @Test func coolingUpstreamIsTheLastResortForAnUntriedPair() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(2))
        _ = scheduler.record(.upstreamFailure(reason: "TIMEOUT"), key: 1, upstream: 2, model: flash, now: baseDate, policy: policy)
        let result = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(0.5), tried: [PairID(key: 1, upstream: 1)])
        #expect(result.pairID == PairID(key: 1, upstream: 2))
    }

    @Test func triedPairsBesideCoolingKeysIsExhaustedNotCooling() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 30)), key: 2, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate, tried: [PairID(key: 1, upstream: 1)]) == .exhausted)
    }

    // MARK: Upstreams

    @Test func upstreamBackoffGrowsAndSuccessResetsIt() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(2))
        var now = baseDate
        var backoffs: [TimeInterval] = []
        for _ in 0..<10 {
            let changes = scheduler.record(.upstreamFailure(reason: "CONNECTION_RESET"), key: 1, upstream: 1, model: flash, now: now, policy: policy)
            for case .upstreamFailed(_, let until?, _, _, _) in changes { backoffs.append(until.timeIntervalSince(now)) }
            now = now.addingTimeInterval(1000)
        }
        #expect(backoffs == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300])
        #expect(scheduler.upstream(id: 1)?.failureStreak == 10)

        #expect(scheduler.record(.success, key: 1, upstream: 1, model: flash, now: now, policy: policy) == [.upstreamRecovered(id: 1)])
        #expect(scheduler.upstream(id: 1)?.failureStreak == 0)
        #expect(scheduler.upstream(id: 1)?.cooldownUntil == nil)
        #expect(scheduler.record(.success, key: 1, upstream: 1, model: flash, now: now, policy: policy) == [])
        let changes = scheduler.record(.upstreamFailure(reason: "TIMEOUT"), key: 1, upstream: 1, model: flash, now: now, policy: policy)
        #expect(changes == [.upstreamFailed(id: 1, until: now.addingTimeInterval(2), streak: 1, reason: "TIMEOUT", at: now)])
    }

    @Test func coolingUpstreamIsAvoidedWhileAnotherIsHealthy() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(2))
        _ = scheduler.record(.upstreamBlocked(reason: "LOCATION_NOT_SUPPORTED"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.upstream(id: 1)?.cooldownUntil == baseDate.addingTimeInterval(1800))
        for step in 1...20 {
            #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).upstreamID == 2)
        }
        // Once its cooldown is over it is healthy again and, its failure forgotten, takes its share
        // of the load: it is the least recently used, then they alternate.
        #expect(scheduler.upstream(id: 1)?.isCooling(at: baseDate.addingTimeInterval(1800)) == false)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1800)).upstreamID == 1)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1800.5)).upstreamID == 2)
        // A recent failure (here a transient one on 2) ranks an upstream behind the others.
        _ = scheduler.record(.transient(reason: "INTERNAL"), key: 1, upstream: 2, model: flash, now: baseDate.addingTimeInterval(1801), policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1802)).upstreamID == 1)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1803)).upstreamID == 1)
    }

    @Test func aFailureIsRememberedForAWhileAfterTheCooldownThenForgotten() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(2))
        scheduler.upstreamFailureMemory = 30
        // A connection reset cools upstream 1 for 2 s (the first backoff step).
        _ = scheduler.record(.upstreamFailure(reason: "CONNECTION_RESET"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        // Out of its cooldown but within the memory: the upstream that did not fail goes first.
        for step in 3...10 {
            #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).upstreamID == 2)
        }
        // Past the memory, load alternates again.
        let later = (31...34).map { scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double($0))).upstreamID }
        #expect(later.filter { $0 == 1 }.count == 2)
        #expect(later.filter { $0 == 2 }.count == 2)
    }

    @Test func allUpstreamsCoolingFallsBackToTheSoonestEnd() {
        var single = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        _ = single.record(.upstreamFailure(reason: "CONNECTION_RESET"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(single.pick(model: flash, now: baseDate.addingTimeInterval(0.1)).pairID == PairID(key: 1, upstream: 1))

        var two = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(2))
        _ = two.record(.upstreamBlocked(reason: "LOCATION_NOT_SUPPORTED"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        _ = two.record(.upstreamFailure(reason: "TIMEOUT"), key: 1, upstream: 2, model: flash, now: baseDate, policy: policy)
        #expect(two.pick(model: flash, now: baseDate.addingTimeInterval(0.1)).upstreamID == 2)
        #expect(two.pick(model: flash, now: baseDate.addingTimeInterval(0.2), tried: [PairID(key: 1, upstream: 2)]).upstreamID == 1)
    }

    @Test func transientFailuresDeprioritiseWithoutCooling() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(2))
        _ = scheduler.pick(model: flash, now: baseDate)  // uses upstream 1
        let changes = scheduler.record(.transient(reason: "UNAVAILABLE"), key: 1, upstream: 2, model: flash, now: baseDate, policy: policy)
        #expect(changes == [.upstreamFailed(id: 2, until: nil, streak: 0, reason: "UNAVAILABLE", at: baseDate)])
        #expect(scheduler.upstream(id: 2)?.cooldownUntil == nil)
        #expect(scheduler.upstream(id: 2)?.failureStreak == 0)
        // Upstream 1 was used more recently, but 2 failed more recently: 1 is preferred.
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)).upstreamID == 1)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(2)).upstreamID == 1)
        // The key itself is not blamed.
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate) == nil)
    }

    // MARK: Reload

    @Test func replaceKeepsInMemoryStateOfKeysThatStay() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(2))
        for step in 0..<6 { _ = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))) }
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 60)), key: 1, upstream: 1, model: flash,
                             now: baseDate.addingTimeInterval(6), policy: policy)
        _ = scheduler.record(.upstreamFailure(reason: "TIMEOUT"), key: 1, upstream: 2, model: flash,
                             now: baseDate.addingTimeInterval(6), policy: policy)
        let usedBefore = scheduler.key(id: 3)?.lastUsedAt

        // The database's view: key 2 disabled, key 4 imported, key 1's row not yet updated.
        var reloadedKeys = poolKeys(4)
        reloadedKeys.remove(at: 1)
        reloadedKeys[0].project = "p-new"
        scheduler.replace(keys: reloadedKeys, upstreams: poolUpstreams(2))

        #expect(scheduler.keyCount == 3)
        #expect(scheduler.key(id: 2) == nil)
        #expect(scheduler.key(id: 1)?.lastThrottledAt == baseDate.addingTimeInterval(6))
        #expect(scheduler.key(id: 1)?.throttleStreak == 1)
        #expect(scheduler.key(id: 1)?.project == "p-new")
        #expect(scheduler.key(id: 3)?.lastUsedAt == usedBefore)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate.addingTimeInterval(7)) == baseDate.addingTimeInterval(66))
        #expect(scheduler.upstream(id: 2)?.failureStreak == 1)
        #expect(scheduler.upstream(id: 2)?.isCooling(at: baseDate.addingTimeInterval(7)) == true)

        // The new key was never used: it goes first; then the least recently used of the others.
        let next = (0..<3).map { scheduler.pick(model: flash, now: baseDate.addingTimeInterval(10 + Double($0))).keyID }
        // Key 1 is cooling for the model; key 2 is gone.
        #expect(next == [4, 3, 4])
    }

    @Test func replaceAppliesDatabaseCooldownsAndCanDropInMemoryOnes() {
        var scheduler = Scheduler(keys: poolKeys(2) { _ in "p" }, upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 60)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        let fromDatabase = [KeyCooldown(keyID: 2, model: pro, until: baseDate.addingTimeInterval(500), reason: "NO_QUOTA")]
        let projectWide = [ProjectCooldown(project: "p", model: "gemini-x", until: baseDate.addingTimeInterval(900), reason: "QUOTA_PER_DAY")]

        scheduler.replace(keys: poolKeys(2) { _ in "p" }, upstreams: poolUpstreams(1), cooldowns: fromDatabase, projectCooldowns: projectWide)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate) == baseDate.addingTimeInterval(60))
        #expect(scheduler.cooldownEnd(keyID: 2, model: pro, now: baseDate) == baseDate.addingTimeInterval(500))
        #expect(scheduler.cooldownEnd(keyID: 1, model: "gemini-x", now: baseDate) == baseDate.addingTimeInterval(900))

        scheduler.replace(keys: poolKeys(2) { _ in "p" }, upstreams: poolUpstreams(1), cooldowns: fromDatabase, keepingInMemoryCooldowns: false)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate) == nil)
        #expect(scheduler.cooldownEnd(keyID: 1, model: "gemini-x", now: baseDate) == nil)
        #expect(scheduler.cooldownEnd(keyID: 2, model: pro, now: baseDate) == baseDate.addingTimeInterval(500))
    }

    @Test func replaceForgetsACachedAllCoolingAnswer() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .noQuota)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate) == .allKeysCooling(until: baseDate.addingTimeInterval(86_400)))
        scheduler.replace(keys: poolKeys(2), upstreams: poolUpstreams(1))
        #expect(scheduler.pick(model: flash, now: baseDate).keyID == 2)
    }

    @Test func loadedStateIsUsed() {
        let upstreams = [
            PoolUpstream(id: 1, baseURL: "a", cooldownUntil: baseDate.addingTimeInterval(100), failureStreak: 3, lastFailureAt: baseDate),
            PoolUpstream(id: 2, baseURL: "b"),
        ]
        var scheduler = Scheduler(
            keys: poolKeys(2), upstreams: upstreams,
            cooldowns: [KeyCooldown(keyID: 1, model: "*", until: baseDate.addingTimeInterval(50), reason: "SERVICE_DISABLED")])
        #expect(scheduler.pick(model: flash, now: baseDate).pairID == PairID(key: 2, upstream: 2))
        #expect(scheduler.snapshot(now: baseDate) == PoolSnapshot(activeKeys: 2, coolingKeys: 1, unusableKeys: 1, upstreams: 2, healthyUpstreams: 1))
    }

    // MARK: Model views

    /// Keys that hit a per-day quota early rank first ("least recently throttled"), ahead of keys
    /// throttled later for another model: the first pick skips them and parks them in a view for
    /// the model, later picks do not meet them again, and the view goes when they are free.
    @Test func manyCoolingKeysAreParkedOncePerCooldown() {
        var scheduler = Scheduler(keys: poolKeys(100), upstreams: poolUpstreams(1))
        let morning = utc("2025-06-15T16:00:00Z")
        for id in 1...100 {
            let at = morning.addingTimeInterval(Double(id))
            if id <= 40 {
                _ = scheduler.record(.throttled(Throttle(kind: .perDay, quotaID: "PerDay")), key: Int64(id), upstream: 1, model: flash, now: at, policy: policy)
            } else {
                _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 1)), key: Int64(id), upstream: 1, model: pro, now: at, policy: policy)
            }
        }
        let noon = utc("2025-06-15T19:00:00Z")
        #expect(scheduler.views.isEmpty)
        #expect(scheduler.pick(model: flash, now: noon).keyID == 41)
        #expect(scheduler.views.count == 1)
        #expect(scheduler.views[0].parked.count == 40)
        // The walk no longer meets the parked keys: the root of the view is healthy.
        let walk = scheduler.walk(scheduler.views[0].heap, model: flash, now: noon.timeIntervalSinceReferenceDate, tried: [])
        #expect(walk.cooling.isEmpty)
        #expect(walk.chosen != nil)
        // Flash keeps using the least recently throttled healthy key; pro may use key 1.
        for step in 1...20 {
            #expect(scheduler.pick(model: flash, now: noon.addingTimeInterval(Double(step))).keyID == 41)
        }
        #expect(scheduler.pick(model: pro, now: noon.addingTimeInterval(200)).keyID == 1)
        #expect(scheduler.views[0].parked.count == 40)
        // After midnight the parked keys come back, in rank order, and the view is dropped.
        let midnight = utc("2025-06-16T07:00:00Z")
        #expect(scheduler.pick(model: flash, now: midnight).keyID == 1)
        #expect(scheduler.views.isEmpty)
        #expect((1...100).allSatisfy { scheduler.cooldownEnd(keyID: Int64($0), model: flash, now: midnight) == nil })
    }

    @Test func viewReportsAllKeysCoolingWithTheSoonestEnd() {
        var scheduler = Scheduler(keys: poolKeys(20), upstreams: poolUpstreams(1))
        scheduler.viewThreshold = 1
        for id in 1...20 {
            _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: Double(100 - id))), key: Int64(id), upstream: 1, model: flash, now: baseDate, policy: policy)
        }
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)) == .allKeysCooling(until: baseDate.addingTimeInterval(80)))
        #expect(scheduler.views.count == 1)
        #expect(scheduler.views[0].heap.count == 0)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(2)) == .allKeysCooling(until: baseDate.addingTimeInterval(80)))
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(80)).keyID == 20)
        // A key that dies while parked never comes back.
        _ = scheduler.record(.keyDead(reason: "X"), key: 19, upstream: 1, model: flash, now: baseDate.addingTimeInterval(80), policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(81.5)).keyID == 20)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(82)).keyID == 18)
    }

    // MARK: Snapshot and usage

    @Test func snapshotCounts() {
        var scheduler = Scheduler(keys: poolKeys(4) { $0 <= 2 ? "p" : nil }, upstreams: poolUpstreams(2))
        #expect(scheduler.snapshot(now: baseDate) == PoolSnapshot(activeKeys: 4, coolingKeys: 0, unusableKeys: 0, upstreams: 2, healthyUpstreams: 2))
        #expect(scheduler.snapshot(now: baseDate).hasUsablePair)
        _ = scheduler.record(.throttled(Throttle(kind: .perDay, quotaID: "PerDay")), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        _ = scheduler.record(.keyUnusable(reason: "SERVICE_DISABLED"), key: 3, upstream: 1, model: flash, now: baseDate, policy: policy)
        _ = scheduler.record(.upstreamFailure(reason: "TIMEOUT"), key: 3, upstream: 1, model: flash, now: baseDate, policy: policy)
        let snapshot = scheduler.snapshot(now: baseDate.addingTimeInterval(1))
        #expect(snapshot == PoolSnapshot(activeKeys: 4, coolingKeys: 3, unusableKeys: 1, upstreams: 2, healthyUpstreams: 1))
        #expect(snapshot.hasUsablePair)
        // Expired cooldowns are not counted (and are forgotten lazily).
        let later = scheduler.snapshot(now: baseDate.addingTimeInterval(2 * 86_400))
        #expect(later == PoolSnapshot(activeKeys: 4, coolingKeys: 0, unusableKeys: 0, upstreams: 2, healthyUpstreams: 2))
        #expect(scheduler.activeKeyCooldowns(now: baseDate.addingTimeInterval(2 * 86_400)).isEmpty)
        #expect(!PoolSnapshot(activeKeys: 2, coolingKeys: 2, unusableKeys: 2, upstreams: 1, healthyUpstreams: 1).hasUsablePair)
        #expect(!Scheduler(keys: poolKeys(1), upstreams: []).snapshot(now: baseDate).hasUsablePair)
    }

    @Test func expiredCooldownsAreDroppedWhenLookedAt() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.record(.throttled(Throttle(kind: .perMinute, retryDelay: 5)), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.slots[0].cooldowns.count == 1)
        _ = scheduler.pick(model: pro, now: baseDate.addingTimeInterval(6))
        #expect(scheduler.slots[0].cooldowns.isEmpty)
    }

    @Test func lastUsedTimesComeInBatches() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(2))
        #expect(scheduler.takeLastUsed().isEmpty)
        for step in 0..<5 { _ = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))) }
        let batch = scheduler.takeLastUsed()
        #expect(batch.keys == [1: baseDate.addingTimeInterval(3), 2: baseDate.addingTimeInterval(4), 3: baseDate.addingTimeInterval(2)])
        #expect(batch.upstreams == [1: baseDate.addingTimeInterval(4), 2: baseDate.addingTimeInterval(3)])
        #expect(scheduler.takeLastUsed().isEmpty)
        _ = scheduler.record(.keyDead(reason: "X"), key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        _ = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(10))
        #expect(scheduler.takeLastUsed().keys.count == 1)
    }

    @Test func lastUsedTimesThatCouldNotBeWrittenAreTakenAgain() {
        var scheduler = Scheduler(keys: poolKeys(3), upstreams: poolUpstreams(2))
        for step in 0..<2 { _ = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))) }
        let failed = scheduler.takeLastUsed()
        #expect(failed.keys.count == 2)
        // Used again before the retry: the retry carries the newest time, once per key.
        _ = scheduler.pick(model: flash, now: baseDate.addingTimeInterval(5))
        scheduler.restoreLastUsed(failed)
        let retry = scheduler.takeLastUsed()
        #expect(retry.keys == [1: baseDate, 2: baseDate.addingTimeInterval(1), 3: baseDate.addingTimeInterval(5)])
        #expect(retry.upstreams == [1: baseDate.addingTimeInterval(5), 2: baseDate.addingTimeInterval(1)])
        #expect(scheduler.takeLastUsed().isEmpty)
    }

    // MARK: Secrets

    @Test func keysDoNotPrintTheirSecret() {
        let key = PoolKey(id: 7, secret: "AIzaSyTOP-SECRET", fingerprint: "…CRET", project: "p")
        #expect(!"\(key)".contains("TOP-SECRET"))
        #expect(!String(reflecting: key).contains("TOP-SECRET"))
        var dumped = ""
        dump(key, to: &dumped)
        #expect(!dumped.contains("TOP-SECRET"))
        #expect(!"\(PickResult.pair(key, PoolUpstream(id: 1, baseURL: "u")))".contains("TOP-SECRET"))
    }

    // MARK: Randomized check against a brute-force reference

    /// Random picks and verdicts over 300 keys in 6 projects; after every pick the chosen key must
    /// be the one a linear scan finds: healthy for the model, least recently throttled, then least
    /// recently used, then lowest id.
    /// Run without model views, with them as soon as one key is skipped, and with the default.
    /// Seconds of work in a debug build: on a thread of its own (``onOwnThread(_:)``).
    @Test(arguments: [Int.max, 1, 8], [UInt64(7), 8])
    func heapAgreesWithALinearScan(viewThreshold: Int, seed: UInt64) async throws {
        let policy = self.policy
        let disagreements = try await onOwnThread {
            Self.heapAgainstLinearScan(viewThreshold: viewThreshold, seed: seed, policy: policy)
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(5))")
    }

    /// Where the scheduler's pick and the linear scan's disagree, one line each (empty when never).
    static func heapAgainstLinearScan(viewThreshold: Int, seed: UInt64, policy: CooldownPolicy) -> [String] {
        var disagreements: [String] = []
        var generator = SplitMix64(seed: seed)
        let keys = poolKeys(300) { $0 % 7 == 0 ? nil : "project-\($0 % 6)" }
        var scheduler = Scheduler(keys: keys, upstreams: poolUpstreams(3))
        scheduler.viewThreshold = viewThreshold
        let models = ["m1", "m2", "m3", "m1", "m1"]
        var liveIDs = Set(keys.map(\.id))
        var now = baseDate
        let verdicts: [Verdict] = [
            .success, .success, .success, .success, .clientError(reason: "X"), .transient(reason: "X"),
            .throttled(Throttle(kind: .perMinute, retryDelay: 3)),
            .throttled(Throttle(kind: .perMinute)),
            .throttled(Throttle(kind: .perMinute, retryDelay: 20, quotaID: "QPerMinute")),
            .throttled(Throttle(kind: .perDay, quotaID: "QPerDay")),
            .keyUnusable(reason: "SERVICE_DISABLED"),
            .keyDead(reason: "API_KEY_INVALID"),
            .upstreamFailure(reason: "TIMEOUT"),
        ]
        for round in 0..<3000 {
            now = now.addingTimeInterval(Double.random(in: 0.001...2, using: &generator))
            let model = models.randomElement(using: &generator)!
            let expected = liveIDs
                .filter { scheduler.cooldownEnd(keyID: $0, model: model, now: now) == nil }
                .compactMap { scheduler.key(id: $0) }
                .min { lhs, rhs in
                    let left = (lhs.lastThrottledAt ?? .distantPast, lhs.lastUsedAt ?? .distantPast, lhs.id)
                    let right = (rhs.lastThrottledAt ?? .distantPast, rhs.lastUsedAt ?? .distantPast, rhs.id)
                    return left < right
                }
            let result = scheduler.pick(model: model, now: now)
            guard let expected else {
                guard case .allKeysCooling(let until) = result else {
                    return disagreements + ["round \(round): expected allKeysCooling, got \(result)"]
                }
                if until <= now { disagreements.append("round \(round): cooling until \(until), not after \(now)") }
                continue
            }
            guard case .pair(let key, let upstream) = result else {
                return disagreements + ["round \(round): expected key \(expected.id), got \(result)"]
            }
            if key.id != expected.id { disagreements.append("round \(round): picked key \(key.id), expected \(expected.id)") }
            let verdict = verdicts.randomElement(using: &generator)!
            _ = scheduler.record(verdict, key: key.id, upstream: upstream.id, model: model, now: now, policy: policy)
            if case .keyDead = verdict { liveIDs.remove(key.id) }
            if round % 500 == 499 {
                // A reload with the same keys keeps everything.
                scheduler.replace(keys: keys.filter { liveIDs.contains($0.id) }, upstreams: poolUpstreams(3))
                scheduler.viewThreshold = viewThreshold
            }
        }
        if scheduler.keyCount != liveIDs.count {
            disagreements.append("\(scheduler.keyCount) keys in the scheduler, \(liveIDs.count) alive")
        }
        return disagreements
    }
}

// MARK: - Re-checking an API_KEY_INVALID before deleting

@Suite("Scheduler: API_KEY_INVALID re-check")
struct InvalidKeyRecheckTests {
    let flash = "gemini-2.5-flash"
    let invalid = Verdict.keyDead(reason: "API_KEY_INVALID")
    var policy: CooldownPolicy {
        var policy = CooldownPolicy()
        policy.invalidKeyGrace = 60
        return policy
    }

    @Test func theFirstInvalidCoolsTheKeyForEveryModelAndMakesItASuspect() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        let changes = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes == [
            .keyThrottled(id: 1, at: baseDate, streak: 0),
            .keyCooldown(KeyCooldown(keyID: 1, model: "*", until: baseDate.addingTimeInterval(60), reason: "API_KEY_INVALID_RECHECK")),
        ])
        #expect(scheduler.keyCount == 2)
        #expect(scheduler.isSuspect(keyID: 1))
        for (step, model) in [flash, "gemini-2.5-pro", ModelName.unknown].enumerated() {
            #expect(scheduler.pick(model: model, now: baseDate.addingTimeInterval(Double(step))).keyID == 2)
        }
        #expect(scheduler.cooldownEnd(keyID: 1, model: "any", now: baseDate) == baseDate.addingTimeInterval(60))
    }

    @Test func anInvalidWithinTheGraceChangesNothingOneAfterItDeletes() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        _ = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        // A concurrent attempt picked before the first verdict: the grace stands.
        #expect(scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: baseDate.addingTimeInterval(1), policy: policy) == [])
        #expect(scheduler.key(id: 1) != nil)
        // The re-check after the cooldown answers API_KEY_INVALID again: deleted as without a grace.
        let later = baseDate.addingTimeInterval(61)
        #expect(scheduler.pick(model: flash, now: later, tried: [PairID(key: 2, upstream: 1)]).keyID == 1)
        let changes = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: later, policy: policy)
        #expect(changes == [.keyDeleted(id: 1, reason: "API_KEY_INVALID", at: later)])
        #expect(scheduler.key(id: 1) == nil)
        #expect(!scheduler.isSuspect(keyID: 1))
    }

    @Test func aSuspectWhoseCooldownAnOperatorClearedCoolsAgainUntilTheGraceEnds() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        _ = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        scheduler.resetCooldowns(of: [1], to: [])
        let soon = baseDate.addingTimeInterval(10)
        let changes = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: soon, policy: policy)
        #expect(changes == [
            .keyCooldown(KeyCooldown(keyID: 1, model: "*", until: baseDate.addingTimeInterval(60), reason: "API_KEY_INVALID_RECHECK")),
        ])
        #expect(scheduler.key(id: 1) != nil)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: soon) == baseDate.addingTimeInterval(60))
    }

    @Test func aSuccessEndsTheSuspicion() {
        var scheduler = Scheduler(keys: poolKeys(1), upstreams: poolUpstreams(1))
        _ = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(30)) == .allKeysCooling(until: baseDate.addingTimeInterval(60)))
        let later = baseDate.addingTimeInterval(60)
        #expect(scheduler.pick(model: flash, now: later).keyID == 1)
        _ = scheduler.record(.success, key: 1, upstream: 1, model: flash, now: later, policy: policy)
        #expect(!scheduler.isSuspect(keyID: 1))
        // The next API_KEY_INVALID is a first one again: another grace, no deletion.
        let again = later.addingTimeInterval(5)
        let changes = scheduler.record(invalid, key: 1, upstream: 1, model: flash, now: again, policy: policy)
        #expect(changes.contains(.keyCooldown(KeyCooldown(keyID: 1, model: "*", until: again.addingTimeInterval(60), reason: "API_KEY_INVALID_RECHECK"))))
        #expect(scheduler.key(id: 1) != nil)
    }

    @Test("other dead keys, and a grace of 0 or none, are deleted at once", arguments: [
        (Verdict.keyDead(reason: "KEY_LEAKED"), 60.0),
        (Verdict.keyDead(reason: "API_KEY_EXPIRED"), 60.0),
        (Verdict.keyDead(reason: "CONSUMER_SUSPENDED"), 60.0),
        (Verdict.keyDead(reason: "API_KEY_INVALID"), 0.0),
        (Verdict.keyDead(reason: "API_KEY_INVALID"), -1.0),
    ])
    func deletedAtOnce(verdict: Verdict, grace: Double) {
        var policy = CooldownPolicy()
        policy.invalidKeyGrace = grace < 0 ? nil : grace
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        let changes = scheduler.record(verdict, key: 1, upstream: 1, model: flash, now: baseDate, policy: policy)
        #expect(changes == [.keyDeleted(id: 1, reason: verdict.reason, at: baseDate)])
        #expect(!scheduler.isSuspect(keyID: 1))
    }

    @Test func theRecheckTimeComesFromThePolicy() {
        #expect(CooldownPolicy().invalidKeyRecheckAt(for: invalid, now: baseDate) == nil)
        #expect(policy.invalidKeyRecheckAt(for: invalid, now: baseDate) == baseDate.addingTimeInterval(60))
        #expect(policy.invalidKeyRecheckAt(for: .keyUnusable(reason: "SERVICE_DISABLED"), now: baseDate) == nil)
        #expect(policy.invalidKeyRecheckAt(for: .success, now: baseDate) == nil)
    }
}
