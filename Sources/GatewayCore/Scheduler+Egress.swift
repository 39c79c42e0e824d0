import Foundation

// MARK: - Blaming the egress

extension Scheduler {
    /// Keeps `mark` (a per-minute or bare 429 through `upstreamID`) as evidence, and when
    /// ``EgressRule`` then blames the upstream: cools it for the rule's cooldown (reason
    /// ``EgressRule/reason``), lifts the key and project cooldowns its marks set (unless a later
    /// 429 extended them), puts the keys' throttle streaks back, and forgets the marks. Returns
    /// what to persist.
    mutating func blameEgress(after mark: ThrottleMark, upstream upstreamID: Int64, now: Date, rule: EgressRule) -> [StateChange] {
        guard let index = upstreamIndexByID[upstreamID] else { return [] }
        let time = now.timeIntervalSinceReferenceDate
        upstreamSlots[index].throttles.removeAll { $0.time <= time - rule.window }
        upstreamSlots[index].throttles.append(mark)
        var otherSuccess = -Double.infinity
        for other in upstreamSlots.indices where other != index {
            otherSuccess = max(otherSuccess, upstreamSlots[other].succeeded)
        }
        let marks = upstreamSlots[index].throttles
        guard rule.blames(marks, otherSuccess: otherSuccess, now: time) else { return [] }
        upstreamSlots[index].throttles = []

        var changes: [StateChange] = []
        upstreamSlots[index].upstream.failureStreak += 1
        upstreamSlots[index].upstream.lastFailureAt = now
        upstreamSlots[index].failed = time
        let end = max(time + rule.cooldown, upstreamSlots[index].coolUntil)
        upstreamSlots[index].coolUntil = end
        upstreamSlots[index].upstream.cooldownUntil = Date(timeIntervalSinceReferenceDate: end)
        changes.append(.upstreamFailed(
            id: upstreamID, until: Date(timeIntervalSinceReferenceDate: end), streak: upstreamSlots[index].upstream.failureStreak,
            reason: EgressRule.reason, at: now))

        for mark in marks {
            guard let slot = slotByID[mark.keyID].map(Int.init) else { continue }
            if let until = mark.keyUntil, Self.lift(model: mark.model, until: until, from: &slots[slot].cooldowns) {
                changes.append(.keyCooldownLifted(keyID: mark.keyID, model: mark.model, until: Date(timeIntervalSinceReferenceDate: until)))
            }
            let project = Int(slots[slot].project)
            if project >= 0, let until = mark.projectUntil,
               Self.lift(model: mark.model, until: until, from: &projects[project].cooldowns) {
                changes.append(.projectCooldownLifted(
                    project: projects[project].name, model: mark.model, until: Date(timeIntervalSinceReferenceDate: until)))
            }
            if slots[slot].key.throttleStreak > 0 {
                slots[slot].key.throttleStreak -= 1
                changes.append(.keyThrottled(
                    id: mark.keyID, at: slots[slot].key.lastThrottledAt ?? now, streak: slots[slot].key.throttleStreak))
            }
        }
        // Keys parked in the per-model views until the lifted ends are usable again.
        views = []
        viewIndexByModel = [:]
        return changes
    }

    /// Removes the cooldown for `model` that ends at `until` (one a later outcome extended stays);
    /// true when one was removed.
    private static func lift(model: String, until: Double, from list: inout [CooldownEntry]) -> Bool {
        guard let index = list.firstIndex(where: { $0.model == model && $0.until == until }) else { return false }
        list.remove(at: index)
        return true
    }
}
