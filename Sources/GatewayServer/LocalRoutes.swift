import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import NIOCore
import NIOHTTP1

/// Answers the requests the proxy does not take (the connection handler proxies everything
/// under `/v1…`, `/v1beta…` and Google's `/upload/` and `/download/` prefixes: ``ProxiedTarget``),
/// without a router: the probes and the operator pages by exact path, anything else 404. A `HEAD`
/// gets the head its `GET` would get (the connection handler leaves the body out). Their bodies
/// are limited by ``LocalAnswer/maximumRequestBodyBytes``.
struct LocalRoutes: Sendable {
    let metrics: GatewayMetrics
    let pool: KeyPool
    /// Guards the operator pages.
    let admin: AdminAuthenticator
    /// `/status`, the operator's HTML page.
    let status: StatusPage
    /// Whether the store takes the gateway's writes (`/readyz`): the SQLite file is still there,
    /// PostgreSQL is reachable.
    let database: any StoreHealth

    func answer(to head: HTTPRequestHead) async -> LocalAnswer {
        switch ForwardedTarget(target: head.uri).path {
        case "/healthz":
            return Self.json(.ok, #"{"status":"ok"}"#)
        case "/readyz":
            let snapshot = pool.snapshot()
            // Not ready without its database file either: the rows it writes would be lost.
            let problem = database.problem
            let ready = snapshot.hasUsablePair && (problem == nil || !database.problemBlocksReadiness)
            let databaseField = problem.map { #","database_problem":"# + Self.jsonString($0) } ?? ""
            let body = #"{"ready":\#(ready),"active_keys":\#(snapshot.activeKeys),"cooling_keys":\#(snapshot.coolingKeys),"upstreams":\#(snapshot.upstreams),"healthy_upstreams":\#(snapshot.healthyUpstreams),"database_ok":\#(problem == nil)\#(databaseField)}"#
            return Self.json(ready ? .ok : .serviceUnavailable, body)
        case "/status":
            let decision = admin.check(head.headers)
            guard decision == .allowed else { return AdminAuthenticator.refusal(decision) }
            return await status.answer(method: head.method)
        case "/metrics":
            return await metrics.answer(to: head, admin: admin)
        default:
            return GeminiErrorResponse.notFound.localAnswer
        }
    }

    /// `text` as a JSON string literal (a path may hold quotes or backslashes).
    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed, .withoutEscapingSlashes])) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func json(_ status: HTTPResponseStatus, _ text: String) -> LocalAnswer {
        LocalAnswer(status, contentType: "application/json", body: ByteBuffer(string: text))
    }
}
