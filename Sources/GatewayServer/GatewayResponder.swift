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

    func admit(_ head: HTTPRequestHead) -> ProxyHandler.Admission? {
        proxy.admit(head)
    }

    func respond(to request: ProxyRequest) async -> ProxyAnswer {
        await proxy.handle(request)
    }

    func refuse(_ head: HTTPRequestHead, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String?) -> ProxyAnswer {
        proxy.refuse(head, error, outcome: outcome, reason: reason)
    }

    func overloaded(_ request: ProxyRequest) -> ProxyAnswer {
        proxy.overloaded(request)
    }

    func answerLocal(to head: HTTPRequestHead) async -> LocalAnswer {
        await local.answer(to: head)
    }
}
