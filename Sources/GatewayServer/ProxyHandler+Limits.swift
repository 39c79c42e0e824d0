import Foundation
import GatewayCore
import GatewayHTTP

// MARK: - The client's own limits

extension ProxyHandler {
    /// Judges the request by its client's limits (``ClientLimitStore``) before any pair is
    /// picked: nil when it may go on (counted, and charged with its tokens and cost when its row
    /// is finished), else the refusal, with its row (outcome `client_limit`, the limit as error
    /// reason) and its metric. No key or upstream is touched either way.
    @inline(never)
    func checkLimits(_ exchange: Exchange) -> ProxyAnswer? {
        guard let id = exchange.client.id else { return nil }
        let model = exchange.model == ModelName.unknown ? nil : exchange.model
        guard let refusal = limiter.admit(client: id, model: model, now: Date().timeIntervalSince1970) else {
            exchange.recorder.charges(limiter, client: id)
            return nil
        }
        let name = exchange.client.name
        metrics.clientLimitRefused(client: name, limit: refusal.limit)
        let error = GeminiErrorResponse.clientLimit(refusal, client: name, model: model, limits: limiter.limits(client: id))
        return fail(exchange.recorder, error, outcome: .clientLimit, reason: refusal.limit.rawValue)
    }
}
