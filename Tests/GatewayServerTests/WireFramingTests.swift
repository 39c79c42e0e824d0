import FakeGemini
import Foundation
import Testing
import TestSupport

/// The proxy frames its answers itself (`HTTPWire`), and the upstream requests too: these read
/// the bytes on the wire, several exchanges on one connection, where a framing mistake would
/// show as the next answer starting in the wrong place.
@Suite struct WireFramingTests {
    let a = testKey("a")
    static let health = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    @Test func aStreamIsChunkedAndTheConnectionServesTheNextRequest() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: StreamingTests.events(3), interval: .milliseconds(10)))])
            let body = #"{"contents":[]}"#
            let stream = "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let plain = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let (first, second) = try await Self.exchange(gateway, stream, then: plain)
            let head = first.head.lowercased()
            #expect(first.status == 200, "\(first)")
            #expect(head.contains("transfer-encoding: chunked") && !head.contains("content-length"), "\(head)")
            let events = try #require(Self.dechunk(first.bodyText), "\(first)")
            #expect(events.components(separatedBy: "data: ").count - 1 == 3, "\(events)")
            // The chunked body ended exactly where the next answer begins.
            #expect(second.status == 200 && second.bodyText.contains("candidates"), "\(second)")
            #expect(try await gateway.requestRows(count: 2).allSatisfy { $0["outcome"] as String? == "success" })
        }
    }

    @Test func largeStreamedChunksAreFramedWhole() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // Events of 100 KB: the upstream's body parts come in reads of up to 64 KiB, over the
            // 16 KiB up to which a chunk is copied into one buffer with its framing.
            let events = (0..<3).map { #"{"text":"\#(String(repeating: "y", count: 100_000))-\#($0)"}"# }
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, interval: .milliseconds(10)))])
            let body = #"{"contents":[]}"#
            let stream = "POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let (answer, next) = try await Self.exchange(gateway, stream, then: Self.health)
            let decoded = try #require(Self.dechunk(answer.bodyText), "\(answer)")
            #expect(decoded == events.map { "data: \($0)\r\n\r\n" }.joined())
            #expect(next.status == 200 && next.bodyText == #"{"status":"ok"}"#, "\(next)")
        }
    }

    @Test func aRelayedAnswerOfKnownLengthCarriesItOnce() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            // Larger than one read: relayed chunk by chunk with the upstream's length.
            let answer = #"{"candidates":[],"padding":""# + String(repeating: "x", count: 300_000) + #"","end":"MARK"}"#
            fakes[0].setRules([.init(method: "generateContent", reply: .status(200, body: answer))])
            let body = #"{"contents":[]}"#
            let request = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let (relayed, next) = try await Self.exchange(gateway, request, then: Self.health)
            #expect(relayed.status == 200, "\(relayed)")
            #expect(relayed.header("content-length") == "\(answer.utf8.count)", "\(relayed.head)")
            #expect(relayed.count(of: "content-length") == 1, "one length: \(relayed.head)")
            #expect(relayed.header("transfer-encoding") == nil, "\(relayed.head)")
            #expect(relayed.bodyText == answer, "the body as sent")
            // Nothing more: the next answer starts right after it.
            #expect(next.status == 200 && next.bodyText == #"{"status":"ok"}"#, "\(next)")
        }
    }

    @Test func aProxiedHEADIsAnsweredWithAHeadOnly() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"candidates":[]}"#
            fakes[0].setRules([.init(method: "generateContent", reply: .status(200, body: body))])
            let head = "HEAD /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n\r\n"
            // A body after the head would be read as the start of the next answer.
            let (answer, next) = try await Self.exchange(gateway, head, method: "HEAD", then: Self.health)
            #expect(answer.status == 200, "\(answer)")
            // The length its GET would have, once.
            #expect(answer.header("content-length") == "\(body.utf8.count)" && answer.count(of: "content-length") == 1, "\(answer)")
            #expect(next.head.hasPrefix("HTTP/1.1 200 OK") && next.bodyText == #"{"status":"ok"}"#, "\(next)")
            #expect(fakes[0].received().first?.method == "HEAD")
            #expect(try await gateway.requestRows(count: 1).count == 1)
        }
    }

    @Test func theGatewaysOwnRoutesAnswerHEADWithoutABody() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let (answer, next) = try await Self.exchange(gateway, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", method: "HEAD", then: Self.health)
            #expect(answer.status == 200, "\(answer)")
            // No body after the head: the next answer starts right after it, with its body.
            #expect(next.head.hasPrefix("HTTP/1.1 200 OK") && next.bodyText == #"{"status":"ok"}"#, "a body: \(next)")
        }
    }

    @Test func anUpstreamAnswerWithoutABodyStatusGetsNoFraming() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            fakes[0].setRules([.init(method: "generateContent", reply: .status(204, body: ""))])
            let body = #"{"contents":[]}"#
            let request = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let (answer, next) = try await Self.exchange(gateway, request, then: Self.health)
            #expect(answer.head.hasPrefix("HTTP/1.1 204 No Content"), "\(answer)")
            #expect(answer.header("content-length") == nil && answer.header("transfer-encoding") == nil, "\(answer)")
            #expect(next.head.hasPrefix("HTTP/1.1 200 OK") && next.bodyText == #"{"status":"ok"}"#, "\(next)")
        }
    }

    /// Sends `first` on a new connection and reads its answer (framed as for `method`), then
    /// sends `second` on the same connection and reads its answer: a framing mistake in the first
    /// shows as a second answer that does not start where it should.
    static func exchange(
        _ gateway: GatewayHarness, _ first: String, method: String = "POST", then second: String
    ) async throws -> (RawAnswer, RawAnswer) {
        try await withRawConnection(port: gateway.port) { connection in
            connection.send(first)
            let answer = try connection.readAnswer(to: method)
            connection.send(second)
            return (answer, try connection.readAnswer(to: second.hasPrefix("HEAD") ? "HEAD" : "GET"))
        }
    }

    /// The body of a chunked message, or nil when its framing is wrong (a size that is not hex,
    /// a chunk not followed by CRLF, no last chunk, bytes after it).
    static func dechunk(_ text: String) -> String? {
        var rest = Substring(text)
        var body = ""
        while true {
            guard let line = rest.range(of: "\r\n"), let size = Int(rest[..<line.lowerBound], radix: 16) else { return nil }
            rest = rest[line.upperBound...]
            if size == 0 { return rest == "\r\n" ? body : nil }
            let bytes = Array(rest.utf8)
            guard bytes.count >= size + 2, bytes[size] == 13, bytes[size + 1] == 10 else { return nil }
            body += String(decoding: bytes[..<size], as: UTF8.self)
            rest = Substring(String(decoding: bytes[(size + 2)...], as: UTF8.self))
        }
    }
}
