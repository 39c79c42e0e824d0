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
