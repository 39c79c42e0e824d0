import FakeGemini
import Foundation
import Testing

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
            let replies = try await rawExchanges(port: gateway.port, [(stream, "\r\n0\r\n\r\n"), (plain, "candidates")])
            let (first, second) = (replies[0], replies[1])
            let parts = first.components(separatedBy: "\r\n\r\n")
            let head = parts[0].lowercased()
            #expect(first.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(first.prefix(80))")
            #expect(head.contains("transfer-encoding: chunked") && !head.contains("content-length"), "\(head)")
            let chunked = String(decoding: first.utf8.dropFirst(parts[0].utf8.count + 4), as: UTF8.self)
            let events = try #require(Self.dechunk(chunked), "\(first)")
            #expect(events.components(separatedBy: "data: ").count - 1 == 3, "\(events)")
            // The chunked body ended exactly where the next answer begins.
            #expect(second.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(second.prefix(80))")
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
            let replies = try await rawExchanges(port: gateway.port, [(stream, "\r\n0\r\n\r\n"), (Self.health, "\r\n\r\n")])
            let head = replies[0].components(separatedBy: "\r\n\r\n")[0]
            let chunked = String(decoding: replies[0].utf8.dropFirst(head.utf8.count + 4), as: UTF8.self)
            let decoded = try #require(Self.dechunk(chunked), "\(replies[0].prefix(200))")
            #expect(decoded == events.map { "data: \($0)\r\n\r\n" }.joined())
            #expect(replies[1].hasPrefix("HTTP/1.1 200 OK\r\n"), "\(replies[1].prefix(80))")
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
            let replies = try await rawExchanges(port: gateway.port, [(request, #""MARK"}"#), (Self.health, "\r\n\r\n")])
            let head = replies[0].components(separatedBy: "\r\n\r\n")[0].lowercased()
            #expect(replies[0].hasPrefix("HTTP/1.1 200 OK\r\n"), "\(replies[0].prefix(80))")
            #expect(head.contains("content-length: \(answer.utf8.count)"), "\(head)")
            #expect(head.components(separatedBy: "content-length").count == 2, "one length: \(head)")
            #expect(!head.contains("transfer-encoding"), "\(head)")
            #expect(replies[0].hasSuffix("\r\n\r\n" + answer), "the body as sent, nothing more")
            #expect(replies[1].hasPrefix("HTTP/1.1 200 OK\r\n"), "\(replies[1].prefix(80))")
        }
    }

    @Test func aProxiedHEADIsAnsweredWithAHeadOnly() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            let body = #"{"candidates":[]}"#
            fakes[0].setRules([.init(method: "generateContent", reply: .status(200, body: body))])
            let head = "HEAD /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\nx-goog-api-key: \(gateway.token)\r\n\r\n"
            // Whatever comes within the silence: a body would come with its head.
            let replies = try await rawExchanges(port: gateway.port, [(head, nil), (Self.health, "\r\n\r\n")])
            let (answer, next) = (replies[0], replies[1])
            #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(answer.prefix(80))")
            #expect(answer.hasSuffix("\r\n\r\n") && answer.components(separatedBy: "\r\n\r\n").count == 2, "\(answer)")
            // The length its GET would have, once.
            #expect(answer.lowercased().components(separatedBy: "content-length: \(body.utf8.count)\r\n").count == 2, "\(answer)")
            #expect(answer.lowercased().components(separatedBy: "content-length").count == 2, "\(answer)")
            #expect(next.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(next.prefix(80))")
            #expect(fakes[0].received().first?.method == "HEAD")
            #expect(try await gateway.requestRows(count: 1).count == 1)
        }
    }

    @Test func theGatewaysOwnRoutesAnswerHEADWithoutABody() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let replies = try await rawExchanges(port: gateway.port, [("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", nil), (Self.health, nil)])
            #expect(replies[0].hasPrefix("HTTP/1.1 200 OK\r\n") && replies[0].hasSuffix("\r\n\r\n"), "\(replies[0])")
            #expect(replies[0].components(separatedBy: "\r\n\r\n").count == 2, "\(replies[0])")
            #expect(replies[1].hasPrefix("HTTP/1.1 200 OK\r\n"), "\(replies[1])")
            #expect(replies[1].components(separatedBy: "\r\n\r\n").count == 2 && !replies[1].hasSuffix("\r\n\r\n"), "a body: \(replies[1])")
        }
    }

    @Test func anUpstreamAnswerWithoutABodyStatusGetsNoFraming() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            fakes[0].setRules([.init(method: "generateContent", reply: .status(204, body: ""))])
            let body = #"{"contents":[]}"#
            let request = "POST /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1\r\nHost: x\r\n"
                + "x-goog-api-key: \(gateway.token)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let replies = try await rawExchanges(port: gateway.port, [(request, nil), (Self.health, "\r\n\r\n")])
            let (answer, next) = (replies[0], replies[1])
            #expect(answer.hasPrefix("HTTP/1.1 204 No Content\r\n"), "\(answer.prefix(80))")
            let head = answer.lowercased()
            #expect(!head.contains("content-length") && !head.contains("transfer-encoding"), "\(answer)")
            #expect(answer.hasSuffix("\r\n\r\n") && answer.components(separatedBy: "\r\n\r\n").count == 2, "\(answer)")
            #expect(next.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(next.prefix(80))")
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
