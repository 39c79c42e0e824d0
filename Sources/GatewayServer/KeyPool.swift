import Foundation
import GatewayCore
import GatewayStore
import Synchronization

/// The scheduler behind a lock, shared by every request. Picking and recording take the lock
/// for a few microseconds; what must be persisted is queued for the `PoolSync` service, never
/// written on the request path.
public final class KeyPool: Sendable {
    /// The scheduler, and the keys it soft-deleted whose deletion is not written yet: a reload
    /// from the database in that window must not bring them back.
    private struct State {
        var scheduler: Scheduler
        var unwrittenDeletions: Set<Int64> = []
    }

    private let state: Mutex<State>
    let changes = BatchQueue<StateChange>(capacity: 100_000)
    /// Rung when a queued change is one other instances sharing the store must hear of
    /// (``StateChange/isShared``): ``PoolSync`` then writes it at once rather than at its next tick.
    let sharedChangeQueued = Doorbell()
    let policy: CooldownPolicy

    public init(policy: CooldownPolicy) {
        self.policy = policy
        var scheduler = Scheduler()
        scheduler.upstreamFailureMemory = policy.upstreamFailureMemory
        self.state = Mutex(State(scheduler: scheduler))
    }

    /// A healthy (key, upstream) pair for `model`, excluding pairs already `tried`.
    public func pick(model: String, tried: Set<PairID>, now: Date = Date()) -> PickResult {
        state.withLock { $0.scheduler.pick(model: model, now: now, tried: tried) }
    }

    /// The pair for a request bound to one key (and maybe one upstream): see
    /// ``Scheduler/pick(key:upstream:model:now:tried:)``.
    public func pick(key: Int64, upstream: Int64?, model: String, tried: Set<PairID>, now: Date = Date()) -> PickResult {
        state.withLock { $0.scheduler.pick(key: key, upstream: upstream, model: model, now: now, tried: tried) }
    }

    /// When the first key a request for `model` may wait for comes back (see
    /// ``Scheduler/waitableReturn(model:now:)``); O(number of keys), asked only when every key is cooling.
    func waitableReturn(model: String, now: Date = Date()) -> Date? {
        state.withLock { $0.scheduler.waitableReturn(model: model, now: now) }
    }

    /// The same for a request bound to one key.
    func waitableReturn(key: Int64, model: String, now: Date = Date()) -> Date? {
        state.withLock { $0.scheduler.waitableReturn(key: key, model: model, now: now) }
    }

    /// Applies an attempt's verdict and queues the resulting state changes for writing.
    public func record(_ verdict: Verdict, pair: PairID, model: String, now: Date = Date()) {
        let changes = state.withLock { state in
            let changes = state.scheduler.record(verdict, key: pair.key, upstream: pair.upstream, model: model, now: now, policy: policy)
            for case .keyDeleted(let id, _, _) in changes { state.unwrittenDeletions.insert(id) }
            return changes
        }
        for change in changes { self.changes.enqueue(change) }
        if changes.contains(where: \.isShared) { sharedChangeQueued.ring() }
    }

    /// Folds in what other gateway instances recorded (a shared store): nothing is queued for
    /// writing, the instance that saw it wrote it.
    func absorb(_ changes: [StateChange], now: Date = Date()) {
        guard !changes.isEmpty else { return }
        state.withLock { $0.scheduler.absorb(changes, now: now) }
    }

    /// Counts for readiness and status.
    public func snapshot(now: Date = Date()) -> PoolSnapshot {
        state.withLock { $0.scheduler.snapshot(now: now) }
    }

    /// Every active key's fingerprint and cooldown, for the per-key metrics. O(number of keys)
    /// under the pool's lock: for a scrape, not the request path.
    public func keyStates(now: Date = Date()) -> [KeyState] {
        state.withLock { $0.scheduler.keyStates(now: now) }
    }

    /// Every upstream with its cooldown.
    public func upstreamStates(now: Date = Date()) -> [UpstreamState] {
        state.withLock { $0.scheduler.upstreamStates(now: now) }
    }

    /// Last-use times changed since the last call.
    func takeLastUsed() -> LastUsedBatch {
        state.withLock { $0.scheduler.takeLastUsed() }
    }

    /// Gives back last-use times that could not be written: the next ``takeLastUsed()`` has them.
    func restoreLastUsed(_ batch: LastUsedBatch) {
        state.withLock { $0.scheduler.restoreLastUsed(batch) }
    }

    /// Called once `changes` are in the database: their deletions no longer need guarding.
    func written(_ changes: [StateChange]) {
        state.withLock { state in
            for case .keyDeleted(let id, _, _) in changes { state.unwrittenDeletions.remove(id) }
        }
    }

    /// Loads the pool from the database. Cooldowns held only in memory are kept (they may not be
    /// written yet), except for keys an operator changed, where the database is authoritative.
    func load(_ loaded: PoolState) {
        state.withLock { state in
            let keys = state.unwrittenDeletions.isEmpty
                ? loaded.keys : loaded.keys.filter { !state.unwrittenDeletions.contains($0.id) }
            state.scheduler.replace(
                keys: keys, upstreams: loaded.upstreams, cooldowns: loaded.cooldowns,
                projectCooldowns: loaded.projectCooldowns, keepingInMemoryCooldowns: true
            )
            if !loaded.keysChangedByOperator.isEmpty {
                state.scheduler.resetCooldowns(
                    of: loaded.keysChangedByOperator,
                    to: loaded.cooldowns.filter { loaded.keysChangedByOperator.contains($0.keyID) }
                )
            }
        }
    }
}
