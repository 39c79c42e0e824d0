import Foundation
import GatewayCore
import NIOCore
import NIOHTTP1

/// A whole answer of the gateway's own: the probes, the operator pages, the 404 of unknown paths.
struct LocalAnswer: Sendable {
    var head: HTTPResponseHead
    var body: ByteBuffer

    init(head: HTTPResponseHead, body: ByteBuffer) {
        self.head = head
        self.body = body
    }

    init(_ status: HTTPResponseStatus, contentType: String, body: ByteBuffer, headers: HTTPHeaders = [:]) {
        var headers = headers
        headers.add(name: "Content-Type", value: contentType)
        self.init(head: HTTPResponseHead(version: .http1_1, status: status, headers: headers), body: body)
    }
}

/// Answers the requests the proxy does not take (``GatewayChannelHandler`` proxies everything
/// under `/v1…`, `/v1beta…` and Google's `/upload/` and `/download/` prefixes), without a
/// router: the probes and the operator pages by exact path, anything else 404. A `HEAD` gets the
/// head its `GET` would get (the channel handler leaves the body out).
struct LocalRoutes: Sendable {
    /// The largest request body a local route takes (and drops): a probe or a scraper sends
    /// none. A larger one, declared or counted as it arrives, is answered 413 and the connection
    /// closes (``GeminiErrorResponse/localBodyTooLarge``): nobody can keep a connection busy
    /// streaming a body to `/healthz`.
    static let maximumBodyBytes = 64 << 10

    let metrics: GatewayMetrics
    let pool: KeyPool
    /// Guards the operator pages.
    let admin: AdminAuthenticator
    /// `/status`, the operator's HTML page.
    let status: StatusPage
    /// Whether the database file is still there (`/readyz`).
    let database: DatabaseWatcher

    func answer(to head: HTTPRequestHead) async -> LocalAnswer {
        switch ForwardedTarget(target: head.uri).path {
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
