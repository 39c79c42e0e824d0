import GatewayCore
import GatewayHTTP
import NIOHTTP1

/// The gateway's answers as the HTTP layer asks for them (``Responder``): proxied requests by
/// ``ProxyHandler``, every other path by ``LocalRoutes``.
struct GatewayResponder: Responder {
    let proxy: ProxyHandler
    let local: LocalRoutes

    var maximumBodyBytes: Int { proxy.configuration.maximumBodyBytes }
    var maximumInFlight: Int { proxy.configuration.maximumInFlight }
    var requestBodyTimeout: Duration { proxy.configuration.requestBodyTimeout }

    func admit(_ head: HTTPRequestHead) -> (any Sendable)? {
        proxy.admit(head)
    }

    func respond(to request: IncomingRequest) async -> HTTPAnswer {
        await proxy.handle(Self.proxyRequest(request))
    }

    func refuse(_ head: HTTPRequestHead, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String?) -> HTTPAnswer {
        proxy.refuse(head, error, outcome: outcome, reason: reason)
    }

    func overloaded(_ request: IncomingRequest) -> HTTPAnswer {
        proxy.overloaded(Self.proxyRequest(request))
    }

    func answerLocal(to head: HTTPRequestHead) async -> LocalAnswer {
        await local.answer(to: head)
    }

    /// The request with the admission ``admit(_:)`` made for it (the handler hands back what
    /// this responder gave it).
    private static func proxyRequest(_ request: IncomingRequest) -> ProxyRequest {
        guard let admission = request.admission as? ProxyHandler.Admission else {
            preconditionFailure("the connection handler hands back the admission GatewayResponder.admit made")
        }
        return ProxyRequest(head: request.head, admission: admission, body: request.body)
    }
}
