import FakeGemini
import Foundation
import GatewayCore
@testable import GatewayHTTP
@testable import GatewayServer
import GRDB
import Testing
import TestSupport

/// Overload is answered, not queued: over `--max-in-flight` a request is answered 503 with
/// `Retry-After` at once, has its row, and goes nowhere upstream.
@Suite struct OverloadTests {
    let a = testKey("a")
    static let streamPath = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    static let events = [#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}"#]

    /// Two streams held by the fake fill a limit of 2: the next requests (two, pipelined on one
    /// connection) are answered 503 at once, on a connection that stays open, each with its row;
    /// nothing of theirs reaches the upstream and nobody is charged. Once the held ones end, the
    /// same connection is served again.
    @Test func overTheLimitARequestIsAnswered503AtOnceWithItsRow() async throws {
        let gate = FakeGemini.StreamGate(permits: 0)
        try await withGateway(keys: [a], configure: { $0.maximumInFlight = 2 }) { gateway, fakes in
            let fake = fakes[0]
            let held = await Self.holdStreams(2, at: gate, gateway, fake)
            #expect(gateway.gateway.proxyTasks.running == 2)

            let connection = try await onThread { try RawConnection(port: gateway.port) }
            defer { connection.close() }
            let request = Self.generate(token: gateway.token)
            let refused = try await onThread {
                connection.send(request + request)
                return [try connection.readAnswer(), try connection.readAnswer()]
            }
            for answer in refused {
                #expect(answer.status == 503, "\(answer)")
                #expect(answer.header("retry-after") == "1", "\(answer)")
                #expect(answer.header("connection") == nil, "the connection stays open: \(answer)")
                #expect(answer.bodyText.contains(#""status":"UNAVAILABLE""#), "\(answer)")
                #expect(answer.bodyText.contains(#""code":503"#), "\(answer)")
            }
            #expect(fake.requestCount == 2, "nothing of the refused requests went upstream")
            // The local routes are not proxied requests: they still answer.
            #expect(try await gateway.send(gateway.request("/healthz", method: .GET)).status == 200)

            // Each refused request has its row, written at once (the held ones are still running).
            let ids = refused.compactMap { $0.header(ProxyHandler.requestIDHeader) }
            #expect(ids.count == 2 && Set(ids).count == 2)
            let rows = try await waitFor("the refused requests' rows") {
                let rows = try gateway.database.read { db in
                    try Row.fetchAll(db, sql: "SELECT * FROM requests WHERE request_id IN (?, ?)", arguments: [ids[0], ids[1]])
                }
                return rows.count == 2 ? rows : nil
            }
            for row in rows {
                #expect(row["status"] as Int? == 503)
                #expect(row["outcome"] as String? == "no_capacity")
                #expect(row["error_reason"] as String? == "MAX_IN_FLIGHT")
                #expect(row["error_status"] as String? == "UNAVAILABLE")
                #expect(row["client_name"] as String? == "tests")
                #expect(row["model"] as String? == "gemini-2.5-flash")
                #expect(row["attempt_count"] as Int? == 0)
                #expect(row["key_id"] as Int64? == nil)
                #expect(row["upstream_id"] as Int64? == nil)
                #expect(row["request_bytes"] as Int? == Self.body.utf8.count)
            }
            // Counted apart from the other 503s of no_capacity (no key, no upstream).
            let metrics = String(decoding: await gateway.gateway.metrics.exposition(), as: UTF8.self)
            #expect(try Exposition(metrics).value("gemini_gateway_overloaded_requests_total", [:]) == 2)
            let pool = gateway.gateway.pool.snapshot()
            #expect(pool.healthyUpstreams == 1 && pool.coolingKeys == 0 && pool.activeKeys == 1, "\(pool)")

            // The held streams end; then there is room again, on the same connection.
            try await Self.release(held, at: gate)
            try await waitUntil("the held requests to end") { gateway.gateway.proxyTasks.running == 0 }
            let served = try await onThread {
                connection.send(request)
                return try connection.readAnswer()
            }
            #expect(served.status == 200, "\(served)")
            #expect(fake.requestCount == 3)

            let outcomes = try await gateway.requestRows(count: 5).map { $0["outcome"] as String }
            #expect(outcomes.sorted() == ["no_capacity", "no_capacity", "success", "success", "success"], "\(outcomes)")
        }
    }

    /// `--max-in-flight 0`: no limit.
    @Test func zeroMeansNoLimit() async throws {
        let gate = FakeGemini.StreamGate(permits: 0)
        try await withGateway(keys: [a], configure: { $0.maximumInFlight = 0 }) { gateway, fakes in
            let held = await Self.holdStreams(3, at: gate, gateway, fakes[0])
            try await Self.release(held, at: gate)
        }
    }

    /// `count` streams that the fake holds at `gate`, each of them running upstream on return.
    static func holdStreams(
        _ count: Int, at gate: FakeGemini.StreamGate, _ gateway: GatewayHarness, _ fake: FakeGemini
    ) async -> [Task<Answer, any Error>] {
        fake.setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, gate: gate))])
        let held = (0..<count).map { _ in Task { try await gateway.send(gateway.request(streamPath)) } }
        #expect(await fake.wait { $0.requestCount == count }, "every held stream reaches the upstream")
        return held
    }

    /// Lets the held streams end: each is answered 200.
    static func release(_ held: [Task<Answer, any Error>], at gate: FakeGemini.StreamGate) async throws {
        gate.open()
        for task in held {
            let status = try await task.value.status
            #expect(status == 200)
        }
    }

    /// The count never passes the limit, and a request that ends makes room for one more.
    @Test func theCountStaysWithinTheLimit() {
        let tasks = ProxyTasks()
        #expect(tasks.start(within: 2) && tasks.start(within: 2))
        #expect(!tasks.start(within: 2))
        #expect(tasks.running == 2)
        tasks.finished()
        #expect(tasks.start(within: 2))
        #expect(!tasks.start(within: 2))
        #expect(tasks.start(within: 0), "0: no limit")
        #expect(tasks.running == 3)
        #expect(tasks.startedTotal == 4, "refused requests are not counted as started")
    }

    static let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#

    /// A raw `generateContent` request with the gateway token.
    static func generate(token: String) -> String {
        "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: gateway\r\nx-goog-api-key: \(token)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
    }
}

/// Runs blocking socket work on a thread of its own, off the few threads the servers' tasks need.
private func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
