import Foundation

// MARK: - Recording outcomes

extension Scheduler {
    /// Applies the verdict of one attempt made with (`key`, `upstream`) for `model`, and returns
    /// what to persist.
    ///
    /// | verdict | key | upstream |
    /// |---|---|---|
    /// | success | throttle streak reset (``StateChange/keyRecovered(id:)`` if it was > 0) | failure streak and cooldown reset (``StateChange/upstreamRecovered(id:)`` if needed) |
    /// | throttled | `lastThrottledAt = now`, streak + 1, cooldown for `model` per `policy`; for a labelled key and a project-wide throttle (``Throttle/isProjectWide``) the same cooldown for its whole project | - |
    /// | keyDead | removed from the pool, ``StateChange/keyDeleted(id:reason:at:)``; but see below for `API_KEY_INVALID` with a grace | - |
    /// | keyUnusable | `lastThrottledAt = now`, cooldown for `"*"` (streak unchanged) | - |
    /// | upstreamBlocked, upstreamFailure | - | streak + 1, `lastFailureAt = now`, cooldown per `policy` |
    /// | transient | - | `lastFailureAt = now` only: it sorts behind the others but is not cooled and its streak is unchanged (a Google-side 503 storm says nothing about the relay, and must not lengthen its next backoff) |
    /// | clientError, cancelled | - | - |
    ///
    /// A per-minute or bare 429 is also evidence against the upstream it came through: when
    /// ``EgressRule`` blames that upstream, it cools (reason `EGRESS_THROTTLED`) and the cooldowns
    /// its burst of 429s put on keys and projects are lifted (`Scheduler+Egress.swift`).
    ///
    /// With ``CooldownPolicy/invalidKeyGrace`` set, a first `API_KEY_INVALID` does not delete the
    /// key: it becomes a suspect and cools for every model (`"*"`, reason
    /// ``CooldownPolicy/invalidKeyRecheckReason``) for the grace, like an unusable key. Another
    /// `API_KEY_INVALID` within the grace (an attempt that raced the first) only keeps it cooling
    /// until the grace ends; one after it deletes the key as above. A success ends the suspicion.
    ///
    /// Cooldowns are only ever extended, never shortened, by a later outcome (two attempts that
    /// raced on the same key). Ids no longer in the pool are ignored.
    public mutating func record(
        _ verdict: Verdict,
        key keyID: Int64,
        upstream upstreamID: Int64,
        model: String,
        now: Date,
        policy: CooldownPolicy = .standard
    ) -> [StateChange] {
        var changes: [StateChange] = []
        let time = now.timeIntervalSinceReferenceDate
        switch verdict {
        case .success:
            if !suspects.isEmpty { suspects[keyID] = nil }
            if let slot = slotByID[keyID].map(Int.init), slots[slot].key.throttleStreak > 0 {
                slots[slot].key.throttleStreak = 0
                changes.append(.keyRecovered(id: keyID))
            }
            if let index = upstreamIndexByID[upstreamID] {
                upstreamSlots[index].succeeded = time
                if upstreamSlots[index].upstream.failureStreak > 0 || upstreamSlots[index].upstream.cooldownUntil != nil {
                    upstreamSlots[index].upstream.failureStreak = 0
                    upstreamSlots[index].upstream.cooldownUntil = nil
                    upstreamSlots[index].coolUntil = -.infinity
                    changes.append(.upstreamRecovered(id: upstreamID))
                }
            }

        case .throttled(let throttle):
            guard let slot = slotByID[keyID] else { break }
            let streak = markThrottled(slot: slot, now: now, incrementStreak: true)
            changes.append(.keyThrottled(id: keyID, at: now, streak: streak))
            let until = policy.throttleUntil(throttle, now: now, streak: streak).timeIntervalSinceReferenceDate
            let entry = CooldownEntry(model: model, until: until, reason: throttle.reason, quotaID: throttle.quotaID)
            let stored = Self.merge(entry, into: &slots[Int(slot)].cooldowns, now: time)
            changes.append(.keyCooldown(keyCooldown(keyID: keyID, stored)))
            let project = slots[Int(slot)].project
            var projectUntil: Double?
            if throttle.isProjectWide, project >= 0 {
                let stored = Self.merge(entry, into: &projects[Int(project)].cooldowns, now: time)
                changes.append(.projectCooldown(projectCooldown(project: projects[Int(project)].name, stored)))
                if stored == entry { projectUntil = until }
            }
            if throttle.kind == .perMinute, policy.egress.isOn, upstreamSlots.count > 1 {
                let mark = ThrottleMark(
                    time: time, keyID: keyID, project: project >= 0 ? projects[Int(project)].name : "key \(keyID)",
                    model: model, keyUntil: stored == entry ? until : nil, projectUntil: projectUntil)
                changes += blameEgress(after: mark, upstream: upstreamID, now: now, rule: policy.egress)
            }

        case .keyDead(let reason):
            guard let slot = slotByID[keyID] else { break }
            if let recheck = policy.invalidKeyRecheckAt(for: verdict, now: now),
               let grace = suspect(slot: slot, keyID: keyID, recheck: recheck, now: now) {
                changes += grace
                break
            }
            removeKey(slot: slot)
            changes.append(.keyDeleted(id: keyID, reason: reason, at: now))

        case .keyUnusable(let reason):
            guard let slot = slotByID[keyID] else { break }
            let streak = markThrottled(slot: slot, now: now, incrementStreak: false)
            changes.append(.keyThrottled(id: keyID, at: now, streak: streak))
            let until = (policy.keyCooldownUntil(for: verdict, now: now, streak: streak) ?? now).timeIntervalSinceReferenceDate
            let entry = CooldownEntry(model: ModelName.all, until: until, reason: reason, quotaID: nil)
            let stored = Self.merge(entry, into: &slots[Int(slot)].cooldowns, now: time)
            changes.append(.keyCooldown(keyCooldown(keyID: keyID, stored)))

        case .upstreamBlocked(let reason), .upstreamFailure(let reason):
            guard let index = upstreamIndexByID[upstreamID] else { break }
            upstreamSlots[index].upstream.failureStreak += 1
            let streak = upstreamSlots[index].upstream.failureStreak
            upstreamSlots[index].upstream.lastFailureAt = now
            upstreamSlots[index].failed = time
            let until = (policy.upstreamCooldownUntil(for: verdict, now: now, streak: streak) ?? now).timeIntervalSinceReferenceDate
            let end = max(until, upstreamSlots[index].coolUntil)
            upstreamSlots[index].coolUntil = end
            let endDate = Date(timeIntervalSinceReferenceDate: end)
            upstreamSlots[index].upstream.cooldownUntil = endDate
            changes.append(.upstreamFailed(id: upstreamID, until: endDate, streak: streak, reason: reason, at: now))

        case .transient(let reason):
            guard let index = upstreamIndexByID[upstreamID] else { break }
            upstreamSlots[index].upstream.lastFailureAt = now
            upstreamSlots[index].failed = time
            changes.append(.upstreamFailed(
                id: upstreamID, until: nil, streak: upstreamSlots[index].upstream.failureStreak, reason: reason, at: now))

        case .clientError, .relayRefusal, .localFailure, .cancelled:
            break
        }
        return changes
    }

    // MARK: Helpers

    /// For a key that answered `API_KEY_INVALID` while a grace is set: the changes that make it (or
    /// keep it) a suspect cooling for every model until its re-check, or nil when its grace is over
    /// and it is to be deleted.
    private mutating func suspect(slot: Int32, keyID: Int64, recheck: Date, now: Date) -> [StateChange]? {
        let time = now.timeIntervalSinceReferenceDate
        var changes: [StateChange] = []
        let due: Double
        if let known = suspects[keyID] {
            guard time < known else { return nil }
            // An attempt that raced the first verdict, or an operator cleared the cooldown: the
            // grace stands, and the key cools until it is over.
            due = known
            if peekCoolingEnd(slot: slot, model: ModelName.all, now: time) >= due { return [] }
        } else {
            due = recheck.timeIntervalSinceReferenceDate
            suspects[keyID] = due
            let streak = markThrottled(slot: slot, now: now, incrementStreak: false)
            changes.append(.keyThrottled(id: keyID, at: now, streak: streak))
        }
        let entry = CooldownEntry(model: ModelName.all, until: due, reason: CooldownPolicy.invalidKeyRecheckReason, quotaID: nil)
        let stored = Self.merge(entry, into: &slots[Int(slot)].cooldowns, now: time)
        changes.append(.keyCooldown(keyCooldown(keyID: keyID, stored)))
        return changes
    }

    /// Sets `lastThrottledAt` (the key sinks behind every key throttled earlier); returns the streak.
    private mutating func markThrottled(slot: Int32, now: Date, incrementStreak: Bool) -> Int {
        let index = Int(slot)
        if incrementStreak { slots[index].key.throttleStreak += 1 }
        slots[index].key.lastThrottledAt = now
        slots[index].rank.throttled = now.timeIntervalSinceReferenceDate
        updateRank(slot: slot)
        return slots[index].key.throttleStreak
    }

    mutating func removeKey(slot: Int32) {
        let index = Int(slot)
        heap.remove(slot: slot)
        for view in views.indices { views[view].heap.remove(slot: slot) }
        slotByID[slots[index].key.id] = nil
        suspects[slots[index].key.id] = nil
        slots[index].alive = false
        slots[index].cooldowns = []
        slots[index].usageDirty = false
        slots[index].key.secret = ""
    }

    private func keyCooldown(keyID: Int64, _ entry: CooldownEntry) -> KeyCooldown {
        KeyCooldown(
            keyID: keyID, model: entry.model, until: Date(timeIntervalSinceReferenceDate: entry.until),
            reason: entry.reason, quotaID: entry.quotaID)
    }

    private func projectCooldown(project: String, _ entry: CooldownEntry) -> ProjectCooldown {
        ProjectCooldown(
            project: project, model: entry.model, until: Date(timeIntervalSinceReferenceDate: entry.until),
            reason: entry.reason, quotaID: entry.quotaID)
    }
}
