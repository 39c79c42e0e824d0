import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Testing
import TestSupport

/// The outcome policy over real sockets: the gateway in front of fake upstreams that answer
/// with the real Gemini error bodies.
@Suite struct FailoverTests {
    let a = testKey("a"), b = testKey("b"), c = testKey("c"), d = testKey("d")

    // MARK: 1. Spreading

    @Test func fourKeysTwoUpstreamsShareFourHundredRequests() async throws {
        try await withGateway(keys: [a, b, c, d], fakes: 2) { gateway, fakes in
            for _ in 0..<400 {
                let answer = try await gateway.generate()
                #expect(answer.status == 200)
            }
            let received = fakes.flatMap { $0.received() }
            #expect(received.count == 400)
            let perKey = Dictionary(grouping: received, by: { $0.key ?? "" }).mapValues(\.count)
            for key in [a, b, c, d] {
                #expect((98...102).contains(perKey[key] ?? 0), "\(Secret.redacted(key)) served \(perKey[key] ?? 0)")
            }
            #expect(fakes.allSatisfy { $0.received().count > 100 }, "both upstreams used")
            let rows = try await gateway.requestRows(count: 400)
            #expect(rows.count == 400)
        }
    }

    // MARK: 2. Throttling

    @Test func perMinuteThrottleCoolsTheKeyForThatModelOnlyAndSurvivesARestart() async throws {
        let fake = try await FakeGemini.start()
        fake.setRules([
            .init(key: a, model: "gemini-m", times: 1, reply: .perMinuteThrottle(retryDelay: 3_600)),
            .init(key: b, model: "gemini-n", times: 1, reply: .perMinuteThrottle(retryDelay: 3_600)),
        ])
        let first = try await GatewayHarness.start(keys: [a, b], upstreams: [fake.baseURL])

        // The client still gets a 200, from the other key.
        let before = Date()
        let answer = try await first.generate(model: "gemini-m")
        let after = Date()
        #expect(answer.status == 200)
        #expect(answer.header("x-fake-key") == String(b.suffix(4)))

        // A is not used for M while it cools...
        for _ in 0..<6 {
            #expect(try await first.generate(model: "gemini-m").status == 200)
        }
        let forM = fake.received().filter { $0.model == "gemini-m" }.map(\.key)
        #expect(forM.first == a)
        #expect(forM.dropFirst().allSatisfy { $0 == b })

        // ...but still serves N (B gets throttled for N, so A is the one left for it).
        let forN = try await first.generate(model: "gemini-n")
        #expect(forN.status == 200)
        #expect(forN.header("x-fake-key") == String(a.suffix(4)))

        // The cooldown is written behind, with Google's retryDelay (an hour here: it must outlast
        // the restart below however slowly a busy machine runs the test).
        let aID = try first.database.findKey(a).id!
        #expect(try await first.eventually { db in
            try db.read { try KeyCooldownRecord.fetchOne($0, key: ["key_id": aID, "model": "gemini-m"]) } != nil
        })
        let cooldown = try #require(try first.database.read { try KeyCooldownRecord.fetchOne($0, key: ["key_id": aID, "model": "gemini-m"]) })
        #expect(cooldown.until >= before.addingTimeInterval(3_600) && cooldown.until <= after.addingTimeInterval(3_600))
        #expect(cooldown.quotaId == "GenerateContentInputTokensPerModelPerMinute-FreeTier")
        try await first.stop()

        // A restart keeps the cooldown: with B disabled, M has no usable key but N does.
        try first.database.setKeyState(b, to: .disabled)
        let second = try await GatewayHarness.start(keys: [], upstreams: [], directory: first.directory)
        let asked = Date()
        let cooling = try await second.send(second.request("/v1beta/models/gemini-m:generateContent", token: .some("gw-static-token-for-restarts")))
        #expect(cooling.status == 429)
        let retryAfter = try #require(cooling.header("retry-after").flatMap(Int.init))
        let remaining = cooldown.until.timeIntervalSince(asked)
        #expect(remaining > 0)
        #expect(Double(retryAfter) >= remaining - 2 && Double(retryAfter) <= remaining + 1)
        #expect(try cooling.json()["error"] != nil)
        let other = try await second.send(second.request("/v1beta/models/gemini-n:generateContent", token: .some("gw-static-token-for-restarts")))
        #expect(other.status == 200)
        try await second.stop()
        await fake.stop()
        second.removeFiles()
    }

    @Test func perDayThrottleCoolsUntilMidnightInCalifornia() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .fixture("429-per-day"))])
            let now = Date()
            #expect(try await gateway.generate(model: "gemini-2.5-flash-lite").status == 200)
            let aID = try gateway.database.findKey(a).id!
            #expect(try await gateway.eventually { db in
                try db.read { try KeyCooldownRecord.filter(Column("key_id") == aID).fetchCount($0) } == 1
            })
            let cooldown = try #require(try gateway.database.read { try KeyCooldownRecord.filter(Column("key_id") == aID).fetchOne($0) })
            let midnight = CooldownPolicy.nextMidnight(after: now, in: TimeZone(identifier: "America/Los_Angeles")!)
            #expect(abs(cooldown.until.timeIntervalSince(midnight)) < 2)
            #expect(cooldown.model == "gemini-2.5-flash-lite")
        }
    }

    @Test func bareThrottleCoolsWithBackoff() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .fixture("429-bare"))])
            let before = Date()
            #expect(try await gateway.generate().status == 200)
            let after = Date()
            let aID = try gateway.database.findKey(a).id!
            #expect(try await gateway.eventually { db in
                try db.read { try KeyCooldownRecord.filter(Column("key_id") == aID).fetchCount($0) } == 1
            })
            let cooldown = try #require(try gateway.database.read { try KeyCooldownRecord.filter(Column("key_id") == aID).fetchOne($0) })
            #expect(cooldown.until >= before.addingTimeInterval(60) && cooldown.until <= after.addingTimeInterval(60))
            let key = try gateway.database.findKey(a)
            #expect(key.throttleStreak == 1)
            #expect(key.lastThrottledAt != nil)
        }
    }

    // MARK: 3. Dead keys

    @Test("a dead key is soft-deleted and the request succeeds on another", arguments: [
        ("400-api-key-invalid", "API_KEY_INVALID"),
        ("403-key-leaked", "KEY_LEAKED"),
        ("403-consumer-suspended", "CONSUMER_SUSPENDED"),
    ])
    func deadKey(fixture: String, reason: String) async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(key: a, reply: .fixture(fixture))])
            let answer = try await gateway.generate()
            #expect(answer.status == 200)
            #expect(answer.header("x-fake-key") == String(b.suffix(4)))
            #expect(try await gateway.eventually { db in try db.findKey(a).state == .deleted })
            let listed = try #require(try gateway.database.listKeys().first { $0.tail == String(a.suffix(4)) })
            #expect(listed.state == .deleted)
            #expect(listed.deletedReason == reason)
            #expect(listed.deletedAt != nil)
            // Never used again, and never hard-deleted.
            for _ in 0..<4 { #expect(try await gateway.generate().status == 200) }
            #expect(fakes[0].received().filter { $0.key == a }.count == 1)
            let rows = try gateway.database.read { try KeyRecord.fetchCount($0) }
            #expect(rows == 2)
        }
    }

    @Test func whenEveryKeyTriedIsDeadTheClientIsToldItIsTheGatewaysKeys() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(reply: .fixture("400-api-key-invalid"))])
            let answer = try await gateway.generate()
            #expect(answer.status == 503)
            let error = try #require(try answer.json()["error"] as? [String: Any])
            #expect((error["message"] as? String)?.contains("keys list") == true)
            #expect((error["message"] as? String)?.contains("API_KEY_INVALID") == true)
            #expect(try await gateway.eventually { db in try db.listKeys().allSatisfy { $0.state == .deleted } })
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "key_error")
            #expect(rows.first?["error_reason"] as String? == "API_KEY_INVALID")
            // With every key gone, the next request is told what fixes it.
            let next = try await gateway.generate()
            #expect(next.status == 503)
            #expect(next.text.contains("gemini-gateway import"))
        }
    }

    // MARK: 4. Client errors

    @Test("a client error is returned as is after one attempt", arguments: ["400-malformed-request", "404-model-not-found"])
    func clientError(fixture: String) async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(reply: .fixture(fixture))])
            let answer = try await gateway.generate()
            #expect(answer.status == FakeGemini.fixtureStatus(fixture))
            #expect(answer.body == FakeGemini.fixtureBody(fixture))
            #expect(fakes[0].received().count == 1)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "client_error")
            #expect(rows.first?["attempt_count"] as Int? == 1)
            // The verdict is in the pool before the row is queued: no key blamed.
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.activeKeys == 2 && pool.coolingKeys == 0, "\(pool)")
        }
    }

    // MARK: 5. Broken upstreams

    @Test func aRefusingUpstreamCoolsAndIsUsedAgainWhenItRecovers() async throws {
        let refusing = try RefusingPort()
        let port = refusing.port
        try await withGateway(keys: [a, b], extraUpstreams: ["http://127.0.0.1:\(port)"], configure: { configuration in
            configuration.policy.upstreamFailureBase = 0.5
            configuration.policy.upstreamFailureMemory = 0.2
        }) { gateway, fakes in
            for _ in 0..<6 { #expect(try await gateway.generate().status == 200) }
            let upstream = try #require(try gateway.database.listUpstreams().first { $0.baseUrl.hasSuffix(":\(port)") })
            #expect(try await gateway.eventually { db in
                try db.listUpstreams().first { $0.id == upstream.id }?.lastFailureReason != nil
            })
            let reason = try gateway.database.listUpstreams().first { $0.id == upstream.id }?.lastFailureReason
            #expect(reason == "CONNECTION_REFUSED", "\(reason ?? "-")")
            // It comes back: an upstream now listens there, and after the cooldown it gets traffic.
            let revived = try await FakeGemini.start(port: port)
            refusing.release()
            // Once its cooldown is over (when depends on how often it was tried), it gets traffic.
            try await waitUntil("the revived upstream to be used again", every: .milliseconds(100)) {
                let status = try await gateway.generate().status
                #expect(status == 200)
                return !revived.received().isEmpty
            }
            await revived.stop()
        }
    }

    /// A 502 page is the relay's failure at once; a 404 page once another upstream answers the
    /// same request (the first of the six requests that tries it is retried on the other).
    @Test("a relay's HTML error page cools that upstream", arguments: [404, 502])
    func relayHTMLError(status: Int) async throws {
        try await withGateway(keys: [a, b], fakes: 2, configure: { configuration in
            configuration.policy.upstreamFailureBase = 4
            configuration.policy.upstreamFailureMemory = 0.1
        }) { gateway, fakes in
            fakes[0].setRules([.init(reply: .status(status, body: "<html><body>Bad Gateway</body></html>", contentType: "text/html"))])
            for _ in 0..<6 { #expect(try await gateway.generate().status == 200) }
            // Tried once, then left alone while it cools (4 s; a slow machine may reach its end
            // and try it again): every request is served by the other upstream, once.
            let failedAt = try #require(fakes[0].received().first?.time)
            #expect(fakes[0].received().dropFirst().allSatisfy { $0.time >= failedAt.addingTimeInterval(3.9) })
            #expect(fakes[1].received().count == 6)
            // No key was blamed for the relay's failure.
            let keys = try gateway.database.listKeys()
            #expect(keys.allSatisfy { $0.state == .active && $0.cooldowns.isEmpty })
            // Recovered: used again once its cooldown is over.
            fakes[0].clearRules()
            try await waitUntil("the relay to be used again after its cooldown", every: .milliseconds(100)) {
                let status = try await gateway.generate().status
                #expect(status == 200)
                return fakes[0].received().count > 1
            }
        }
    }

    /// A relay's own 4xx page, with nothing to show the relay at fault (every upstream answers
    /// the same), is taken to be about the request: the client gets the 4xx, nothing is charged.
    @Test func aRelays4xxPageChargesNoUpstreamWithoutEvidence() async throws {
        try await withGateway(keys: [a, b], fakes: 2) { gateway, fakes in
            for fake in fakes {
                fake.setRules([.init(reply: .status(414, body: "<html>414 Request-URI Too Large</html>", contentType: "text/html"))])
            }
            let answer = try await gateway.generate()
            #expect(answer.status == 414, "\(answer.text)")
            let error = try #require(try answer.json()["error"] as? [String: Any])
            #expect(error["status"] as? String == "INVALID_ARGUMENT")
            #expect(fakes.allSatisfy { !$0.received().isEmpty }, "tried on each upstream")
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows[0]["outcome"] as String? == "client_error")
            let attempts = try gateway.attemptRows(requestID: rows[0]["request_id"])
            #expect(!attempts.isEmpty && attempts.allSatisfy { $0["verdict"] as String == "relay_refusal" })
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.healthyUpstreams == 2 && pool.coolingKeys == 0, "\(pool)")
        }
    }

    // MARK: 6. Transient errors

    @Test func overloadedIsRetriedWithoutPenalisingTheKey() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(times: 1, reply: .fixture("503-overloaded"))])
            let answer = try await gateway.generate()
            #expect(answer.status == 200)
            #expect(fakes[0].received().count == 2)
            let rows = try await gateway.requestRows(count: 1)
            let attempts = try gateway.attemptRows(requestID: rows[0]["request_id"])
            #expect(attempts.map { $0["verdict"] as String } == ["transient", "success"], "\(attempts.map { "\($0["verdict"] as String? ?? "-") \($0["status"] as Int? ?? 0) \($0["reason"] as String? ?? "-")" })")
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.activeKeys == 2 && pool.coolingKeys == 0, "\(pool)")
        }
    }

    // MARK: 7. Nothing usable

    @Test func everyKeyCoolingIs429WithRetryAfter() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(model: "gemini-2.5-pro", reply: .perMinuteThrottle(retryDelay: 600))])
            let asked = Date()
            let first = try await gateway.generate(model: "gemini-2.5-pro")
            let answered = Date()
            #expect(first.status == 429)
            // Retry-After counts down from Google's 600 s from when the key was throttled.
            let retryAfter = try #require(first.header("retry-after").flatMap(Int.init))
            #expect(Double(retryAfter) >= 600 - answered.timeIntervalSince(asked) - 1 && retryAfter <= 601, "\(retryAfter)")
            let error = try #require(try first.json()["error"] as? [String: Any])
            #expect(error["status"] as? String == "RESOURCE_EXHAUSTED")
            #expect(error["code"] as? Int == 429)
            #expect(fakes[0].received().count == 2)
            // The next request is answered at once, without asking the upstream.
            let second = try await gateway.generate(model: "gemini-2.5-pro")
            #expect(second.status == 429)
            #expect(second.header("retry-after") != nil)
            #expect(fakes[0].received().count == 2)
        }
    }

    @Test func noActiveKeyIs503NamingTheFix() async throws {
        try await withGateway(keys: []) { gateway, fakes in
            let answer = try await gateway.generate()
            #expect(answer.status == 503)
            let error = try #require(try answer.json()["error"] as? [String: Any])
            #expect((error["message"] as? String)?.contains("gemini-gateway import") == true)
            #expect(error["status"] as? String == "UNAVAILABLE")
            #expect(fakes[0].received().isEmpty)
        }
    }

    @Test func noUpstreamIs503NamingTheFix() async throws {
        let harness = try await GatewayHarness.start(keys: [a], upstreams: [])
        let answer = try await harness.generate()
        #expect(answer.status == 503)
        let error = try #require(try answer.json()["error"] as? [String: Any])
        #expect((error["message"] as? String)?.contains("gemini-gateway") == true)
        #expect((error["message"] as? String)?.contains("upstream") == true)
        try await harness.stop()
        harness.removeFiles()
    }
}
