import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayServer
import GatewayStore
import GRDB
import NIOCore
import Testing

/// Garbage, huge and odd requests: a clear answer, no crash, nothing buffered past the limit.
@Suite struct BadInputTests {
    let a = testKey("a")

    @Test func garbageHTTPIsRefusedAndTheServerKeepsServing() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            for garbage in ["GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\nHost: x\r\n\r\n", String(repeating: "\u{01}\u{ff}", count: 5000)] {
                let reply = try await rawExchange(port: gateway.port, bytes: Array(garbage.utf8)).text
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
            // One write: a proxied request, a probe that Hummingbird answers, another proxied one
            // with `Connection: close`, and a fourth request that must not be served.
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            func proxied(_ extra: String = "") -> String {
                "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)"
            }
            let bytes = proxied() + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + proxied("Connection: close\r\n")
                + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            // (Under the whole suite's load the first answer may take seconds: wait long for silence.)
            let (reply, closed) = try await rawExchange(port: gateway.port, bytes: Array(bytes.utf8), silence: 20)
            // (An answer's body runs straight into the next status line.)
            let statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(6)) }
            #expect(statuses == ["200 OK", "200 OK", "200 OK"], "\(reply.prefix(300))")
            // In order: the proxied answers carry the request id, the probe its own body, between them.
            let probe = reply.range(of: #"{"status":"ok"}"#)
            let ids = reply.ranges(of: "x-gateway-request-id")
            #expect(ids.count == 2)
            if let probe, ids.count == 2 {
                #expect(ids[0].lowerBound < probe.lowerBound && probe.lowerBound < ids[1].lowerBound)
            }
            // The gateway closed the connection after the answer to `Connection: close`.
            #expect(closed)
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
            let (reply, closed) = try await rawExchange(port: gateway.port, bytes: Array((request(big) + request(small)).utf8), silence: 20)
            let statuses = reply.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
            #expect(statuses == ["413"], "\(reply.prefix(200))")
            #expect(reply.contains("Connection: close"))
            #expect(closed)
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
            let (reply, closed) = try await rawExchange(port: gateway.port, bytes: Array(bytes.utf8), silence: 20)
            // The request before the bad bytes is answered whole; then the connection closes.
            #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(reply.prefix(80))")
            #expect(reply.contains("candidates"))
            #expect(reply.components(separatedBy: "HTTP/1.1 ").count == 2, "\(reply.prefix(400))")
            #expect(closed)
            #expect(fakes[0].received().count == 1)
            #expect(try await gateway.requestRows(count: 1).first?["outcome"] as String? == "success")
        }
    }

    /// Characters that RFC 3986 leaves out of a URI but HTTP parsers accept (`|`, `{`, `"`...) go
    /// upstream, for the upstream to judge: the request is not turned into an upstream failure
    /// that would cool every upstream tried (SwiftNIO's outbound check refused them: 502).
    @Test(arguments: [GatewayConfiguration.Transport.nio, .asyncHTTPClient])
    func aTargetWithCharactersOutsideRFC3986IsForwardedAsSent(transport: GatewayConfiguration.Transport) async throws {
        try await withGateway(keys: [a], configure: { $0.transport = transport }) { gateway, fakes in
            let body = #"{"contents":[]}"#
            let bytes = "POST /v1beta/models/gemini-2.5-flash:generateContent?x=a|b{c}^`\" HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            let (reply, _) = try await rawExchange(port: gateway.port, bytes: Array(bytes.utf8))
            #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(reply.prefix(80))")
            // Verbatim through the NIO transport; AsyncHTTPClient percent-encodes them (the same
            // query to the upstream).
            let query = fakes[0].received().map(\.query)
            #expect(query == [transport == .nio ? "x=a|b{c}^`\"" : "x=a%7Cb%7Bc%7D%5E%60%22"])
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
            let (plain, closed) = try await rawExchange(port: gateway.port, bytes: Array(request("").utf8), silence: 20)
            #expect(plain.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(plain.prefix(80))")
            #expect(plain.contains("Connection: close") && plain.contains("Content-Length: "))
            #expect(closed)
            // Asking for keep-alive: told so, and the connection stays open for the next request.
            let (kept, keptClosed) = try await rawExchange(port: gateway.port, bytes: Array(request("Connection: keep-alive\r\n").utf8))
            #expect(kept.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(kept.prefix(80))")
            #expect(kept.contains("Connection: keep-alive"))
            #expect(!keptClosed)
            #expect(fakes[0].received().count == 2)
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
            let (reply, closed) = try await rawExchange(port: gateway.port, bytes: Array(request.utf8), silence: 20)
            #expect(reply.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(reply.prefix(80))")
            let head = reply.components(separatedBy: "\r\n\r\n").first ?? ""
            #expect(!head.lowercased().contains("transfer-encoding"), "\(head)")
            #expect(!head.lowercased().contains("connection: keep-alive"), "\(head)")
            #expect(reply.components(separatedBy: "data: ").count - 1 == 3, "\(reply)")
            #expect(!reply.contains("\r\n0\r\n"), "no chunk framing")
            #expect(closed)
            #expect(try await gateway.requestRows(count: 1).first?["outcome"] as String? == "success")
        }
    }

    @Test func aClientThatExpects100ContinueGetsItBeforeSendingItsBody() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let head = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\nExpect: 100-continue\r\n\r\n"
            // curl waits a second for the interim answer before it sends the body anyway.
            let replies = try await rawExchanges(port: gateway.port, [(head, "\r\n\r\n"), (body, "candidates")])
            let (interim, answer) = (replies[0], replies[1])
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(interim)")
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer.prefix(80))")
            #expect(fakes[0].received().first?.bodyText == body)
            // Nobody else is told to go on: the upstream got no `Expect`.
            #expect(fakes[0].received().first?.hasHeader("expect") == false)
        }
    }

    @Test func aClientLeavingBeforeItsAnswerStopsTheUpstreamCallAndBlamesNoKey() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // The upstream takes 20 s; the client leaves after its request is sent upstream.
            fakes[0].setRules([.init(reply: .delay(.seconds(20), then: .ok))])
            let body = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
            let request = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let port = gateway.port
            let connection = try RawConnection(port: port)
            connection.send(Array(request.utf8))
            let deadline = Date().addingTimeInterval(10)
            while fakes[0].received().isEmpty, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(fakes[0].received().count == 1)
            let left = Date()
            connection.close()
            // The row comes at once (not when the upstream would have answered), says the client
            // left, and no key or upstream is blamed; no other pair was tried.
            let rows = try await gateway.requestRows(count: 1, timeout: 10)
            #expect(Date().timeIntervalSince(left) < 10)
            #expect(rows.first?["outcome"] as String? == "cancelled")
            #expect(rows.first?["status"] as Int? == 499)
            #expect(fakes[0].received().count == 1)
            try await Task.sleep(for: .milliseconds(300))
            let keys = try gateway.database.listKeys()
            #expect(keys.allSatisfy { $0.state == .active && $0.cooldowns.isEmpty && $0.lastThrottledAt == nil })
            let upstreams = try gateway.database.listUpstreams()
            #expect(upstreams.allSatisfy { $0.lastFailureReason == nil })
        }
    }

    @Test func aClientLeavingInTheMiddleOfItsBodyGetsACancelledRow() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let head = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: 1000\r\n\r\n{\"contents\":"
            // rawExchange closes the socket after the server's 2 s of silence.
            let reply = try await rawExchange(port: gateway.port, bytes: Array(head.utf8))
            #expect(reply.text.isEmpty && !reply.closed)
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
                let (reply, _) = try await rawExchange(port: gateway.port, bytes: Array(bytes.utf8))
                #expect(reply.hasPrefix("HTTP/1.1 404 "), "\(path): \(reply.prefix(60))")
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
    /// the rest, so it does not starve the timing of other tests.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["GATEWAY_LOAD_TESTS"] == "1", "scripts/test runs it separately"))
    func tenThousandRequestsAtOnce() async throws {
        try await withGateway(keys: [a, testKey("b")], timeout: 240) { gateway, fakes in
            let statuses = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<10_000 {
                    group.addTask {
                        do {
                            let response = try await testClient.execute(
                                gateway.request("/v1beta/models/gemini-2.5-flash:generateContent"), timeout: .seconds(200)
                            )
                            _ = try await response.body.collect(upTo: 1 << 20)
                            return String(response.status.code)
                        } catch {
                            return String(describing: error)
                        }
                    }
                }
                var statuses: [String: Int] = [:]
                for try await status in group { statuses[status, default: 0] += 1 }
                return statuses
            }
            // Every request got an answer (none crashed the gateway), and the gateway still serves.
            #expect(statuses["200"] == 10_000, "\(statuses); the upstream received \(fakes[0].received().count)")
            #expect(try await gateway.generate().status == 200)
            let rows = try await gateway.requestRows(count: 10_001, timeout: 30)
            #expect(rows.count == 10_001)
            #expect(fakes[0].received().count == 10_001)
        }
    }
}

/// Sends raw bytes to 127.0.0.1:port and returns what comes back before the server closes the
/// connection (`closed`) or `silence` seconds pass without a byte.
func rawExchange(port: Int, bytes: [UInt8], silence: Int = 2) async throws -> (text: String, closed: Bool) {
    try await onThread {
        let connection = try RawConnection(port: port)
        connection.send(bytes)
        return connection.receive(silence: silence)
    }
}

/// Sends each of `steps` on one connection to 127.0.0.1:port, reading what comes back until its
/// marker (or, without one, until `silence` seconds without a byte) before sending the next; the
/// replies in order.
func rawExchanges(port: Int, _ steps: [(send: String, until: String?)], silence: Int = 2) async throws -> [String] {
    try await onThread {
        let connection = try RawConnection(port: port)
        return steps.map { step in
            connection.send(Array(step.send.utf8))
            return connection.receive(until: step.until, silence: step.until == nil ? silence : 10).text
        }
    }
}

/// Runs blocking socket calls on a thread of their own, not on one of the few threads that the
/// fake upstream's tasks need.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A blocking TCP connection to 127.0.0.1, for bytes no HTTP client would send.
final class RawConnection {
    private var fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { close() }

    func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }



    /// What arrives until `marker` has come, the server closes (or resets) the connection
    /// (`closed`), or `silence` seconds pass without a byte.
    func receive(until marker: String? = nil, silence: Int = 2) -> (text: String, closed: Bool) {
        var timeout = timeval(tv_sec: silence, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var count = 0
        var failure: Int32 = 0
        repeat {
            count = recv(fd, &buffer, buffer.count, 0)
            if count > 0 { reply += buffer[0..<count] }
            if count < 0 { failure = errno }
            if let marker, String(decoding: reply, as: UTF8.self).contains(marker) { break }
        } while count > 0
        // 0: the server closed the connection; ECONNRESET: it closed it with bytes of ours still
        // unread (TCP then resets); any other -1: the silence lasted.
        return (String(decoding: reply, as: UTF8.self), count == 0 || failure == ECONNRESET)
    }
}
