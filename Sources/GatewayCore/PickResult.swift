import Foundation

// MARK: - PairID

/// A (key, upstream) combination, used to exclude pairs already tried for a request.
public struct PairID: Sendable, Hashable {
    /// The key's id.
    public var key: Int64
    /// The upstream's id.
    public var upstream: Int64

    /// A pair of ids.
    public init(key: Int64, upstream: Int64) {
        self.key = key
        self.upstream = upstream
    }
}

// MARK: - PickResult

/// The answer of ``Scheduler/pick(model:now:tried:)``.
public enum PickResult: Sendable, Hashable {
    /// Use this key with this upstream (both already marked used).
    case pair(PoolKey, PoolUpstream)
    /// Keys exist but every one is cooling for the model; the soonest becomes usable at `until`
    /// (answer 429 with `Retry-After`).
    case allKeysCooling(until: Date)
    /// The pool has no active key (answer 503: import or restore keys).
    case noKeys
    /// The pool has no enabled upstream (answer 503: import or enable upstreams).
    case noUpstreams
    /// Usable keys exist but every usable pair was already tried for this request.
    case exhausted

    /// The pair's ids, when this is a pair.
    public var pairID: PairID? {
        if case .pair(let key, let upstream) = self { return PairID(key: key.id, upstream: upstream.id) }
        return nil
    }
}
