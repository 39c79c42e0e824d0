import Foundation

// MARK: - Verdict

/// What one upstream attempt means for the pool: the rows of the outcome table in DESIGN.md.
///
/// Every case but ``success`` and ``cancelled`` carries a short machine-readable reason for logs
/// (`API_KEY_INVALID`, `KEY_LEAKED`, `RATE_LIMIT_PER_MINUTE`, `NOT_GOOGLE_ENVELOPE`, ...).
public enum Verdict: Sendable, Hashable {
    /// 2xx: key and upstream are fine; failure streaks reset.
    case success
    /// 429 from Google: the key (and, for quota violations, its project) cools for the model.
    case throttled(Throttle)
    /// The key will not work again: soft-delete it (400 `API_KEY_INVALID` incl. expired, 403
    /// leaked, `CONSUMER_SUSPENDED`, `API_KEY_SERVICE_BLOCKED`, 401 `UNAUTHENTICATED`).
    case keyDead(reason: String)
    /// The key cannot be used for now but is not dead (403 `SERVICE_DISABLED`, key restrictions):
    /// cool it for every model for some minutes.
    case keyUnusable(reason: String)
    /// The upstream's egress is refused by Google (400 "User location is not supported"): cool the
    /// upstream, not the key.
    case upstreamBlocked(reason: String)
    /// Any other 4xx with a Google envelope: the request is at fault, nothing is blamed, the
    /// client gets the upstream's answer. The reason is Google's status (`INVALID_ARGUMENT`, ...).
    case clientError(reason: String)
    /// 5xx with a Google envelope: Google had a problem; retry elsewhere, key not blamed, the
    /// upstream is only deprioritised. The reason is Google's status (`UNAVAILABLE`, ...).
    case transient(reason: String)
    /// The upstream (a relay, the network) failed: no Google envelope, connection errors,
    /// timeouts. Cool the upstream with an increasing backoff.
    case upstreamFailure(reason: String)
    /// A 4xx that is not Google's (a relay's or a front end's HTML 400/404/414/431): the relay
    /// may be broken, or the request malformed, and the answer does not say which. Nothing is
    /// charged for it alone (one client's bad requests must not cool every upstream); another
    /// upstream is tried, and the proxy charges this one (as an ``upstreamFailure(reason:)``)
    /// only once Google has answered the same request through another upstream.
    case relayRefusal(reason: String)
    /// The gateway itself could not make the attempt (out of descriptors, buffers or memory):
    /// its own problem, so nothing is blamed and nothing is retried (another try would meet the
    /// same shortage); the client is told to come back shortly.
    case localFailure(reason: String)
    /// The client went away; nothing is blamed.
    case cancelled

    // MARK: Derived

    /// The short machine-readable reason for logs.
    public var reason: String {
        switch self {
        case .success: "OK"
        case .throttled(let throttle): throttle.reason
        case .keyDead(let reason), .keyUnusable(let reason), .upstreamBlocked(let reason),
             .clientError(let reason), .transient(let reason), .upstreamFailure(let reason), .relayRefusal(let reason),
             .localFailure(let reason):
            reason
        case .cancelled: "CANCELLED"
        }
    }

    /// The verdict's name, a low-cardinality label for logs and metrics.
    public var label: String {
        switch self {
        case .success: "success"
        case .throttled: "throttled"
        case .keyDead: "key_dead"
        case .keyUnusable: "key_unusable"
        case .upstreamBlocked: "upstream_blocked"
        case .clientError: "client_error"
        case .transient: "transient"
        case .upstreamFailure: "upstream_failure"
        case .relayRefusal: "relay_refusal"
        case .localFailure: "local_failure"
        case .cancelled: "cancelled"
        }
    }

    /// Whether the proxy loop should try another pair (within its attempt budget) rather than
    /// return this answer to the client.
    public var shouldRetry: Bool {
        switch self {
        case .success, .clientError, .localFailure, .cancelled: false
        case .throttled, .keyDead, .keyUnusable, .upstreamBlocked, .transient, .upstreamFailure, .relayRefusal: true
        }
    }
}

// MARK: - Throttle

/// The details of a 429 that decide how long a key cools.
public struct Throttle: Sendable, Hashable {
    /// Which quota ran out.
    public enum Kind: String, Sendable, Hashable {
        /// A per-minute quota (`quotaId` contains `PerMinute`), any other quota, or a bare 429
        /// without quota details.
        case perMinute
        /// A per-day quota (`quotaId` contains `PerDay`): resets at midnight Pacific time.
        case perDay
        /// The project has no quota at all for the model (`quotaValue` "0", "limit: 0").
        case noQuota
    }

    /// Which quota ran out.
    public var kind: Kind
    /// `RetryInfo.retryDelay` (else the "Please retry in ..." hint of the message), in seconds.
    public var retryDelay: Double?
    /// The `quotaId` of the violation that decided ``kind``; nil for a bare 429.
    public var quotaID: String?
    /// `quotaDimensions.model` of that violation (informational: the cooldown uses the model of the
    /// request, which may be an alias of this one).
    public var model: String?

    /// A throttle.
    public init(kind: Kind, retryDelay: Double? = nil, quotaID: String? = nil, model: String? = nil) {
        self.kind = kind
        self.retryDelay = retryDelay
        self.quotaID = quotaID
        self.model = model
    }

    /// `RATE_LIMIT_PER_MINUTE`, `RATE_LIMIT` (bare 429, or a quota that is neither per-minute nor
    /// per-day), `QUOTA_PER_DAY` or `NO_QUOTA`.
    public var reason: String {
        switch kind {
        case .perDay: return "QUOTA_PER_DAY"
        case .noQuota: return "NO_QUOTA"
        case .perMinute:
            if let quotaID, quotaID.range(of: "PerMinute", options: .caseInsensitive) != nil {
                return "RATE_LIMIT_PER_MINUTE"
            }
            return "RATE_LIMIT"
        }
    }

    /// Whether the throttle is about the project's quota and so applies to every key of the same
    /// project: true for per-day and no-quota throttles and for any throttle naming a quota. A bare
    /// 429 ("Resource has been exhausted") names none (it is often shared capacity rather than the
    /// project's quota), so it cools only the key that got it.
    public var isProjectWide: Bool {
        kind != .perMinute || quotaID != nil
    }
}
