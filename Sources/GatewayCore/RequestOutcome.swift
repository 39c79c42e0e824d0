// MARK: - RequestOutcome

/// How a client request ended: `requests.outcome`, the `outcome` label of
/// `gemini_gateway_requests_total` and of the request's log line. The raw values are the words
/// stored since migration 0001; never rename one (the views of migrations 0002 and 0005 match
/// them as text).
public enum RequestOutcome: String, Sendable, Hashable, Codable, CaseIterable {
    /// The answer went to the client whole.
    case success
    /// The request is at fault: Google refused it (any 4xx in its envelope that blames no key),
    /// a relay refused it, it named resources of two keys, or its body was malformed or stalled.
    case clientError = "client_error"
    /// No valid gateway token.
    case unauthorized
    /// A body over `--max-body-bytes`.
    case tooLarge = "too_large"
    /// Every key is cooling for the model, or the last try was answered 429.
    case throttled
    /// No active key, no enabled upstream, or the gateway itself had no room (`MAX_IN_FLIGHT`,
    /// `LOCAL_RESOURCES`).
    case noCapacity = "no_capacity"
    /// The upstreams failed (transport failures, relays' own pages, Google's 5xx, every upstream
    /// blocked).
    case upstreamError = "upstream_error"
    /// Google refused every key tried.
    case keyError = "key_error"
    /// The gateway failed in its own code during a try (error reason `INTERNAL_ERROR`; answered
    /// 500), or the row was finished without saying how (what a new row holds until then).
    case gatewayError = "gateway_error"
    /// The client went away before its answer was complete (logged with status 499).
    case cancelled
    /// The answer broke off after its first byte (the upstream failed, or sent an error event).
    case truncated
    /// A stream the gateway stopped in (a crash, `kill -9`): made at the next start from the
    /// stream's last snapshot in `streams_in_flight` (migration 0005).
    case interrupted
    /// Refused by one of the client's own limits before a pair was picked (migration 0007): 429
    /// over a rate, token, money or concurrency limit, 403 for a model it may not use, 401 once
    /// its token expired. Which limit is the row's error reason (``ClientLimit``'s raw value).
    case clientLimit = "client_limit"

    /// The column of `request_facts` (and of `daily_usage`) that counts a request with this
    /// outcome, besides `requests` and, for every outcome but ``success``, `errors`.
    ///
    /// Mirrors `request_facts` as migration 0007 defines it (`LogBindingTests` holds the Swift
    /// fold of the daily totals to the SQL views' for every outcome). The views sort by text and
    /// put every word they do not name into `upstream_errors`: a case added here must be placed
    /// in a category that agrees with them, or come with a migration that redefines the view.
    public var category: Category {
        switch self {
        case .success: .successful
        case .clientError, .unauthorized, .tooLarge: .clientErrors
        case .throttled: .throttled
        case .noCapacity: .noCapacity
        case .upstreamError, .keyError, .gatewayError: .upstreamErrors
        case .cancelled: .cancelled
        case .truncated, .interrupted: .truncated
        case .clientLimit: .clientLimited
        }
    }

    /// The kinds of outcome the usage reports count, one column each.
    public enum Category: Sendable, Hashable, CaseIterable {
        case successful, clientErrors, throttled, noCapacity, upstreamErrors, cancelled, truncated, clientLimited
    }
}

// MARK: - UsageStatus

/// What a request's token counts are worth: `requests.usage_status`. The raw values are the
/// words stored since migration 0001.
public enum UsageStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// The answer's (last) `usageMetadata` was read.
    case complete
    /// A generate call that succeeded without `usageMetadata`.
    case missing
    /// The answer broke off (or the client left): the counts are the last running total seen.
    case truncated
    /// A call that carries no usage (countTokens, embeddings, model lists, errors): 0 tokens.
    case none

    /// The status of a generate call's counts (`expectsUsage`), or ``none`` for a call that
    /// carries none: ``truncated`` if the answer broke off, else ``complete`` if usage was seen,
    /// else ``missing``.
    public static func of(expectsUsage: Bool, sawUsage: Bool, truncated: Bool) -> UsageStatus {
        guard expectsUsage else { return .none }
        if truncated { return .truncated }
        return sawUsage ? .complete : .missing
    }
}
