import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayServer
import GatewayStore
import GRDB
import NIOCore
import Testing
import TestSupport

/// Garbage, huge and odd requests: a clear answer, no crash, nothing buffered past the limit.
@Suite struct BadInputTests {
    let a = testKey("a")

    @Test func garbageHTTPIsRefusedAndTheServerKeepsServing() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            for garbage in ["GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", String(repeating: "\u{01}\u{ff}", count: 5000)] {
                // A 4xx or nothing, and the connection closed either way.
                let reply = try await withRawConnection(port: gateway.port) { connection in
                    connection.send(garbage)
                    return String(decoding: try connection.readToClose(), as: UTF8.self)
                }
                #expect(reply.isEmpty || reply.hasPrefix("HTTP/1.1 4"), "\(reply.prefix(40))")
            }
            #expect(try await gateway.generate().status == 200)
        }
    }

    @Test func aBodyOverTheLimitIs413WithoutBeingRead() async throws {
        try await withGateway(keys: [a], configure: { $0.maximumBodyBytes = 1 << 20 }) { gateway, fakes in
            // Declared too large: refused before reading.
            var declared = gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", body: nil)
            let size = 200 << 20
            declared.body = .stream(AsyncStream<ByteBuffer> { continuation in
                continuation.yield(ByteBuffer(repeating: UInt8(ascii: "a"), count: 1024))
                continuation.finish()
            }, length: .known(Int64(size)))
            let refused = try? await gateway.send(declared)
            if let refused {
                #expect(refused.status == 413)
                #expect((try refused.json()["error"] as? [String: Any])?["status"] as? String == "INVALID_ARGUMENT")
            }
            // Streamed without a length: refused once the limit is passed.
            var streamed = gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", body: nil)
            streamed.body = .stream(AsyncStream<ByteBuffer> { continuation in
                for _ in 0..<(3 << 10) { continuation.yield(ByteBuffer(repeating: UInt8(ascii: "b"), count: 1024)) }
                continuation.finish()
            }, length: .unknown)
            if let answer = try? await gateway.send(streamed) {
                #expect(answer.status == 413)
            }
            #expect(fakes[0].received().isEmpty)
            let rows = try await gateway.requestRows(count: 2)
            #expect(rows.count == 2)
            #expect(rows.allSatisfy { $0["status"] as Int == 413 && $0["outcome"] as String == "too_large" })
            // Under the limit is fine.
            #expect(try await gateway.generate().status == 200)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrderAndConnectionCloseIsHonoured() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // One write: a proxied request, a probe the gateway answers itself, another proxied one
            // with `Connection: close`, and a fourth request that must not be served.
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            func proxied(_ extra: String = "") -> String {
                "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
            }
            let bytes = proxied() + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + proxied("Connection: close\r\n")
                + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            let (answers, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send(bytes)
                let answers = try ["POST", "GET", "POST"].map { try connection.readAnswer(to: $0) }
                return (answers, try connection.readToClose())
            }
            #expect(answers.map(\.status) == [200, 200, 200], "\(answers)")
            // In order: the proxied answers carry the request id, the probe its own body, between them.
            #expect(answers.map { $0.header("x-gateway-request-id") != nil } == [true, false, true], "\(answers)")
            #expect(answers[1].bodyText == #"{"status":"ok"}"#)
            // The gateway closed the connection after the answer to `Connection: close`, and
            // answered nothing behind it.
            #expect(rest.isEmpty, "\(String(decoding: rest, as: UTF8.self))")
            #expect(fakes[0].received().count == 2)
            #expect(try await gateway.requestRows(count: 2).count == 2)
        }
    }

    @Test func nothingPipelinedBehindARefusedBodyIsServed() async throws {
        try await withGateway(keys: [a], configure: { $0.maximumBodyBytes = 1024 }) { gateway, fakes in
            let big = String(repeating: "a", count: 2000)
            let small = #"{"contents":[]}"#
            func request(_ body: String) -> String {
                "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            // The oversized request whole, and a good one right behind it in the same write.
            let bytes = request(big) + request(small)
            let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send(bytes)
                return (try connection.readAnswer(), try connection.readToClose())
            }
            #expect(answer.status == 413, "\(answer)")
            #expect(answer.header("Connection") == "close")
            #expect(rest.isEmpty, "nothing after the 413: \(String(decoding: rest, as: UTF8.self))")
            #expect(fakes[0].received().isEmpty)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.map { $0["outcome"] as String? } == ["too_large"])
        }
    }

    @Test func garbageAfterAProxiedRequestClosesTheConnectionOnceItIsAnswered() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"contents":[]}"#
            let bytes = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)" + "GARBAGE \u{01}\u{02}\r\n\r\n"
            let (answer, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send(bytes)
                return (try connection.readAnswer(), try connection.readToClose())
            }
            // The request before the bad bytes is answered whole; then the connection closes.
            #expect(answer.head.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
            #expect(answer.bodyText.contains("candidates"))
            #expect(rest.isEmpty, "\(String(decoding: rest, as: UTF8.self))")
            #expect(fakes[0].received().count == 1)
            #expect(try await gateway.requestRows(count: 1).first?["outcome"] as String? == "success")
        }
    }

    /// Characters that RFC 3986 leaves out of a URI but HTTP parsers accept (`|`, `{`, `"`...) go
    /// upstream, for the upstream to judge: the request is not turned into an upstream failure
    /// that would cool every upstream tried (SwiftNIO's outbound check refused them: 502).
    @Test func aTargetWithCharactersOutsideRFC3986IsForwardedAsSent() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"contents":[]}"#
            let bytes = "POST /v1beta/models/gemini-2.5-flash:generateContent?x=a|b{c}^`\" HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            let answer = try await withRawConnection(port: gateway.port) { connection in
                connection.send(bytes)
                return try connection.readAnswer()
            }
            #expect(answer.status == 200, "\(answer)")
            // Verbatim, not percent-encoded (which would be the same query to the upstream).
            #expect(fakes[0].received().map(\.query) == ["x=a|b{c}^`\""])
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "success")
        }
    }

    @Test func anHTTP10ClientIsAnsweredInItsVersionAndKeptAliveOnlyIfItAsks() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"contents":[]}"#
            func request(_ extra: String) -> String {
                "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.0\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
            }
            // Without keep-alive: one answer, with its length, then the connection closes.
            let (closing, keepingAlive) = (request(""), request("Connection: keep-alive\r\n"))
            let (plain, rest) = try await withRawConnection(port: gateway.port) { connection in
                connection.send(closing)
                return (try connection.readAnswer(), try connection.readToClose())
            }
            #expect(plain.head.hasPrefix("HTTP/1.0 200 OK"), "\(plain)")
            #expect(plain.header("Connection") == "close" && plain.header("Content-Length") != nil, "\(plain)")
            #expect(rest.isEmpty)
            // Asking for keep-alive: told so, and the connection serves the next request.
            let kept = try await withRawConnection(port: gateway.port) { connection in
                try (0..<2).map { _ in
                    connection.send(keepingAlive)
                    return try connection.readAnswer()
                }
            }
            #expect(kept.allSatisfy { $0.head.hasPrefix("HTTP/1.0 200 OK") && $0.header("Connection") == "keep-alive" }, "\(kept)")
            #expect(fakes[0].received().count == 3)
        }
    }

    @Test func anHTTP10StreamIsSentRawAndEndedByClosingTheConnection() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: StreamingTests.events(3), interval: .milliseconds(10)))])
            let body = #"{"contents":[]}"#
            // HTTP/1.0 has no chunked encoding: an answer of unknown length ends when the
            // connection does, even when the client asked to keep it.
            let request = "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.0\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nConnection: keep-alive\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            // Read as the answer's framing says: with neither length nor chunks, to the close.
            let reply = try await withRawConnection(port: gateway.port) { connection in
                connection.send(request)
                return try connection.readAnswer()
            }
            #expect(reply.head.hasPrefix("HTTP/1.0 200 OK"), "\(reply)")
            let head = reply.head.lowercased()
            #expect(!head.contains("transfer-encoding") && !head.contains("content-length"), "\(head)")
            #expect(!head.contains("connection: keep-alive"), "\(head)")
            #expect(reply.bodyText.components(separatedBy: "data: ").count - 1 == 3, "\(reply)")
            #expect(!reply.bodyText.contains("\r\n0\r\n"), "no chunk framing")
            #expect(try await gateway.requestRows(count: 1).first?["outcome"] as String? == "success")
        }
    }

    @Test func aClientThatExpects100ContinueGetsItBeforeSendingItsBody() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let head = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n"
            // curl waits a second for the interim answer before it sends the body anyway.
            let (interim, answer) = try await withRawConnection(port: gateway.port) { connection in
                connection.send(head)
                let interim = try connection.readAnswer()
                connection.send(body)
                return (interim, try connection.readAnswer())
            }
            #expect(interim.head.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
            #expect(answer.status == 200 && answer.bodyText.contains("candidates"), "\(answer)")
            #expect(fakes[0].received().first?.bodyText == body)
            // Nobody else is told to go on: the upstream got no `Expect`.
            #expect(fakes[0].received().first?.hasHeader("expect") == false)
        }
    }

    @Test func aClientLeavingBeforeItsAnswerStopsTheUpstreamCallAndBlamesNoKey() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // The upstream never answers within the test (stopping the fake ends the wait); the
            // client leaves after its request is sent upstream. 20 s was once too short: on a
            // saturated machine the test's own task did not run again before the answer came.
            fakes[0].setRules([.init(reply: .delay(.seconds(3_600), then: .ok))])
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let request = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let connection = try RawConnection(port: gateway.port)
            connection.send(request)
            try await waitUntil("the request to reach the upstream") { !fakes[0].received().isEmpty }
            connection.close()
            // The row comes when the client leaves (long before the upstream would answer), says
            // the client left, and no key or upstream is blamed; no other pair was tried.
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["outcome"] as String? == "cancelled")
            #expect(rows.first?["status"] as Int? == 499)
            #expect(fakes[0].received().count == 1)
            // The verdict reached the pool before the row was queued: the pool blames nobody.
            let snapshot = gateway.gateway.pool.snapshot()
            #expect(snapshot.activeKeys == 1 && snapshot.coolingKeys == 0, "\(snapshot)")
            #expect(snapshot.healthyUpstreams == snapshot.upstreams, "\(snapshot)")
        }
    }

    @Test func aClientLeavingInTheMiddleOfItsBodyGetsACancelledRow() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let head = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: 1000\r\n\r\n{\"contents\":"
            // The head and part of the body, then the client hangs up (the bytes sent arrive first).
            try await withRawConnection(port: gateway.port) { connection in connection.send(head) }
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.count == 1)
            #expect(rows.first?["outcome"] as String? == "cancelled")
            #expect(rows.first?["status"] as Int? == 499)
            #expect(fakes[0].received().isEmpty)
        }
    }

    @Test func unknownPathsAre404InGeminisEnvelope() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            for path in ["/", "/admin", "/v2/models", "/v1beta"] {
                let answer = try await gateway.send(gateway.request(path, method: .GET))
                #expect(answer.status == 404, "\(path)")
                #expect((try answer.json()["error"] as? [String: Any])?["status"] as? String == "NOT_FOUND")
            }
            #expect(fakes[0].received().isEmpty)
        }
    }

    /// A `..` segment would climb out of an upstream's path prefix (a relay's `/gemini`) once the
    /// upstream resolves it: not proxied, whatever its spelling (escaped dots, `..;`, slashes
    /// written `%2F` or `\`, which servers that decode first split on); dots inside a segment
    /// and anything in the query are fine.
    @Test func aPathThatCouldClimbOutOfARelaysPrefixIsNotProxied() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let refused = [
                "/v1beta/../../admin", "/v1beta/models/../../x:generateContent", "/v1beta/%2e%2e/%2E%2E/admin",
                "/v1beta/.%2e/admin", "/v1beta/./models/gemini-2.5-flash:generateContent", "/v1beta/models/..",
                "/v1beta/..?alt=sse", "/v1beta/models/x/.#frag", "/v1beta/..%2F..%2Fadmin", "/v1beta/..%2f..%2fadmin",
                "/v1beta/..%5C..%5Cadmin", "/v1beta/..\\..\\admin", "/v1beta/..;/..;/admin", "/v1beta/x#/../../admin",
                "/v1beta/models/x:generateContent?a=b#/../",
            ]
            for path in refused {
                let bytes = "POST \(path) HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n"
                    + "Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                let reply = try await withRawConnection(port: gateway.port) { connection in
                    connection.send(bytes)
                    return try connection.readAnswer()
                }
                #expect(reply.status == 404, "\(path): \(reply)")
            }
            #expect(fakes[0].received().isEmpty)
            let allowed = [
                "/v1beta/models/gemini-2.5-flash:generateContent", "/v1beta/models/...x:generateContent",
                "/v1beta/models/a..b:countTokens?x=/../", "/v1beta/models/x:countTokens?next=%2F..%2Fy",
            ]
            for path in allowed {
                let answer = try await gateway.send(gateway.request(path, body: #"{"contents":[]}"#))
                #expect(answer.status == 200, "\(path)")
            }
            #expect(fakes[0].received().count == allowed.count)
        }
    }

    /// What the gateway can judge itself is refused before anything goes upstream (a relay would
    /// answer it with a page of its own, and the gateway could not tell whose fault that was).
    @Test func aControlCharacterInTheTargetOrOversizedHeadersAreRefusedBeforeGoingUpstream() async throws {
        try await withGateway(keys: [a], fakes: 2) { gateway, fakes in
            let path = "/v1beta/models/gemini-2.5-flash:generateContent"
            let refused: [(target: String, headers: [(String, String)], status: Int)] = [
                (path + "%0d%0aX-Injected:%20yes", [], 400),
                (path + "?alt=sse%0A", [], 400),
                (path + "%00", [], 400),
                (path + "?next=%0D", [], 400),
                (path, [("X-Big", String(repeating: "a", count: 9000))], 431),
                (path, (0..<5).map { ("X-Part-\($0)", String(repeating: "b", count: 4000)) }, 431),
                (path + "?q=" + String(repeating: "c", count: 9000), [], 414),
            ]
            for (target, headers, status) in refused {
                let extra = headers.map { "\($0.0): \($0.1)\r\n" }.joined()
                let answer = try await withRawConnection(port: gateway.port) { connection in
                    // No body: the gateway answers from the head, and nothing is left unread.
                    connection.send("POST \(target) HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n\(extra)Content-Length: 0\r\n\r\n")
                    return try connection.readAnswer()
                }
                #expect(answer.status == status, "\(target.prefix(80)): \(answer)")
                #expect(answer.bodyText.contains(#""status":"INVALID_ARGUMENT""#), "\(answer)")
            }
            #expect(fakes.allSatisfy { $0.received().isEmpty })
            let rows = try await gateway.requestRows(count: refused.count)
            #expect(rows.map { $0["outcome"] as String } == Array(repeating: "client_error", count: refused.count))
            #expect(rows.map { $0["status"] as Int } == refused.map(\.status))
            let snapshot = gateway.gateway.pool.snapshot()
            #expect(snapshot.healthyUpstreams == 2 && snapshot.coolingKeys == 0, "\(snapshot)")
            // Within the limits, and characters that are not CR, LF or NUL, all go through.
            let fine = gateway.request(path + "?x=%09%20%0b", headers: [("X-Big", String(repeating: "a", count: 7000))])
            #expect(try await gateway.send(fine).status == 200)
        }
    }

    @Test func invalidJSONIsPassedThroughForTheUpstreamToJudge() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"contents": [ this is not json "#
            fakes[0].setRules([.init(reply: .fixture("400-malformed-request"))])
            let answer = try await gateway.send(gateway.request("/v1beta/models/gemini-2.5-flash:generateContent", body: body))
            #expect(answer.status == 400)
            #expect(fakes[0].received().first?.bodyText == body)
        }
    }

    /// Heavy (tens of seconds on 2 cores in a debug build): run on its own by `scripts/test`, after
    /// the rest, so it does not starve the timing of other tests. It asserts that every request
    /// is answered, served (200) or refused as overload (503 with `Retry-After`), and that every
    /// answered request has its row; not how fast, nor how many of each: on a busy machine the
    /// answers come later, so the client waits as long as the test's own deadline (a client
    /// timeout is no answer). `--max-in-flight` is set below the client's 1,000 connections, so
    /// that the burst can meet it.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GATEWAY_LOAD_TESTS"] == "1", "scripts/test runs it separately"))
    func tenThousandRequestsAtOnce() async throws {
        // Client, gateway and fake share this process: up to four descriptors a request.
        _ = DescriptorLimit.raise()
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1000)
        configuration.timeout = .init(connect: .seconds(600), read: .seconds(600))
        configuration.decompression = .disabled
        let patientClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            try await burst(through: patientClient)
        } catch {
            try? await patientClient.shutdown()
            throw error
        }
        try await patientClient.shutdown()
    }

    /// What the burst's answers are counted as.
    private static let served = "200", overloaded = "503 overloaded"

    private func burst(through patientClient: HTTPClient) async throws {
        try await withGateway(keys: [a, testKey("b")], timeout: 900, configure: { $0.maximumInFlight = 500 }) { gateway, fakes in
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<10_000 {
                    group.addTask {
                        do {
                            let response = try await patientClient.execute(
                                gateway.request("/v1beta/models/gemini-2.5-flash:generateContent"), timeout: .seconds(600)
                            )
                            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                            return Self.kind(of: response, body: body)
                        } catch {
                            return String(describing: error)
                        }
                    }
                }
                var answers: [String: Int] = [:]
                for try await answer in group { answers[answer, default: 0] += 1 }
                return answers
            }
            let served = answers[Self.served, default: 0], overloaded = answers[Self.overloaded, default: 0]
            print("10,000 requests at once, --max-in-flight 500: \(served) served, \(overloaded) answered 503 as overload")
            // Every request got an answer, served or refused as overload: no other error, no
            // client timeout (none crashed the gateway).
            #expect(served + overloaded == 10_000, "\(answers); the upstream received \(fakes[0].requestCount)")
            // And the gateway still serves.
            #expect(try await gateway.generate().status == 200)
            // Every answered request has its row, and only the served ones went upstream.
            let rows = try await gateway.requestRows(count: served + overloaded + 1)
            #expect(rows.count == served + overloaded + 1)
            let successes = rows.filter { $0["outcome"] as String == "success" }.count
            let refusals = rows.filter { $0["outcome"] as String == "no_capacity" && $0["error_reason"] as String? == "MAX_IN_FLIGHT" }.count
            #expect(successes == served + 1 && refusals == overloaded, "\(successes) successes and \(refusals) refusals logged; \(answers)")
            #expect(fakes[0].received().count == served + 1)
        }
    }

    /// "200", "503 overloaded" (the gateway's own 503 with `Retry-After` and its request id), or
    /// the status and body of anything else.
    private static func kind(of response: HTTPClientResponse, body: String) -> String {
        switch response.status.code {
        case 200:
            return served
        case 503 where response.headers.first(name: "retry-after") == "1" && body.contains(#""status":"UNAVAILABLE""#)
            && body.contains("overloaded") && response.headers.first(name: "x-gateway-request-id") != nil:
            return overloaded
        default:
            return "\(response.status.code) \(body.prefix(200))"
        }
    }
}
