@testable import GatewayHTTP
import NIOCore
import NIOHTTP1
import Testing

/// The heads the proxy frames itself, byte for byte: what SwiftNIO's encoders wrote before.
@Suite struct HTTPWireTests {
    private func head(
        _ status: HTTPResponseStatus, _ headers: [(String, String)], version: HTTPVersion = .http1_1,
        connection: StaticString? = nil, length: Int?, headOnly: Bool = false
    ) -> (String, HTTPWire.Framing) {
        var bytes = ByteBuffer()
        let framing = HTTPWire.writeResponseHead(
            HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(headers)),
            version: version, connection: connection, contentLength: length, headOnly: headOnly, into: &bytes
        )
        return (String(buffer: bytes), framing)
    }

    @Test func aKnownLengthIsWrittenOnceWhateverTheHeadSays() {
        // The relay's head carries the upstream's length; a stray framing header never goes twice.
        let (text, framing) = head(.ok, [("Content-Type", "application/json"), ("Content-Length", "40000"), ("transfer-encoding", "chunked")], length: 40000)
        #expect(text == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40000\r\n\r\n")
        #expect(framing == .plain)
    }

    @Test func anUnknownLengthIsChunkedForHTTP11AndEndedByTheCloseForHTTP10() {
        let (chunked, framing) = head(.ok, [("Content-Type", "text/event-stream")], length: nil)
        #expect(chunked == "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(framing == .chunked)
        let (plain, plainFraming) = head(.ok, [("Content-Type", "text/event-stream")], version: .http1_0, connection: "close", length: nil)
        #expect(plain == "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        #expect(plainFraming == .plain)
    }

    @Test func statusesWithoutABodyGetNoFramingAtAll() {
        for status in [HTTPResponseStatus.noContent, .notModified, .continue] {
            let (text, framing) = head(status, [("Content-Length", "0"), ("ETag", "x")], length: 0)
            #expect(text == "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\nETag: x\r\n\r\n")
            #expect(framing == .none)
        }
    }

    @Test func theAnswerToAHEADKeepsTheFramingOfItsGETButHasNoBody() {
        let (known, knownFraming) = head(.ok, [("Content-Length", "12")], length: 12, headOnly: true)
        #expect(known == "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
        #expect(knownFraming == .none)
        let (unknown, unknownFraming) = head(.ok, [], connection: "keep-alive", length: nil, headOnly: true)
        #expect(unknown == "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(unknownFraming == .none)
    }

    @Test func statusLinesAreSwiftNIOs() {
        #expect(head(.ok, [], length: 0).0.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(head(.ok, [], version: .http1_0, length: 0).0.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(head(.tooManyRequests, [], length: 0).0.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n"))
        #expect(head(.init(statusCode: 499), [], length: 0).0.hasPrefix("HTTP/1.1 499 \r\n"))
        #expect(head(.badGateway, [], version: .http1_0, length: 0).0.hasPrefix("HTTP/1.0 502 Bad Gateway\r\n"))
    }

    @Test func headerLinesAreCopiedWhole() {
        var bytes = ByteBuffer()
        HTTPWire.write(name: "x-goog-api-key", value: "AIza-é-ü", into: &bytes)
        HTTPWire.write(name: "Empty", value: "", into: &bytes)
        #expect(String(buffer: bytes) == "x-goog-api-key: AIza-é-ü\r\nEmpty: \r\n")
    }

    @Test func decimalsAreWrittenDigitByDigit() {
        for value in [0, 7, 10, 1338, 5 << 20, Int.max] {
            var bytes = ByteBuffer()
            HTTPWire.writeDecimal(value, into: &bytes)
            #expect(String(buffer: bytes) == String(value))
        }
    }
}
