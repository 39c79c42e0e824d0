import Foundation

// MARK: - Reloading

extension Scheduler {
    /// Replaces the pool's contents with a reload from the database (keys imported, disabled or
    /// restored by the CLI while serving), keeping the in-memory state of what stays.
    ///
    /// - Keys: only the given (active) keys remain. For a key already in the pool the secret,
    ///   fingerprint and project come from `keys`, while `lastUsedAt`/`lastThrottledAt` are the later
    ///   of memory and database and the throttle streak is the in-memory one (memory is written
    ///   behind, so it is at least as fresh).
    /// - Upstreams: likewise; for one already in the pool the base URL comes from `upstreams` and
    ///   its cooldown, failure streak and last failure stay as in memory.
    /// - Cooldowns: the given ones, merged (the later end wins per key and model) with the
    ///   in-memory ones of keys and projects that stay when `keepingInMemoryCooldowns` is true, so
    ///   a reload that races a not-yet-written cooldown cannot lose it. Pass false to make the
    ///   database authoritative (e.g. after an operator cleared cooldowns).
    ///
    /// O(n) in the number of keys.
    public mutating func replace(
        keys: [PoolKey],
        upstreams: [PoolUpstream],
        cooldowns: [KeyCooldown] = [],
        projectCooldowns: [ProjectCooldown] = [],
        keepingInMemoryCooldowns: Bool = true
    ) {
        let oldSlots = slots
        let oldSlotByID = slotByID
        let oldProjects = projects
        let oldUpstreams = upstreamSlots
        let oldUpstreamIndexByID = upstreamIndexByID

        // Projects: carry in-memory project cooldowns over.
        projects = []
        projectByName = [:]
        if keepingInMemoryCooldowns {
            for project in oldProjects where !project.cooldowns.isEmpty {
                let index = projectIndex(for: project.name)
                projects[Int(index)].cooldowns = project.cooldowns
            }
        }

        // Keys.
        slots = []
        slots.reserveCapacity(keys.count)
        slotByID = [:]
        slotByID.reserveCapacity(keys.count)
        for incoming in keys where slotByID[incoming.id] == nil {
            var key = incoming
            var sequence: UInt64 = 0
            var entries: [CooldownEntry] = []
            var dirty = false
            if let old = oldSlotByID[incoming.id].map({ oldSlots[Int($0)] }), old.alive {
                key.lastUsedAt = Self.later(old.key.lastUsedAt, incoming.lastUsedAt)
                key.lastThrottledAt = Self.later(old.key.lastThrottledAt, incoming.lastThrottledAt)
                key.throttleStreak = old.key.throttleStreak
                sequence = old.rank.sequence
                dirty = old.usageDirty
                if keepingInMemoryCooldowns { entries = old.cooldowns }
            }
            let slot = Int32(slots.count)
            slots.append(KeySlot(
                key: key,
                rank: KeyRank(
                    throttled: key.lastThrottledAt?.timeIntervalSinceReferenceDate ?? -.infinity,
                    used: key.lastUsedAt?.timeIntervalSinceReferenceDate ?? -.infinity,
                    sequence: sequence,
                    id: key.id),
                project: key.project.map { projectIndex(for: $0) } ?? -1,
                cooldowns: entries,
                usageDirty: dirty,
                alive: true))
            slotByID[key.id] = slot
        }
        // A key that left the pool (deleted or disabled by an operator) leaves its invalid-key
        // suspicion behind: restored later, it gets a fresh grace.
        if !suspects.isEmpty { suspects = suspects.filter { slotByID[$0.key] != nil } }
        for cooldown in cooldowns {
            guard let slot = slotByID[cooldown.keyID] else { continue }
            _ = Self.merge(entry(cooldown.model, cooldown.until, cooldown.reason, cooldown.quotaID), into: &slots[Int(slot)].cooldowns)
        }
        for cooldown in projectCooldowns {
            let index = Int(projectIndex(for: cooldown.project))
            _ = Self.merge(entry(cooldown.model, cooldown.until, cooldown.reason, cooldown.quotaID), into: &projects[index].cooldowns)
        }
        heap = KeyHeap(
            entries: slots.indices.map { KeyHeap.Entry(rank: slots[$0].rank, slot: Int32($0)) },
            slotCapacity: slots.count)

        // Upstreams.
        upstreamSlots = []
        upstreamIndexByID = [:]
        for incoming in upstreams where upstreamIndexByID[incoming.id] == nil {
            var upstream = incoming
            var sequence: UInt64 = 0
            var dirty = false
            var succeeded = -Double.infinity
            var throttles: [ThrottleMark] = []
            if let old = oldUpstreamIndexByID[incoming.id].map({ oldUpstreams[$0] }) {
                succeeded = old.succeeded
                throttles = old.throttles
                upstream.cooldownUntil = old.upstream.cooldownUntil
                upstream.failureStreak = old.upstream.failureStreak
                upstream.lastFailureAt = old.upstream.lastFailureAt
                upstream.lastUsedAt = Self.later(old.upstream.lastUsedAt, incoming.lastUsedAt)
                sequence = old.sequence
                dirty = old.usageDirty
            }
            upstreamIndexByID[upstream.id] = upstreamSlots.count
            upstreamSlots.append(UpstreamSlot(
                upstream: upstream,
                coolUntil: upstream.cooldownUntil?.timeIntervalSinceReferenceDate ?? -.infinity,
                failed: upstream.lastFailureAt?.timeIntervalSinceReferenceDate ?? -.infinity,
                used: upstream.lastUsedAt?.timeIntervalSinceReferenceDate ?? -.infinity,
                sequence: sequence,
                usageDirty: dirty,
                succeeded: succeeded,
                throttles: throttles))
        }

        // Views hold slot numbers of the old pool; they are rebuilt on demand.
        views = []
        viewIndexByModel = [:]
    }

    // MARK: Helpers

    private mutating func projectIndex(for name: String) -> Int32 {
        if let index = projectByName[name] { return index }
        let index = Int32(projects.count)
        projects.append(ProjectSlot(name: name, cooldowns: []))
        projectByName[name] = index
        return index
    }

    func entry(_ model: String, _ until: Date, _ reason: String, _ quotaID: String?) -> CooldownEntry {
        CooldownEntry(model: model, until: until.timeIntervalSinceReferenceDate, reason: reason, quotaID: quotaID)
    }

    private static func later(_ lhs: Date?, _ rhs: Date?) -> Date? {
        switch (lhs, rhs) {
        case (nil, nil): nil
        case (let date?, nil), (nil, let date?): date
        case (let left?, let right?): max(left, right)
        }
    }

    /// Makes `cooldowns` the only cooldowns of the keys `keyIDs` (keys an operator restored or
    /// changed: for them the database is authoritative, not what memory still holds).
    public mutating func resetCooldowns(of keyIDs: Set<Int64>, to cooldowns: [KeyCooldown]) {
        var touched = false
        for id in keyIDs {
            guard let slot = slotByID[id].map(Int.init) else { continue }
            slots[slot].cooldowns = []
            touched = true
        }
        for cooldown in cooldowns where keyIDs.contains(cooldown.keyID) {
            guard let slot = slotByID[cooldown.keyID].map(Int.init) else { continue }
            _ = Self.merge(entry(cooldown.model, cooldown.until, cooldown.reason, cooldown.quotaID), into: &slots[slot].cooldowns)
        }
        // Parked keys may have become usable: let the per-model views be rebuilt on demand.
        if touched {
            views = []
            viewIndexByModel = [:]
        }
    }
}
