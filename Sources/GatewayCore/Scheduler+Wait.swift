import Foundation

// MARK: - What a request may wait for

extension Scheduler {
    /// When the first key that can serve `model` comes back, counting only keys a request may
    /// wait for: those cooling for a per-minute or bare 429 alone (``isWaitable(reason:)``). A key
    /// that also has a per-day, `limit: 0`, `SERVICE_DISABLED` or re-check cooldown in force for
    /// the model is not waited for, however soon it ends; dead and disabled keys are not in the
    /// pool at all. Nil when no key qualifies.
    ///
    /// O(number of keys): asked only when a pick found every key cooling (``PickResult/allKeysCooling(until:)``).
    public func waitableReturn(model: String, now: Date) -> Date? {
        let time = now.timeIntervalSinceReferenceDate
        var soonest = Double.infinity
        for slot in slots.indices where slots[slot].alive {
            if let end = waitableEnd(slot: slot, model: model, now: time) { soonest = min(soonest, end) }
        }
        return soonest.isFinite ? Date(timeIntervalSinceReferenceDate: soonest) : nil
    }

    /// ``waitableReturn(model:now:)`` for a request bound to one key (a project-bound resource).
    public func waitableReturn(key keyID: Int64, model: String, now: Date) -> Date? {
        guard let slot = slotByID[keyID] else { return nil }
        return waitableEnd(slot: Int(slot), model: model, now: now.timeIntervalSinceReferenceDate)
            .map { Date(timeIntervalSinceReferenceDate: $0) }
    }

    /// Whether a cooldown with this reason is worth waiting for: a per-minute quota's, or a bare
    /// 429's. Per-day quotas, no quota (`limit: 0`) and unusable keys are not.
    public static func isWaitable(reason: String) -> Bool {
        waitableReasons.contains(reason)
    }

    /// `RATE_LIMIT_PER_MINUTE` and `RATE_LIMIT` (``Throttle/reason``).
    private static let waitableReasons: Set<String> = [
        Throttle(kind: .perMinute, quotaID: "PerMinute").reason, Throttle(kind: .perMinute).reason,
    ]

    /// The end of the slot's cooldowns in force for `model` if all of them may be waited for;
    /// nil when one may not (or none is in force: the key is not what the pick lacked).
    private func waitableEnd(slot: Int, model: String, now: Double) -> Double? {
        var end = -Double.infinity
        let project = Int(slots[slot].project)
        let lists = project >= 0 ? [slots[slot].cooldowns, projects[project].cooldowns] : [slots[slot].cooldowns]
        for list in lists {
            for entry in list where entry.until > now && (entry.model == model || entry.model == ModelName.all) {
                guard Self.isWaitable(reason: entry.reason) else { return nil }
                end = max(end, entry.until)
            }
        }
        return end > now ? end : nil
    }
}
