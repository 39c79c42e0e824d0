import Foundation
import Testing
@testable import GatewayCore

/// `Scheduler.absorb`: what another gateway instance recorded, folded in (issue 25).
@Suite struct SchedulerAbsorbTests {
    let flash = "gemini-2.5-flash"

    @Test func anotherInstancesCooldownParksTheKeyAndNeverShortensOne() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        let long = KeyCooldown(keyID: 1, model: flash, until: baseDate.addingTimeInterval(600), reason: "RATE_LIMIT_EXCEEDED")
        scheduler.absorb([.keyCooldown(long)], now: baseDate)
        for step in 0..<6 {
            #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).keyID == 2)
        }
        // A shorter one read later (a re-read, or an older 429 from another instance) does not
        // bring the key back early.
        let short = KeyCooldown(keyID: 1, model: flash, until: baseDate.addingTimeInterval(10), reason: "RATE_LIMIT_EXCEEDED")
        scheduler.absorb([.keyCooldown(short), .keyCooldown(short)], now: baseDate)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate.addingTimeInterval(20)) == long.until)
        // The egress rule's lift removes it when it ends no later than the lifted one.
        scheduler.absorb([.keyCooldownLifted(keyID: 1, model: flash, until: baseDate.addingTimeInterval(599))], now: baseDate)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate) == long.until)
        scheduler.absorb([.keyCooldownLifted(keyID: 1, model: flash, until: long.until)], now: baseDate)
        #expect(scheduler.cooldownEnd(keyID: 1, model: flash, now: baseDate) == nil)
    }

    @Test func aProjectCooldownParksEveryKeyOfTheProject() {
        var scheduler = Scheduler(keys: poolKeys(3) { $0 < 3 ? "p" : nil }, upstreams: poolUpstreams(1))
        let cooldown = ProjectCooldown(project: "p", model: flash, until: baseDate.addingTimeInterval(600), reason: "RATE_LIMIT_EXCEEDED")
        scheduler.absorb([.projectCooldown(cooldown)], now: baseDate)
        for step in 0..<4 {
            #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).keyID == 3)
        }
    }

    @Test func aThrottleSinksTheKeyAndTheLongerStreakWins() throws {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        scheduler.absorb([.keyThrottled(id: 1, at: baseDate, streak: 3)], now: baseDate)
        // Key 1 was throttled, key 2 never: 2 goes first.
        #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(1)).keyID == 2)
        scheduler.absorb([.keyThrottled(id: 1, at: baseDate.addingTimeInterval(-5), streak: 1)], now: baseDate)
        let key = try #require(scheduler.key(id: 1))
        #expect(key.throttleStreak == 3)
        #expect(key.lastThrottledAt == baseDate)
    }

    @Test func aSoftDeleteTakesTheKeyOutAndNothingIsWrittenAgain() {
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        scheduler.absorb([.keyDeleted(id: 2, reason: "API_KEY_INVALID", at: baseDate)], now: baseDate)
        #expect(scheduler.key(id: 2) == nil)
        for step in 0..<4 {
            #expect(scheduler.pick(model: flash, now: baseDate.addingTimeInterval(Double(step))).keyID == 1)
        }
        // Ids no longer (or never) in the pool are ignored.
        scheduler.absorb([.keyDeleted(id: 2, reason: "x", at: baseDate), .keyThrottled(id: 9, at: baseDate, streak: 1)], now: baseDate)
        #expect(scheduler.key(id: 1) != nil)
    }

    /// Another instance's grace for a first `API_KEY_INVALID`: here the key is a suspect too, so
    /// its next `API_KEY_INVALID` after the grace deletes it instead of granting a second one.
    @Test func anotherInstancesRecheckGraceIsNotGrantedTwice() {
        var policy = CooldownPolicy()
        policy.invalidKeyGrace = 60
        var scheduler = Scheduler(keys: poolKeys(2), upstreams: poolUpstreams(1))
        let grace = KeyCooldown(keyID: 1, model: ModelName.all, until: baseDate.addingTimeInterval(60), reason: CooldownPolicy.invalidKeyRecheckReason)
        scheduler.absorb([.keyCooldown(grace)], now: baseDate)
        #expect(scheduler.isSuspect(keyID: 1))
        let changes = scheduler.record(.keyDead(reason: "API_KEY_INVALID"), key: 1, upstream: 1, model: flash,
                                       now: baseDate.addingTimeInterval(61), policy: policy)
        #expect(changes.contains { if case .keyDeleted(id: 1, _, _) = $0 { true } else { false } })
    }

    @Test func whatIsSharedAndWhatStaysWithTheInstance() {
        let cooldown = KeyCooldown(keyID: 1, model: flash, until: baseDate, reason: "r")
        #expect(StateChange.keyCooldown(cooldown).isShared)
        #expect(StateChange.keyDeleted(id: 1, reason: "r", at: baseDate).isShared)
        #expect(!StateChange.upstreamFailed(id: 1, until: nil, streak: 1, reason: "r", at: baseDate).isShared)
        #expect(!StateChange.keyRecovered(id: 1).isShared)
    }
}
