import GatewayCore
@testable import GatewayHTTP
@testable import GatewayServer
import NIOCore
import Testing

/// The gateway's own error answers: Gemini's envelope, written by Core's Codable `GoogleError`.
@Suite struct GeminiErrorResponseTests {
    @Test func anAnswerIsTheEnvelopeOfItsStatusAndMessage() throws {
        let message = "a \"quoted\" C:\\path\\ with\na new line, a tab\t, a NUL \u{0} and é 日本 🙂"
        let (head, body) = GeminiErrorResponse(.badGateway, "UNAVAILABLE", message, headers: ["Retry-After": "3"]).answer()
        #expect(head.status == .badGateway)
        #expect(head.headers["Content-Type"] == ["application/json; charset=UTF-8"])
        #expect(head.headers["Retry-After"] == ["3"])
        let bytes = try #require(body.getBytes(at: body.readerIndex, length: body.readableBytes))
        #expect(!bytes.contains { $0 < 0x20 }, "a raw control character: \(String(decoding: bytes, as: UTF8.self))")
        #expect(GoogleError.parse(bytes) == GoogleError(code: 502, message: message, status: "UNAVAILABLE"))
    }

    @Test func theEnvelopeIsByteForByteWhatItWas() {
        let body = GeminiErrorResponse.unauthenticated.answer().1
        #expect(String(buffer: body) == #"{"error":{"code":401,"message":"Missing or invalid gateway token: send it as the x-goog-api-key header, the key query parameter, or Authorization: Bearer.","status":"UNAUTHENTICATED"}}"#)
    }
}
