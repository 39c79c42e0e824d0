import Foundation
import GatewayCore
import GatewayStore
import Synchronization

/// The scheduler behind a lock, shared by every request. Picking and recording take the lock
/// for a few microseconds; what must be persisted is queued for the `PoolSync` service, never
/// written on the request path.
public final class KeyPool: Sendable {
    private let scheduler: Mutex<Scheduler>
    let changes = BatchQueue<StateChange>(capacity: 100_000)
    let policy: CooldownPolicy

    public init(policy: CooldownPolicy) {
        self.policy = policy
        var scheduler = Scheduler()
        scheduler.upstreamFailureMemory = policy.upstreamFailureMemory
        self.scheduler = Mutex(scheduler)
    }

    /// A healthy (key, upstream) pair for `model`, excluding pairs already `tried`.
    public func pick(model: String, tried: Set<PairID>, now: Date = Date()) -> PickResult {
        scheduler.withLock { $0.pick(model: model, now: now, tried: tried) }
    }

    /// Applies an attempt's verdict and queues the resulting state changes for writing.
    public func record(_ verdict: Verdict, pair: PairID, model: String, now: Date = Date()) {
        let changes = scheduler.withLock {
            $0.record(verdict, key: pair.key, upstream: pair.upstream, model: model, now: now, policy: policy)
        }
        for change in changes { self.changes.enqueue(change) }
    }

    /// Counts for readiness and status.
    public func snapshot(now: Date = Date()) -> PoolSnapshot {
        scheduler.withLock { $0.snapshot(now: now) }
    }

    /// Last-use times changed since the last call.
    func takeLastUsed() -> LastUsedBatch {
        scheduler.withLock { $0.takeLastUsed() }
    }

    /// Loads the pool from the database. Cooldowns held only in memory are kept (they may not be
    /// written yet), except for keys an operator changed, where the database is authoritative.
    func load(_ state: PoolState) {
        scheduler.withLock { scheduler in
            scheduler.replace(
                keys: state.keys, upstreams: state.upstreams, cooldowns: state.cooldowns,
                projectCooldowns: state.projectCooldowns, keepingInMemoryCooldowns: true
            )
            if !state.keysChangedByOperator.isEmpty {
                scheduler.resetCooldowns(
                    of: state.keysChangedByOperator,
                    to: state.cooldowns.filter { state.keysChangedByOperator.contains($0.keyID) }
                )
            }
        }
    }
}
