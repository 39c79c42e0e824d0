import GatewayCore
import GatewayHTTP
import NIOHTTP1

// MARK: - The proxy's own errors, in Gemini's envelope (``GeminiErrorResponse``)

extension GeminiErrorResponse {
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

    static let notFound = GeminiErrorResponse(
        .notFound, "NOT_FOUND", "Unknown path: the gateway serves /v1/..., /v1beta/..., /healthz, /readyz and /metrics."
    )
}
