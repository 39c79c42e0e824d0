import Foundation

// MARK: - PoolSnapshot

/// Counts for readiness checks and metrics, from ``Scheduler/snapshot(now:)``.
public struct PoolSnapshot: Sendable, Hashable {
    /// Keys in the pool (active: not deleted, not disabled).
    public var activeKeys: Int
    /// Active keys with at least one cooldown in force (for some model, or project-wide).
    public var coolingKeys: Int
    /// Active keys cooling for every model (`"*"`), so usable for none.
    public var unusableKeys: Int
    /// Upstreams in the pool (enabled).
    public var upstreams: Int
    /// Upstreams not cooling.
    public var healthyUpstreams: Int

    /// Counts, as computed by the scheduler.
    public init(activeKeys: Int, coolingKeys: Int, unusableKeys: Int, upstreams: Int, healthyUpstreams: Int) {
        self.activeKeys = activeKeys
        self.coolingKeys = coolingKeys
        self.unusableKeys = unusableKeys
        self.upstreams = upstreams
        self.healthyUpstreams = healthyUpstreams
    }

    /// Whether some request could be served now: a key usable for at least one model and an
    /// upstream (a cooling upstream still counts: with all upstreams cooling the scheduler uses
    /// the one whose cooldown ends first).
    public var hasUsablePair: Bool {
        activeKeys > unusableKeys && upstreams > 0
    }
}

// MARK: - KeyState

/// One active key as the per-key metrics show it, from ``Scheduler/keyStates(now:)``: the
/// fingerprint, never the secret.
public struct KeyState: Sendable, Hashable {
    /// What `keys list` shows.
    public var fingerprint: String
    /// The end of the latest cooldown in force (its own or its project's, for any model); nil
    /// when the key is not cooling.
    public var coolingUntil: Date?
    /// Cooling for every model (`"*"`), so usable for none.
    public var unusable: Bool
}

// MARK: - UpstreamState

/// One upstream with its cooldown, from ``Scheduler/upstreamStates(now:)``.
public struct UpstreamState: Sendable, Hashable {
    /// The database id.
    public var id: Int64
    /// The base URL as imported (it may carry credentials: strip them before showing it).
    public var baseURL: String
    /// When its cooldown ends; nil when it is healthy.
    public var coolingUntil: Date?
}
