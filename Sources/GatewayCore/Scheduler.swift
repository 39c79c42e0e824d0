import Foundation

// MARK: - Scheduler

/// The in-memory pool of keys and upstreams that chooses a (key, upstream) pair per attempt and
/// applies the verdict of each attempt.
///
/// A value type and not thread-safe by itself: the server keeps one in a `Mutex` and calls its
/// mutating methods inside `withLock`. It never touches SQLite; ``record(_:key:upstream:model:now:policy:)``
/// returns the ``StateChange``s to write behind, ``takeLastUsed()`` the usage times to write in
/// batches, and ``replace(keys:upstreams:cooldowns:projectCooldowns:keepingInMemoryCooldowns:)``
/// applies a reload from the database.
///
/// ## Choosing
///
/// Keys live in an indexed binary heap ordered by (last throttled, last used, pick sequence, id),
/// never-throttled and never-used first. A pick takes the root if it is healthy for the model;
/// otherwise it walks the heap best-first (a small frontier of heap positions ordered by rank),
/// skipping cooling keys without moving them, and stops at the first healthy key that has an
/// untried upstream. The chosen key gets `lastUsedAt = now` and sinks in O(log n). Throttled keys
/// get a recent `lastThrottledAt` and so sink behind every non-throttled key, which keeps the walk
/// short. When a pick still has to skip many cooling keys (``viewThreshold``), the model gets its
/// own view of the heap in which cooling keys are parked until their cooldown ends, so each is
/// skipped once per cooldown instead of on every pick; a view is dropped once nothing is parked.
///
/// Upstreams are few and scanned linearly: healthy ones by (last failure, last used); when every
/// upstream is cooling, the one whose cooldown ends first (a single-upstream setup keeps working
/// after one connection reset).
///
/// ## Cooldowns
///
/// A key is cooling for model `m` while any of these is in force: its own cooldown for `m` or for
/// `"*"`, or a cooldown of its project for `m` or `"*"`. Expired cooldowns are dropped lazily (when
/// the key is picked or gets another cooldown).
public struct Scheduler: Sendable {
    // MARK: Storage

    struct CooldownEntry: Sendable, Hashable {
        var model: String
        var until: Double
        var reason: String
        var quotaID: String?
    }

    struct KeySlot: Sendable {
        var key: PoolKey
        var rank: KeyRank
        var project: Int32
        var cooldowns: [CooldownEntry]
        var usageDirty: Bool
        var alive: Bool
    }

    struct ProjectSlot: Sendable {
        var name: String
        var cooldowns: [CooldownEntry]
    }

    struct UpstreamSlot: Sendable {
        var upstream: PoolUpstream
        /// `cooldownUntil` as a reference-date interval, `-infinity` when none.
        var coolUntil: Double
        var failed: Double
        var used: Double
        var sequence: UInt64
        var usageDirty: Bool
        /// When a request last succeeded through it (`-infinity`: not since the start).
        var succeeded: Double = -.infinity
        /// Its recent per-minute and bare 429s, for ``EgressRule`` (within its window).
        var throttles: [ThrottleMark] = []
    }

    var slots: [KeySlot] = []
    var slotByID: [Int64: Int32] = [:]
    var heap = KeyHeap()
    var projects: [ProjectSlot] = []
    var projectByName: [String: Int32] = [:]
    var upstreamSlots: [UpstreamSlot] = []
    var upstreamIndexByID: [Int64: Int] = [:]
    var sequence: UInt64 = 0
    var dirtyKeys: [Int64] = []
    var dirtyUpstreams: [Int64] = []
    /// Per-model views with parked cooling keys (see `ModelView`), and their index by model.
    var views: [ModelView] = []
    var viewIndexByModel: [String: Int] = [:]
    /// A pick that skips at least this many cooling keys gives its model a view.
    var viewThreshold = 8

    static let maximumViews = 64

    /// Keys that answered `API_KEY_INVALID` once while ``CooldownPolicy/invalidKeyGrace`` is set:
    /// key id -> when their re-check is due (reference-date seconds). In memory only (a restart
    /// gives such a key a fresh grace); a success or the deletion of the key ends the suspicion.
    var suspects: [Int64: Double] = [:]

    /// Seconds an upstream's last failure still ranks it behind the others once its cooldown is
    /// over (Caddy's `FailDuration`).
    public var upstreamFailureMemory: Double = 30

    // MARK: Init

    /// An empty pool.
    public init() {}

    /// A pool loaded from the database (see ``replace(keys:upstreams:cooldowns:projectCooldowns:keepingInMemoryCooldowns:)``).
    public init(
        keys: [PoolKey],
        upstreams: [PoolUpstream],
        cooldowns: [KeyCooldown] = [],
        projectCooldowns: [ProjectCooldown] = []
    ) {
        replace(keys: keys, upstreams: upstreams, cooldowns: cooldowns, projectCooldowns: projectCooldowns)
    }

    // MARK: Queries

    /// Number of keys in the pool.
    public var keyCount: Int { slotByID.count }

    /// Number of upstreams in the pool.
    public var upstreamCount: Int { upstreamSlots.count }

    /// The key with this id, with its in-memory usage and throttle state.
    public func key(id: Int64) -> PoolKey? {
        slotByID[id].map { slots[Int($0)].key }
    }

    /// The upstream with this id, with its in-memory state.
    public func upstream(id: Int64) -> PoolUpstream? {
        upstreamIndexByID[id].map { upstreamSlots[$0].upstream }
    }

    /// Whether the key answered `API_KEY_INVALID` once and waits for its re-check (see
    /// ``CooldownPolicy/invalidKeyGrace``).
    public func isSuspect(keyID: Int64) -> Bool {
        suspects[keyID] != nil
    }

    /// When the key stops cooling for `model`, or nil when it is not cooling (or not in the pool).
    public func cooldownEnd(keyID: Int64, model: String, now: Date) -> Date? {
        guard let slot = slotByID[keyID] else { return nil }
        let end = peekCoolingEnd(slot: slot, model: model, now: now.timeIntervalSinceReferenceDate)
        return end > now.timeIntervalSinceReferenceDate ? Date(timeIntervalSinceReferenceDate: end) : nil
    }

    /// Key cooldowns in force at `now` (for an admin view or a consistency check).
    public func activeKeyCooldowns(now: Date) -> [KeyCooldown] {
        let time = now.timeIntervalSinceReferenceDate
        var result: [KeyCooldown] = []
        for slot in slots where slot.alive {
            for entry in slot.cooldowns where entry.until > time {
                result.append(KeyCooldown(
                    keyID: slot.key.id, model: entry.model, until: Date(timeIntervalSinceReferenceDate: entry.until),
                    reason: entry.reason, quotaID: entry.quotaID))
            }
        }
        return result
    }

    /// Project cooldowns in force at `now`.
    public func activeProjectCooldowns(now: Date) -> [ProjectCooldown] {
        let time = now.timeIntervalSinceReferenceDate
        return projects.flatMap { project in
            project.cooldowns.filter { $0.until > time }.map {
                ProjectCooldown(
                    project: project.name, model: $0.model, until: Date(timeIntervalSinceReferenceDate: $0.until),
                    reason: $0.reason, quotaID: $0.quotaID)
            }
        }
    }

    /// Counts for readiness and metrics. O(number of keys): not for the request path.
    public func snapshot(now: Date) -> PoolSnapshot {
        let time = now.timeIntervalSinceReferenceDate
        var cooling = 0
        var unusable = 0
        for slot in slots where slot.alive {
            guard let state = coolingState(of: slot, at: time) else { continue }
            cooling += 1
            if state.allModels { unusable += 1 }
        }
        return PoolSnapshot(
            activeKeys: slotByID.count,
            coolingKeys: cooling,
            unusableKeys: unusable,
            upstreams: upstreamSlots.count,
            healthyUpstreams: upstreamSlots.count(where: { $0.coolUntil <= time })
        )
    }

    /// Every active key's fingerprint and cooldowns in force, in pool order (per-key metrics).
    /// O(number of keys): not for the request path.
    public func keyStates(now: Date) -> [KeyState] {
        let time = now.timeIntervalSinceReferenceDate
        return slots.compactMap { slot in
            guard slot.alive else { return nil }
            let state = coolingState(of: slot, at: time)
            return KeyState(
                fingerprint: slot.key.fingerprint,
                coolingUntil: state.map { Date(timeIntervalSinceReferenceDate: $0.end) },
                unusable: state?.allModels ?? false)
        }
    }

    /// Every upstream with its cooldown in force, in pool order.
    public func upstreamStates(now: Date) -> [UpstreamState] {
        let time = now.timeIntervalSinceReferenceDate
        return upstreamSlots.map { slot in
            UpstreamState(
                id: slot.upstream.id, baseURL: slot.upstream.baseURL,
                coolingUntil: slot.coolUntil > time ? Date(timeIntervalSinceReferenceDate: slot.coolUntil) : nil)
        }
    }

    /// The latest end of the key's cooldowns in force at `time` (its own or its project's, for
    /// any model), and whether one of them covers every model; nil when none is in force.
    private func coolingState(of slot: KeySlot, at time: Double) -> (end: Double, allModels: Bool)? {
        let projectCooldowns = slot.project >= 0 ? projects[Int(slot.project)].cooldowns : []
        var end = -Double.infinity
        var allModels = false
        for list in [slot.cooldowns, projectCooldowns] {
            for entry in list where entry.until > time {
                end = max(end, entry.until)
                if entry.model == ModelName.all { allModels = true }
            }
        }
        return end > time ? (end, allModels) : nil
    }

    // MARK: Usage batches

    /// The last-use times that changed since the previous call, for one batched write.
    public mutating func takeLastUsed() -> LastUsedBatch {
        var batch = LastUsedBatch()
        for id in dirtyKeys {
            guard let slot = slotByID[id].map(Int.init), slots[slot].usageDirty else { continue }
            slots[slot].usageDirty = false
            if let used = slots[slot].key.lastUsedAt { batch.keys[id] = used }
        }
        for id in dirtyUpstreams {
            guard let index = upstreamIndexByID[id], upstreamSlots[index].usageDirty else { continue }
            upstreamSlots[index].usageDirty = false
            if let used = upstreamSlots[index].upstream.lastUsedAt { batch.upstreams[id] = used }
        }
        dirtyKeys.removeAll(keepingCapacity: true)
        dirtyUpstreams.removeAll(keepingCapacity: true)
        return batch
    }

    /// Takes back a batch from ``takeLastUsed()`` that could not be written: its keys and
    /// upstreams are unwritten again, and the next call takes them (with their newest times).
    public mutating func restoreLastUsed(_ batch: LastUsedBatch) {
        for id in batch.keys.keys {
            guard let slot = slotByID[id].map(Int.init), !slots[slot].usageDirty else { continue }
            slots[slot].usageDirty = true
            dirtyKeys.append(id)
        }
        for id in batch.upstreams.keys {
            guard let index = upstreamIndexByID[id], !upstreamSlots[index].usageDirty else { continue }
            upstreamSlots[index].usageDirty = true
            dirtyUpstreams.append(id)
        }
    }

    // MARK: Cooldown lookup

    /// The end of the latest cooldown in force for the slot and model (key-level or project-wide,
    /// for the model or `"*"`); `-infinity` when none.
    @inline(__always)
    func peekCoolingEnd(slot: Int32, model: String, now: Double) -> Double {
        var end = -Double.infinity
        let index = Int(slot)
        if !slots[index].cooldowns.isEmpty {
            end = Self.latestEnd(of: slots[index].cooldowns, model: model, now: now)
        }
        let project = Int(slots[index].project)
        if project >= 0, !projects[project].cooldowns.isEmpty {
            end = max(end, Self.latestEnd(of: projects[project].cooldowns, model: model, now: now))
        }
        return end
    }

    private static func latestEnd(of list: [CooldownEntry], model: String, now: Double) -> Double {
        var end = -Double.infinity
        for entry in list where entry.until > now && (entry.model == model || entry.model == ModelName.all) {
            end = max(end, entry.until)
        }
        return end
    }

    /// Adds or extends (never shortens) the cooldown for `model` in `list`, dropping expired
    /// entries; returns the stored entry.
    static func merge(_ entry: CooldownEntry, into list: inout [CooldownEntry], now: Double = -.infinity) -> CooldownEntry {
        pruneExpired(&list, now: now)
        if let index = list.firstIndex(where: { $0.model == entry.model }) {
            if entry.until > list[index].until { list[index] = entry }
            return list[index]
        }
        list.append(entry)
        return entry
    }

    /// Drops the entries that ended at or before `now`.
    @inline(__always)
    static func pruneExpired(_ list: inout [CooldownEntry], now: Double) {
        if list.contains(where: { $0.until <= now }) { list.removeAll { $0.until <= now } }
    }
}
