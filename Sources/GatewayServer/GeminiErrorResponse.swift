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
    func answer() -> (HTTPResponseHead, ByteBuffer) {
        var headers = self.headers
        headers.add(name: "Content-Type", value: Self.contentType)
        return (HTTPResponseHead(version: .http1_1, status: status, headers: headers), envelope())
    }

    /// The same, as the answer of a local route.
    var localAnswer: LocalAnswer {
        let (head, body) = answer()
        return LocalAnswer(head: head, body: body)
    }

    private static let contentType = "application/json; charset=UTF-8"

    /// `{"error":{"code":...,"message":"...","status":"..."}}`, written by Core's Codable
    /// ``GoogleError`` (the type the upstream's envelopes are read into).
    private func envelope() -> ByteBuffer {
        ByteBuffer(bytes: GoogleError(code: Int(status.code), message: message, status: googleStatus).encodedEnvelope())
    }

    // MARK: - The gateway's own errors

    static let unauthenticated = GeminiErrorResponse(
        .unauthorized, "UNAUTHENTICATED",
        "Missing or invalid gateway token: send it as the x-goog-api-key header, the key query parameter, or Authorization: Bearer."
    )

    static func tooLarge(limit: Int) -> GeminiErrorResponse {
        GeminiErrorResponse(.payloadTooLarge, "INVALID_ARGUMENT", "Request payload size exceeds the gateway's limit: \(limit) bytes.")
    }

    /// A body over ``LocalRoutes/maximumBodyBytes`` sent to a path the gateway answers itself.
    static let localBodyTooLarge = GeminiErrorResponse(
        .payloadTooLarge, "INVALID_ARGUMENT",
        "Request body too large for this path: the gateway's own routes (/healthz, /readyz, /metrics, /status) take no body, at most \(LocalRoutes.maximumBodyBytes) bytes. Gemini requests go to /v1/..., /v1beta/...."
    )

    static let noKeys = GeminiErrorResponse(
        .serviceUnavailable, "UNAVAILABLE",
        "The gateway has no active API key. Add keys with 'gemini-gateway import --keys api_keys.txt' (or restore one with 'gemini-gateway keys restore')."
    )

    static let noUpstreams = GeminiErrorResponse(
        .serviceUnavailable, "UNAVAILABLE",
        "The gateway has no enabled upstream. Add one with 'gemini-gateway import --upstreams proxy_urls.txt' or 'gemini-gateway upstreams add URL'."
    )

    static func allKeysCooling(model: String, retryAfter seconds: Int) -> GeminiErrorResponse {
        let headers: HTTPHeaders = ["Retry-After": String(seconds)]
        return GeminiErrorResponse(
            .tooManyRequests, "RESOURCE_EXHAUSTED",
            "Every API key is rate limited for \(model). Retry in \(seconds)s.", headers: headers
        )
    }

    static func keysRefused(_ reason: String) -> GeminiErrorResponse {
        GeminiErrorResponse(
            .serviceUnavailable, "UNAVAILABLE",
            "Google refused every API key the gateway tried (last: \(reason)); such keys are set aside. See 'gemini-gateway keys list'."
        )
    }

    /// The gateway failed in its own code (its log says how); no upstream or key is at fault.
    static let internalError = GeminiErrorResponse(
        .internalServerError, "INTERNAL", "The gateway failed to handle the request; its log has the details. No upstream or key was at fault."
    )

    static func upstreamsFailed(_ detail: String) -> GeminiErrorResponse {
        GeminiErrorResponse(.badGateway, "UNAVAILABLE", "No upstream answered: \(detail)")
    }

    /// Upstreams answered the request with a 4xx page of their own, not Google's, and none took it.
    static func refusedByRelay(status: Int) -> GeminiErrorResponse {
        let googleStatus = switch status {
        case 401: "UNAUTHENTICATED"
        case 403: "PERMISSION_DENIED"
        case 404: "NOT_FOUND"
        default: "INVALID_ARGUMENT"
        }
        return GeminiErrorResponse(
            HTTPResponseStatus(statusCode: status), googleStatus,
            "The upstream refused the request with HTTP \(status) and a page of its own, not Google's: the request may be malformed (its path, headers or size)."
        )
    }

    /// The gateway is short of its own resources (descriptors, memory) or of room for another
    /// request: nothing upstream is at fault, and the client may come back shortly.
    static func gatewayBusy(retryAfter seconds: Int) -> GeminiErrorResponse {
        let headers: HTTPHeaders = ["Retry-After": String(seconds)]
        return GeminiErrorResponse(
            .serviceUnavailable, "UNAVAILABLE", "The gateway is overloaded. Retry in \(seconds)s.", headers: headers
        )
    }

    static func resourceKeyUnavailable(_ name: String) -> GeminiErrorResponse {
        GeminiErrorResponse(
            .conflict, "FAILED_PRECONDITION",
            "\(name) belongs to the project of a gateway key that is disabled or deleted; an operator can bring it back with 'gemini-gateway keys restore'."
        )
    }

    static func resourceUpstreamUnavailable(_ name: String) -> GeminiErrorResponse {
        GeminiErrorResponse(
            .conflict, "FAILED_PRECONDITION",
            "The upload session \(name) was started through an upstream that is now disabled; start the upload again."
        )
    }

    static func resourcesOfDifferentKeys(_ first: String, _ second: String) -> GeminiErrorResponse {
        GeminiErrorResponse(
            .badRequest, "INVALID_ARGUMENT",
            "\(first) and \(second) were created with different API keys of the gateway (different Google projects); one request can only use resources of one project."
        )
    }

    /// The client went away before its answer (499, nginx's code for it: only ever logged).
    static let clientGone = GeminiErrorResponse(HTTPResponseStatus(statusCode: 499), "CANCELLED", "The client went away.")

    /// A body that fell silent for longer than `--request-body-timeout`.
    static func bodyStalled(after timeout: Duration) -> GeminiErrorResponse {
        GeminiErrorResponse(.requestTimeout, "DEADLINE_EXCEEDED", "The request's body stalled: nothing of it arrived for \(timeout).")
    }

    static let malformedBody = GeminiErrorResponse(.badRequest, "INVALID_ARGUMENT", "Malformed HTTP request body.")

    static let notFound = GeminiErrorResponse(
        .notFound, "NOT_FOUND", "Unknown path: the gateway serves /v1/..., /v1beta/..., /healthz, /readyz and /metrics."
    )
}
