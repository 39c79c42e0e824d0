import Foundation
import Synchronization

/// What a running gateway can change without a restart (`serve` applies it on SIGHUP):
/// the tokens, the openness of `/metrics`, and how hard a request is retried. Everything else
/// (addresses, the database, timeouts, the transport) takes effect at the next start.
public struct ReloadableSettings: Sendable, Equatable {
    public var proxyKey: String?
    public var adminToken: String?
    public var metricsPublic: Bool
    public var maximumAttempts: Int
    public var retryBudget: Duration

    public init(_ configuration: GatewayConfiguration) {
        proxyKey = configuration.proxyKey
        adminToken = configuration.adminToken
        metricsPublic = configuration.metricsPublic
        maximumAttempts = configuration.maximumAttempts
        retryBudget = configuration.retryBudget
    }

    /// The names of the settings that differ from `other`, for the log (never their values).
    public func changes(from other: ReloadableSettings) -> [String] {
        var names: [String] = []
        if proxyKey != other.proxyKey { names.append("proxy-key") }
        if adminToken != other.adminToken { names.append("admin-token") }
        if metricsPublic != other.metricsPublic { names.append("metrics-public") }
        if maximumAttempts != other.maximumAttempts { names.append("max-attempts") }
        if retryBudget != other.retryBudget { names.append("retry-budget") }
        return names
    }
}

/// Tries per request and the time after which no new try starts, read once per request.
final class RetryLimits: Sendable {
    private let state: Mutex<(attempts: Int, budget: Duration)>

    init(attempts: Int, budget: Duration) {
        state = Mutex((attempts, budget))
    }

    var current: (attempts: Int, budget: Duration) { state.withLock { $0 } }

    func update(attempts: Int, budget: Duration) {
        state.withLock { $0 = (attempts, budget) }
    }
}
