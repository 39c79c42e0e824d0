import Foundation
import GatewayCore
import HTTPTypes
import Hummingbird
import NIOCore

/// Dispatches the requests the proxy does not take (``ProxyChannelHandler`` serves everything
/// under `/v1…`, `/v1beta…` and Google's `/upload/` and `/download/` prefixes) without a router:
/// the probes and the operator pages by exact path, anything else 404.
struct GatewayResponder: HTTPResponder {
    typealias Context = BasicRequestContext

    let metrics: GatewayMetrics
    let pool: KeyPool
    /// Guards the operator pages.
    let admin: AdminAuthenticator
    /// `/status`, the operator's HTML page.
    let status: StatusPage
    /// Whether the database file is still there (`/readyz`).
    let database: DatabaseWatcher

    /// A `HEAD` gets the head its `GET` would get: SwiftNIO's encoder in this pipeline frames a
    /// response by its status and headers only (``GatewayHTTPChannel``), so the body is left out here.
    func respond(to request: Request, context: Context) async throws -> Response {
        let response = try await route(request)
        return request.method == .head ? response.createHeadResponse() : response
    }

    private func route(_ request: Request) async throws -> Response {
        let path = request.uri.path
        switch path {
        case "/healthz":
            return Self.json(.ok, #"{"status":"ok"}"#)
        case "/readyz":
            let snapshot = pool.snapshot()
            // Not ready without its database file either: the rows it writes would be lost.
            let problem = database.problem
            let ready = snapshot.hasUsablePair && problem == nil
            let databaseField = problem.map { #","database_problem":"# + Self.jsonString($0) } ?? ""
            let body = #"{"ready":\#(ready),"active_keys":\#(snapshot.activeKeys),"cooling_keys":\#(snapshot.coolingKeys),"upstreams":\#(snapshot.upstreams),"healthy_upstreams":\#(snapshot.healthyUpstreams),"database_ok":\#(problem == nil)\#(databaseField)}"#
            return Self.json(ready ? .ok : .serviceUnavailable, body)
        case "/status":
            let decision = admin.check(request.headers)
            guard decision == .allowed else { return AdminAuthenticator.refusal(decision) }
            return await status.response(to: request)
        case "/metrics":
            return await metrics.response(to: request, admin: admin)
        default:
            return GeminiErrorResponse.notFound.response()
        }
    }

    /// `text` as a JSON string literal (a path may hold quotes or backslashes).
    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}

