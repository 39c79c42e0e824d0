import Foundation

// MARK: - CooldownPolicy

/// How long keys and upstreams cool after a bad outcome: tunable durations (seconds) and the pure
/// functions that turn a verdict into an `until` date.
///
/// "Streak" arguments count consecutive bad outcomes *including the current one* (1 for the
/// first); values below 1 are treated as 1. Backoffs double per step: `base * 2^(streak-1)`,
/// capped at their maximum.
public struct CooldownPolicy: Sendable, Hashable {
    // MARK: Keys

    /// First backoff for a 429 that gives no `RetryInfo` (bare 429s, per-minute without delay).
    public var throttleBackoffBase: TimeInterval = 60
    /// Cap of that backoff, and of any `RetryInfo` delay Google sends.
    public var throttleBackoffMax: TimeInterval = 3600
    /// Cooldown for a model the key's project has no quota for (`limit: 0`).
    public var noQuotaCooldown: TimeInterval = 24 * 3600
    /// Cooldown of a key that is unusable but not dead (403 `SERVICE_DISABLED`), for every model.
    public var keyUnusableCooldown: TimeInterval = 10 * 60
    /// The time zone in which per-day quotas reset at midnight (Google: Pacific time).
    public var quotaResetTimeZone: TimeZone = CooldownPolicy.pacific
    /// Google sometimes answers `API_KEY_INVALID` for a brand-new key. When set, the first such
    /// answer only cools the key for every model this long and makes it a suspect; it is
    /// soft-deleted if it answers `API_KEY_INVALID` again after that cooldown (see
    /// ``Scheduler``). nil (the default) soft-deletes at the first answer.
    public var invalidKeyGrace: TimeInterval?

    // MARK: Upstreams

    /// First backoff of an upstream after a transport failure or a non-Google answer.
    public var upstreamFailureBase: TimeInterval = 2
    /// Cap of that backoff.
    public var upstreamFailureMax: TimeInterval = 5 * 60
    /// Cooldown of an upstream whose egress location Google refuses.
    public var upstreamBlockedCooldown: TimeInterval = 30 * 60
    /// How long an upstream's last failure still ranks it behind the others once its cooldown is over.
    public var upstreamFailureMemory: TimeInterval = 30
    /// When a burst of 429s through one upstream is blamed on it rather than on the keys, and how
    /// long it then cools.
    public var egress = EgressRule()

    /// The defaults described above.
    public init() {}

    /// The default policy.
    public static let standard = CooldownPolicy()

    /// America/Los_Angeles (falls back to a fixed UTC-8 if the zone database is missing).
    public static let pacific: TimeZone =
        TimeZone(identifier: "America/Los_Angeles") ?? TimeZone(secondsFromGMT: -8 * 3600)!

    // MARK: Verdicts

    /// When the *key* stops cooling after `verdict`, or nil when the verdict does not cool the key.
    ///
    /// - Parameter streak: consecutive throttles of the key including this one.
    public func keyCooldownUntil(for verdict: Verdict, now: Date, streak: Int) -> Date? {
        switch verdict {
        case .throttled(let throttle): throttleUntil(throttle, now: now, streak: streak)
        case .keyUnusable: now.addingTimeInterval(keyUnusableCooldown)
        case .success, .keyDead, .upstreamBlocked, .clientError, .transient, .upstreamFailure, .relayRefusal, .localFailure, .cancelled: nil
        }
    }

    /// When a key that just answered `verdict` may be re-checked, or nil when it is to be
    /// soft-deleted at once: only an `API_KEY_INVALID` (not expired, leaked or suspended keys)
    /// with ``invalidKeyGrace`` set to more than 0 earns a re-check.
    public func invalidKeyRecheckAt(for verdict: Verdict, now: Date) -> Date? {
        guard case .keyDead(let reason) = verdict, reason == OutcomeClassifier.Reason.apiKeyInvalid,
              let grace = invalidKeyGrace, grace > 0, grace.isFinite
        else { return nil }
        return now.addingTimeInterval(grace)
    }

    /// The reason stored with the cooldown of a key waiting for its `API_KEY_INVALID` re-check.
    public static let invalidKeyRecheckReason = "API_KEY_INVALID_RECHECK"

    /// When the *upstream* stops cooling after `verdict`, or nil when the verdict does not cool it
    /// (transient 5xx answers only deprioritise an upstream, see ``Scheduler``).
    ///
    /// - Parameter streak: consecutive failures of the upstream including this one.
    public func upstreamCooldownUntil(for verdict: Verdict, now: Date, streak: Int) -> Date? {
        switch verdict {
        case .upstreamBlocked: now.addingTimeInterval(upstreamBlockedCooldown)
        case .upstreamFailure: now.addingTimeInterval(Self.backoff(base: upstreamFailureBase, max: upstreamFailureMax, streak: streak))
        case .success, .throttled, .keyDead, .keyUnusable, .clientError, .transient, .relayRefusal, .localFailure, .cancelled: nil
        }
    }

    /// When a key throttled by `throttle` stops cooling.
    ///
    /// - per-minute: the `RetryInfo` delay (fractional allowed, capped at
    ///   ``throttleBackoffMax``), else the doubling backoff from ``throttleBackoffBase``;
    /// - per-day: the next midnight in ``quotaResetTimeZone`` (any retry delay is ignored: it
    ///   would only earn another 429);
    /// - no quota: ``noQuotaCooldown``.
    public func throttleUntil(_ throttle: Throttle, now: Date, streak: Int) -> Date {
        switch throttle.kind {
        case .perMinute:
            if let delay = throttle.retryDelay, delay.isFinite {
                return now.addingTimeInterval(min(max(delay, 0), throttleBackoffMax))
            }
            return now.addingTimeInterval(Self.backoff(base: throttleBackoffBase, max: throttleBackoffMax, streak: streak))
        case .perDay:
            return Self.nextMidnight(after: now, in: quotaResetTimeZone)
        case .noQuota:
            return now.addingTimeInterval(noQuotaCooldown)
        }
    }

    // MARK: Maths

    /// `base * 2^(streak-1)`, capped at `max`; streaks below 1 count as 1.
    public static func backoff(base: TimeInterval, max maximum: TimeInterval, streak: Int) -> TimeInterval {
        let exponent = Swift.min(Swift.max(streak, 1) - 1, 62)
        return Swift.min(base * pow(2, Double(exponent)), maximum)
    }

    /// The first local midnight strictly after `date` in `timeZone`; correct across DST changes
    /// (the day before is 23 or 25 hours long then).
    public static func nextMidnight(after date: Date, in timeZone: TimeZone) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let startOfDay = calendar.startOfDay(for: date)
        if let next = calendar.date(byAdding: .day, value: 1, to: startOfDay), next > date {
            return next
        }
        return date.addingTimeInterval(24 * 3600)
    }
}
