import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Testing
import TestSupport

/// `serve --max-queue-wait` and `--max-queued`: when every key is cooling for a per-minute 429, a
/// request waits for the first to come back instead of getting 429 at once.
@Suite struct QueueWaitTests {
    let a = testKey("a"), b = testKey("b")

    /// The value of an unlabelled gauge or counter of `/metrics`.
    private func metric(_ gateway: GatewayHarness, _ name: String) async throws -> Double {
        let text = String(decoding: await gateway.gateway.metrics.exposition(), as: UTF8.self)
        return try Exposition(text).value(name) ?? -1
    }

    @Test func twentyRequestsWaitForTheKeysAndAreAllServed() async throws {
        try await withGateway(keys: [a, b], configure: { $0.maximumQueueWait = .seconds(30) }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .perMinuteThrottle(retryDelay: 2)),
                               .init(key: b, times: 1, reply: .perMinuteThrottle(retryDelay: 2))])
            // Both keys answer 429 to the first request: it cools both for 2 s (and waits itself).
            let second = Task { try await gateway.generate() }
            let back = try await waitFor("every key to be cooling again") { () -> Date? in
                let ends = gateway.gateway.pool.keyStates().compactMap(\.coolingUntil)
                return ends.count == 2 ? ends.min() : nil
            }
            let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                for _ in 0..<20 { group.addTask { try await gateway.generate() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(try await second.value.status == 200)
            #expect(answers.count == 20)
            #expect(answers.allSatisfy { $0.status == 200 }, "\(answers.map(\.status))")
            let rows = try await gateway.requestRows(count: 21)
            // Every request that arrived while the keys were cooling records its wait (from its
            // arrival to its pick nothing suspends it: half a second is margin for a busy machine).
            for row in rows where (row["started_at"] as Date) < back.addingTimeInterval(-0.5) {
                let waited: Double? = row["queue_wait_ms"]
                #expect(waited != nil && waited! > 0, "request \(row["request_id"] as String) waited \(waited.map { "\($0)" } ?? "NULL")")
            }
            #expect(rows.allSatisfy { ($0["outcome"] as String) == "success" })
            #expect(try await metric(gateway, "gemini_gateway_queued_requests") == 0)
        }
    }

    @Test func aCooldownLongerThanTheWaitIsA429AtOnce() async throws {
        try await withGateway(keys: [a, b], configure: { $0.maximumQueueWait = .seconds(1) }) { gateway, fakes in
            fakes[0].setRules([.init(reply: .perMinuteThrottle(retryDelay: 3_600))])
            let started = ContinuousClock.now
            let answer = try await gateway.generate()
            #expect(answer.status == 429)
            let retryAfter = try #require(answer.header("retry-after").flatMap(Int.init))
            #expect(retryAfter > 3_500 && retryAfter <= 3_600)
            #expect(try answer.json()["error"] != nil)
            let rows = try await gateway.requestRows(count: 1)
            #expect((rows[0]["queue_wait_ms"] as Double?) == nil, "nothing to wait for within 1 s")
            #expect(ContinuousClock.now - started < .seconds(patience))
        }
    }

    @Test func aKeyThrottledAgainAfterTheWaitIsA429WithRetryAfter() async throws {
        // The key comes back within the wait, but answers 429 again for an hour: the request,
        // back in line, has nothing left to wait for and gets 429 with Retry-After.
        try await withGateway(keys: [a], configure: { $0.maximumQueueWait = .seconds(30) }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .perMinuteThrottle(retryDelay: 1)),
                               .init(key: a, times: 1, reply: .perMinuteThrottle(retryDelay: 3_600))])
            let answer = try await gateway.generate()
            #expect(answer.status == 429)
            let retryAfter = try #require(answer.header("retry-after").flatMap(Int.init))
            #expect(retryAfter > 3_500)
            let rows = try await gateway.requestRows(count: 1)
            #expect((rows[0]["outcome"] as String) == "throttled")
            #expect(((rows[0]["queue_wait_ms"] as Double?) ?? 0) > 0)
            #expect((rows[0]["attempt_count"] as Int) == 2)
        }
    }

    @Test func aPerDayCooldownIsNeverWaitedFor() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            fakes[0].setRules([.init(key: a, reply: .fixture("429-per-day"))])
            for _ in 0..<2 {
                let answer = try await gateway.generate()
                #expect(answer.status == 429)
                // Until midnight in California: far beyond the 10 s wait, and never waited for.
                #expect(answer.header("retry-after").flatMap(Int.init) != nil)
            }
            let rows = try await gateway.requestRows(count: 2)
            #expect(rows.allSatisfy { ($0["queue_wait_ms"] as Double?) == nil })
            #expect(fakes[0].received().count == 1, "the second request found the key cooling and sent nothing")
        }
    }

    @Test func aClientThatHangsUpWhileWaitingIsCancelledAndFreesItsPlace() async throws {
        try await withGateway(keys: [a], configure: {
            $0.maximumQueueWait = .seconds(120)
            $0.retryBudget = .seconds(300)
            $0.maximumQueued = 1
        }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .perMinuteThrottle(retryDelay: 100))])
            let hangUp = DispatchSemaphore(value: 0)
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let bytes = Array("""
                POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r
                Host: 127.0.0.1\r
                x-goog-api-key: \(gateway.token)\r
                content-type: application/json\r
                content-length: \(body.utf8.count)\r
                \r
                \(body)
                """.utf8)
            let client = Task {
                try await withRawConnection(port: gateway.port) { connection in
                    connection.send(bytes)
                    hangUp.wait()
                    connection.close()
                }
            }
            try await waitUntil("the request to wait for the key") { try await metric(gateway, "gemini_gateway_queued_requests") == 1 }
            let left = ContinuousClock.now
            hangUp.signal()
            try await client.value
            try await waitUntil("the request to leave the line") { try await metric(gateway, "gemini_gateway_queued_requests") == 0 }
            // Its place is free at once (the key cools for 100 s more): another request may wait.
            let next = Task { try await gateway.generate() }
            try await waitUntil("another request to take the place") { try await metric(gateway, "gemini_gateway_queued_requests") == 1 }
            #expect(ContinuousClock.now - left < .seconds(90))
            #expect(try await metric(gateway, "gemini_gateway_queue_full_total") == 0)
            let rows = try await gateway.requestRows(count: 1)
            #expect((rows[0]["outcome"] as String) == "cancelled")
            #expect((rows[0]["status"] as Int) == 499)
            #expect(((rows[0]["queue_wait_ms"] as Double?) ?? 0) > 0)
            next.cancel()
            _ = try? await next.value
        }
    }

    @Test func overMaxQueuedTheAnswerIsA429AtOnce() async throws {
        try await withGateway(keys: [a], configure: {
            $0.maximumQueueWait = .seconds(120)
            $0.retryBudget = .seconds(300)
            $0.maximumQueued = 1
        }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .perMinuteThrottle(retryDelay: 100))])
            let first = Task { try await gateway.generate() }
            try await waitUntil("the first request to wait") { try await metric(gateway, "gemini_gateway_queued_requests") == 1 }
            let second = try await gateway.generate()
            #expect(second.status == 429)
            let retryAfter = try #require(second.header("retry-after").flatMap(Int.init))
            #expect(retryAfter > 0 && retryAfter <= 100)
            #expect(try await metric(gateway, "gemini_gateway_queue_full_total") == 1)
            #expect(try await metric(gateway, "gemini_gateway_queued_requests") == 1)
            first.cancel()
            _ = try? await first.value
        }
    }

    @Test func withTheWaitOffEveryKeyCoolingIsA429AtOnce() async throws {
        try await withGateway(keys: [a], configure: { $0.maximumQueueWait = .zero }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, times: 1, reply: .perMinuteThrottle(retryDelay: 2))])
            let answer = try await gateway.generate()
            #expect(answer.status == 429)
            let rows = try await gateway.requestRows(count: 1)
            #expect((rows[0]["queue_wait_ms"] as Double?) == nil)
        }
    }
}
