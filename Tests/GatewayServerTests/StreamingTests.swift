import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import NIOCore
import Testing
import TestSupport

/// Scenario 8 and 10: streams pass through as they arrive, byte for byte; failures before the
/// first byte fail over, after it they abort the client; a client that hangs up stops the upstream.
@Suite struct StreamingTests {
    let a = testKey("a"), b = testKey("b")
    let ssePath = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"

    static func events(_ count: Int) -> [String] {
        (0..<count).map { index in
            #"{"candidates":[{"content":{"parts":[{"text":"part \#(index)"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":\#(index + 1),"thoughtsTokenCount":2,"totalTokenCount":\#(12 + index + 1)},"modelVersion":"gemini-2.5-flash"}"#
        }
    }

    static func wire(_ events: [String]) -> [UInt8] {
        Array(events.map { "data: \($0)\r\n\r\n" }.joined().utf8)
    }

    @Test func eventsArriveIncrementallyAndByteForByte() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let gate = FakeGemini.StreamGate(permits: 1)
            let events = Self.events(5)
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, interval: .zero, framing: .crlf, gate: gate))])
            let response = try await testClient.execute(gateway.request(ssePath), timeout: .seconds(120))
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true)
            var received: [UInt8] = []
            var iterator = response.body.makeAsyncIterator()
            // The first event reaches the client while the upstream has sent only that one.
            let first = try #require(try await iterator.next())
            received += Array(buffer: first)
            #expect(fakes[0].eventLog().count == 1, "the upstream had sent only one event")
            #expect(String(decoding: received, as: UTF8.self).hasPrefix("data: "))
            gate.open()
            while let chunk = try await iterator.next() { received += Array(buffer: chunk) }
            #expect(fakes[0].eventLog().count == 5)
            #expect(received == Self.wire(events))

            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "success")
            #expect(rows.first?["is_stream"] as Bool? == true)
            #expect(rows.first?["usage_status"] as String? == "complete")
            #expect(rows.first?["candidates_tokens"] as Int? == 5, "the last event's running total, not a sum")
            #expect(rows.first?["total_tokens"] as Int? == 17)
            #expect(rows.first?["response_bytes"] as Int? == Self.wire(events).count)
        }
    }

    @Test func theNonSSEStreamIsAStreamedJSONArray() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let events = Self.events(3)
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .jsonStream(elements: events))])
            let answer = try await gateway.send(gateway.request("/v1beta/models/gemini-2.5-flash:streamGenerateContent"))
            #expect(answer.status == 200)
            let array = try JSONSerialization.jsonObject(with: Data(answer.body)) as? [Any]
            #expect(array?.count == 3)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["candidates_tokens"] as Int? == 3)
        }
    }

    @Test("a failure before the first byte fails over", arguments: ["abort", "close"])
    func failureBeforeFirstByte(kind: String) async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            let broken: FakeGemini.Reply = kind == "abort" ? .sse(events: Self.events(3), failAfter: 0) : .closeConnection
            fakes[0].setRules([.init(key: a, reply: broken)])
            let answer = try await gateway.send(gateway.request(ssePath))
            #expect(answer.status == 200)
            #expect(answer.header("x-fake-key") == String(b.suffix(4)))
            #expect(answer.text.components(separatedBy: "data: ").count - 1 == 3)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "success")
            #expect(rows.first?["attempt_count"] as Int? == 2)
            // The broken try keeps the status of the head it got (none when the connection closed).
            let requestID = try #require(rows.first?["request_id"] as String?)
            let tries = try gateway.attemptRows(requestID: requestID)
            #expect(tries.count == 2)
            #expect(tries.first?["status"] as Int? == (kind == "abort" ? 200 : nil))
            #expect(tries.first?["verdict"] as String? != "success")
            #expect(tries.last?["status"] as Int? == 200)
            #expect(tries.last?["verdict"] as String? == "success")
        }
    }

    @Test func aFailureAfterTheFirstByteAbortsTheClientAndIsLoggedTruncated() async throws {
        try await withGateway(keys: [a, b]) { gateway, fakes in
            fakes[0].setRules([.init(reply: .sse(events: Self.events(6), interval: .milliseconds(20), failAfter: 2))])
            let response = try await testClient.execute(gateway.request(ssePath), timeout: .seconds(120))
            #expect(response.status.code == 200)
            var iterator = response.body.makeAsyncIterator()
            var bytes: [UInt8] = []
            let failed: Bool
            do {
                while let chunk = try await iterator.next() { bytes += Array(buffer: chunk) }
                failed = false
            } catch {
                failed = true
            }
            #expect(failed, "the client must see an error, not a clean end")
            #expect(fakes[0].received().count == 1, "no retry after the first byte")
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "truncated")
            #expect(rows.first?["usage_status"] as String? == "truncated")
            // Nothing is blamed on the key for the relay dying.
            let keys = try gateway.database.listKeys()
            #expect(keys.allSatisfy { $0.state == .active && $0.cooldowns.isEmpty })
        }
    }

    @Test func aRunningStreamIsInTheAccountsFromItsFirstByteUntilItsRowIsWritten() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // Two events go at once; the rest wait for the gate: the stream is running.
            let gate = FakeGemini.StreamGate(permits: 2)
            let events = Self.events(4)
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, interval: .zero, framing: .crlf, gate: gate))])
            let response = try await testClient.execute(gateway.request(ssePath), timeout: .seconds(120))
            #expect(response.status.code == 200)
            var iterator = response.body.makeAsyncIterator()
            _ = try await iterator.next()

            // While it runs: a row in streams_in_flight with what is known, and none in requests.
            let running = try await waitFor("the stream's row in streams_in_flight") {
                try gateway.database.read { db in
                    try Row.fetchOne(db, sql: "SELECT * FROM streams_in_flight WHERE response_bytes > 0")
                }
            }
            #expect(running["model"] as String? == "gemini-2.5-flash")
            #expect(running["key_fingerprint"] as String? == Secret.fingerprint(a))
            #expect(running["client_name"] as String? == "tests")
            #expect((running["total_tokens"] as Int? ?? 0) >= 13, "the running total of the events sent so far")
            let entryJSON: String = try #require(running["entry"])
            #expect(!entryJSON.contains(a), "no key in the snapshot")
            #expect(try gateway.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") } == 0)

            // It ends: its row is written and its snapshot is gone, in the same transaction.
            gate.open()
            var rest = 0
            while let chunk = try await iterator.next() { rest += chunk.readableBytes }
            #expect(rest > 0)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "success")
            #expect(rows.first?["total_tokens"] as Int? == 16)
            #expect(try gateway.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM streams_in_flight") } == 0)
        }
    }

    @Test func aClientHangingUpCancelsTheUpstreamAndBlamesNoKey() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // A minute of events: on a saturated machine the gateway may take seconds to see the
            // hang-up, and a stream that ended first would hide whether it cancelled anything.
            let total = 600
            // The first event goes at once, the rest only once the client has hung up (a busy
            // machine could otherwise deliver the whole stream before the client reads event 0).
            let gate = FakeGemini.StreamGate(permits: 1)
            fakes[0].setRules([.init(reply: .sse(events: Self.events(total), interval: .milliseconds(100), gate: gate))])
            let request = gateway.request(ssePath)
            let reader = Task {
                let response = try await testClient.execute(request, timeout: .seconds(120))
                var iterator = response.body.makeAsyncIterator()
                _ = try await iterator.next()
                // Hang up: stop reading and drop the response.
            }
            _ = try await reader.value
            gate.open()
            // The gateway closes the upstream connection once it finds the client gone: the
            // fake's stream ends there, before its last event (a minute of them after the hang-up).
            let end = try await waitFor("the upstream stream to end") { fakes[0].streamEnds()[0] }
            #expect(end == .clientGone, "the upstream kept sending after the client left")
            #expect(fakes[0].eventLog().count < total)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "cancelled")
            let keys = try gateway.database.listKeys()
            #expect(keys.allSatisfy { $0.state == .active && $0.cooldowns.isEmpty && $0.lastThrottledAt == nil })
        }
    }
}
