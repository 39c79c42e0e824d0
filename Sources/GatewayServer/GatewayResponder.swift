import Foundation
import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// Dispatches every request without a router: the probes by exact path, everything under
/// `/v1…`, `/v1beta…` (and Google's `/upload/` and `/download/` prefixes) to the proxy, anything else 404.
struct GatewayResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let proxy: ProxyHandler
    let pool: KeyPool
    /// Guards the operator pages.
    let admin: AdminAuthenticator
    /// `/status`, the operator's HTML page.
    let status: StatusPage

    func respond(to request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        switch path {
        case "/healthz":
            return Self.json(.ok, #"{"status":"ok"}"#)
        case "/readyz":
            let snapshot = pool.snapshot()
            let body = #"{"ready":\#(snapshot.hasUsablePair),"active_keys":\#(snapshot.activeKeys),"cooling_keys":\#(snapshot.coolingKeys),"upstreams":\#(snapshot.upstreams),"healthy_upstreams":\#(snapshot.healthyUpstreams)}"#
            return Self.json(snapshot.hasUsablePair ? .ok : .serviceUnavailable, body)
        case "/status":
            let decision = admin.check(request.headers)
            guard decision == .allowed else { return AdminAuthenticator.refusal(decision) }
            return await status.response(to: request)
        case "/metrics":
            return await proxy.metrics.response(to: request, admin: admin)
        default:
            if Self.isProxied(path) {
                return try await proxy.handle(request)
            }
            return GeminiErrorResponse.notFound.response()
        }
    }

    static func isProxied(_ path: String) -> Bool {
        for prefix in ["/v1/", "/v1beta/", "/v1alpha/", "/upload/v1beta/", "/upload/v1/", "/download/v1beta/", "/download/v1/"] where path.hasPrefix(prefix) {
            return true
        }
        return false
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}

