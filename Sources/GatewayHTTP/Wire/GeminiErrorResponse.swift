import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// An error the gateway itself answers, in Gemini's envelope
/// `{"error":{"code":...,"message":"...","status":"..."}}` so SDKs report it properly.
public struct GeminiErrorResponse: Error, Sendable {
    public var status: HTTPResponseStatus
    public var message: String
    public var googleStatus: String
    public var headers: HTTPHeaders

    public init(_ status: HTTPResponseStatus, _ googleStatus: String, _ message: String, headers: HTTPHeaders = [:]) {
        self.status = status
        self.googleStatus = googleStatus
        self.message = message
        self.headers = headers
    }

    /// The response head and the envelope as its body.
    public func answer() -> (HTTPResponseHead, ByteBuffer) {
        var headers = self.headers
        headers.add(name: "Content-Type", value: Self.contentType)
        return (HTTPResponseHead(version: .http1_1, status: status, headers: headers), envelope())
    }

    /// The same, as the answer of a local route.
    public var localAnswer: LocalAnswer {
        let (head, body) = answer()
        return LocalAnswer(head: head, body: body)
    }

    private static let contentType = "application/json; charset=UTF-8"

    /// `{"error":{"code":...,"message":"...","status":"..."}}`, written by Core's Codable
    /// ``GoogleError`` (the type the upstream's envelopes are read into).
    private func envelope() -> ByteBuffer {
        ByteBuffer(bytes: GoogleError(code: Int(status.code), message: message, status: googleStatus).encodedEnvelope())
    }

    // MARK: - The HTTP layer's own refusals (the policy's errors: GatewayServer)

    public static let unauthenticated = GeminiErrorResponse(
        .unauthorized, "UNAUTHENTICATED",
        "Missing or invalid gateway token: send it as the x-goog-api-key header, the key query parameter, or Authorization: Bearer."
    )

    public static func tooLarge(limit: Int) -> GeminiErrorResponse {
        GeminiErrorResponse(.payloadTooLarge, "INVALID_ARGUMENT", "Request payload size exceeds the gateway's limit: \(limit) bytes.")
    }

    /// A body over ``LocalAnswer/maximumRequestBodyBytes`` sent to a path the gateway answers itself.
    public static let localBodyTooLarge = GeminiErrorResponse(
        .payloadTooLarge, "INVALID_ARGUMENT",
        "Request body too large for this path: the gateway's own routes (/healthz, /readyz, /metrics, /status) take no body, at most \(LocalAnswer.maximumRequestBodyBytes) bytes. Gemini requests go to /v1/..., /v1beta/...."
    )

    /// The client went away before its answer (499, nginx's code for it: only ever logged).
    public static let clientGone = GeminiErrorResponse(HTTPResponseStatus(statusCode: 499), "CANCELLED", "The client went away.")

    /// A body that fell silent for longer than `--request-body-timeout`.
    public static func bodyStalled(after timeout: Duration) -> GeminiErrorResponse {
        GeminiErrorResponse(.requestTimeout, "DEADLINE_EXCEEDED", "The request's body stalled: nothing of it arrived for \(timeout).")
    }

    public static let malformedBody = GeminiErrorResponse(.badRequest, "INVALID_ARGUMENT", "Malformed HTTP request body.")
}
