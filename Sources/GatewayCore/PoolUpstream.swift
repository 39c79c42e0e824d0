import Foundation

// MARK: - PoolUpstream

/// An enabled upstream base URL (Google itself or a relay) as the scheduler sees it.
public struct PoolUpstream: Sendable, Hashable {
    /// The database id.
    public var id: Int64
    /// The base URL requests are sent to (path and query are appended as the client sent them).
    public var baseURL: String
    /// The upstream is cooling until then (after failures or a blocked egress).
    public var cooldownUntil: Date?
    /// Consecutive failures since the last success (drives the backoff).
    public var failureStreak: Int
    /// When the upstream last failed (also set by transient 5xx answers).
    public var lastFailureAt: Date?
    /// When the upstream was last picked.
    public var lastUsedAt: Date?

    /// An upstream as loaded from the database.
    public init(
        id: Int64,
        baseURL: String,
        cooldownUntil: Date? = nil,
        failureStreak: Int = 0,
        lastFailureAt: Date? = nil,
        lastUsedAt: Date? = nil
    ) {
        self.id = id
        self.baseURL = baseURL
        self.cooldownUntil = cooldownUntil
        self.failureStreak = failureStreak
        self.lastFailureAt = lastFailureAt
        self.lastUsedAt = lastUsedAt
    }

    /// Whether the upstream is cooling at `now`.
    public func isCooling(at now: Date) -> Bool {
        guard let cooldownUntil else { return false }
        return cooldownUntil > now
    }
}
