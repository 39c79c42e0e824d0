import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Testing
import TestSupport

/// `serve --egress-window`, `--egress-projects`, `--egress-cooldown`: 429s for keys of several
/// projects through one upstream, while another serves, are blamed on that upstream's egress.
@Suite struct EgressTests {
    /// Six keys: two in each of three projects.
    let projectKeys = (0..<6).map { "\(testKey("e\($0)")) project-\($0 % 3)" }

    @Test func anUpstreamThrottlingKeysOfThreeProjectsIsCooledAndTheKeysAreNot() async throws {
        try await withGateway(keys: projectKeys, fakes: 2, configure: {
            // Far wider than the few requests need on a busy machine.
            $0.policy.egress.window = 600
        }) { gateway, fakes in
            // The first upstream's egress is throttled: every key gets Google's per-minute 429 there.
            fakes[0].setRules([.init(reply: .perMinuteThrottle(retryDelay: 3_600))])
            for _ in 0..<12 {
                let answer = try await gateway.generate()
                #expect(answer.status == 200)
            }
            // Every request was served through the other upstream.
            #expect(fakes[1].received().count == 12)
            #expect(fakes[0].received().count == 3, "three projects' 429s were evidence enough")
            let throttled = gateway.gateway.pool.upstreamStates().first { $0.baseURL == fakes[0].baseURL }
            #expect(throttled?.coolingUntil != nil)
            #expect(gateway.gateway.pool.keyStates().allSatisfy { $0.coolingUntil == nil }, "no key stays cooled")
            // Written: the upstream's cooldown with its reason, and no key or project cooldown.
            #expect(try await gateway.eventually { db in
                try db.read { db in
                    let upstream = try UpstreamRecord.filter(Column("base_url") == fakes[0].baseURL).fetchOne(db)
                    let keyCooldowns = try KeyCooldownRecord.filter(Column("until") > Date()).fetchCount(db)
                    let projectCooldowns = try Int.fetchOne(db, sql: "SELECT count(*) FROM project_cooldowns WHERE until > ?", arguments: [Date()])
                    return upstream?.lastFailureReason == EgressRule.reason && upstream?.cooldownUntil != nil
                        && keyCooldowns == 0 && projectCooldowns == 0
                }
            })
        }
    }

    @Test func tenKeysOfOneProjectThrottledThroughOneUpstreamCoolTheKeysNotTheUpstream() async throws {
        let keys = (0..<10).map { "\(testKey("p\($0)")) one-project" }
        try await withGateway(keys: keys, fakes: 2, configure: { $0.policy.egress.window = 600 }) { gateway, fakes in
            // A bare 429 cools only the key that got it: each key is throttled on its own.
            fakes[0].setRules([.init(reply: .fixture("429-bare"))])
            var sent = 0
            while fakes[0].received().count < 10, sent < 60 {
                let answer = try await gateway.generate()
                #expect(answer.status == 200 || answer.status == 429)
                sent += 1
            }
            #expect(Set(fakes[0].received().map(\.key)).count == 10, "every key was throttled through the first upstream")
            #expect(fakes[1].received().count > 0)
            let first = gateway.gateway.pool.upstreamStates().first { $0.baseURL == fakes[0].baseURL }
            #expect(first?.coolingUntil == nil, "one project's quota is no evidence against the egress")
            #expect(gateway.gateway.pool.keyStates().allSatisfy { $0.coolingUntil != nil })
        }
    }

    @Test func aSingleUpstreamNeverBlamesItsEgress() async throws {
        try await withGateway(keys: projectKeys, configure: { $0.policy.egress.window = 600 }) { gateway, fakes in
            // Successes first, then every key of every project throttled.
            let served = try await gateway.generate()
            #expect(served.status == 200)
            fakes[0].setRules([.init(reply: .perMinuteThrottle(retryDelay: 3_600))])
            let throttled = try await gateway.generate()
            #expect(throttled.status == 429)
            #expect(gateway.gateway.pool.upstreamStates().allSatisfy { $0.coolingUntil == nil })
            #expect(gateway.gateway.pool.keyStates().filter { $0.coolingUntil != nil }.count >= 3)
        }
    }
}
