import Foundation

// MARK: - What other gateway instances learnt

extension Scheduler {
    /// Folds in state changes that another gateway instance recorded (shared through the store,
    /// issue 25), as if this scheduler had seen them, but returns nothing to write: the instance
    /// that saw them wrote them. O(k log n) for k changes; the per-model views see the cooldowns
    /// at their next pick, as they do after ``record(_:key:upstream:model:now:policy:)``.
    ///
    /// The merge rules make duplicates and re-reads harmless:
    /// - a cooldown ends at the later of the two ends (never shortened); `API_KEY_INVALID_RECHECK`
    ///   also makes the key a suspect until that end, so that this instance deletes it at its
    ///   next `API_KEY_INVALID` after the grace instead of granting a second one;
    /// - a throttle sinks the key to the later `lastThrottledAt`, and the streak becomes the larger
    ///   of the two, so a bare 429's backoff doubles for every instance;
    /// - a lifted cooldown (the egress rule) goes if it ends no later than the one lifted;
    /// - a soft delete takes the key out of the pool.
    /// Upstream health and recoveries are not shared (each instance sees its own path to a relay),
    /// and are ignored here. Ids no longer in the pool are ignored.
    public mutating func absorb(_ changes: [StateChange], now: Date) {
        let time = now.timeIntervalSinceReferenceDate
        for change in changes {
            switch change {
            case .keyCooldown(let cooldown):
                guard let slot = slotByID[cooldown.keyID] else { continue }
                let shared = entry(cooldown.model, cooldown.until, cooldown.reason, cooldown.quotaID)
                _ = Self.merge(shared, into: &slots[Int(slot)].cooldowns, now: time)
                if cooldown.reason == CooldownPolicy.invalidKeyRecheckReason, shared.until > time {
                    suspects[cooldown.keyID] = max(suspects[cooldown.keyID] ?? -.infinity, shared.until)
                }
            case .projectCooldown(let cooldown):
                guard let index = projectByName[cooldown.project] else { continue }
                _ = Self.merge(entry(cooldown.model, cooldown.until, cooldown.reason, cooldown.quotaID), into: &projects[Int(index)].cooldowns, now: time)
            case .keyCooldownLifted(let keyID, let model, let until):
                guard let slot = slotByID[keyID] else { continue }
                let end = until.timeIntervalSinceReferenceDate
                slots[Int(slot)].cooldowns.removeAll { $0.model == model && $0.until <= end }
            case .projectCooldownLifted(let project, let model, let until):
                guard let index = projectByName[project] else { continue }
                let end = until.timeIntervalSinceReferenceDate
                projects[Int(index)].cooldowns.removeAll { $0.model == model && $0.until <= end }
            case .keyThrottled(let keyID, let at, let streak):
                guard let slot = slotByID[keyID] else { continue }
                let index = Int(slot)
                slots[index].key.throttleStreak = max(slots[index].key.throttleStreak, streak)
                if at > (slots[index].key.lastThrottledAt ?? .distantPast) {
                    slots[index].key.lastThrottledAt = at
                    slots[index].rank.throttled = at.timeIntervalSinceReferenceDate
                    updateRank(slot: slot)
                }
            case .keyDeleted(let keyID, _, _):
                guard let slot = slotByID[keyID] else { continue }
                removeKey(slot: slot)
            case .keyRecovered, .upstreamFailed, .upstreamRecovered:
                continue
            }
        }
    }
}

extension StateChange {
    /// Whether another gateway instance must learn of this change (``Scheduler/absorb(_:now:)``):
    /// what a key or a project may do. Upstream health and key recoveries stay per instance.
    public var isShared: Bool {
        switch self {
        case .keyCooldown, .projectCooldown, .keyCooldownLifted, .projectCooldownLifted, .keyThrottled, .keyDeleted: true
        case .keyRecovered, .upstreamFailed, .upstreamRecovered: false
        }
    }
}
