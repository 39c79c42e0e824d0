import Foundation

// MARK: - Picking

extension Scheduler {
    /// Chooses the (key, upstream) pair for the next attempt of a request for `model`, and marks
    /// both used at `now`.
    ///
    /// - The key: healthy for `model` (see ``Scheduler``), least recently throttled, then least
    ///   recently used.
    /// - The upstream: not cooling, least recent failure, then least recent use; pairs in `tried`
    ///   are skipped. When every untried upstream of every healthy key is cooling, the one whose
    ///   cooldown ends first is used rather than failing the request.
    ///
    /// O(log n) in the number of keys when the best key is healthy. Cooling keys ranked ahead of
    /// it are skipped; when there are many, a per-model view parks them so that each is skipped
    /// once per cooldown rather than on every pick (see `ModelView`).
    public mutating func pick(model: String, now: Date, tried: Set<PairID> = []) -> PickResult {
        guard !slotByID.isEmpty else { return .noKeys }
        guard !upstreamSlots.isEmpty else { return .noUpstreams }
        let time = now.timeIntervalSinceReferenceDate

        var viewIndex = viewIndexByModel.isEmpty ? nil : viewIndexByModel[model]
        if let index = viewIndex {
            views[index].release(now: time, slots: slots)
            if views[index].parked.isEmpty {
                dropView(at: index)
                viewIndex = nil
            }
        }

        let walk = viewIndex.map { self.walk(views[$0].heap, model: model, now: time, tried: tried) }
            ?? self.walk(heap, model: model, now: time, tried: tried)

        if let index = viewIndex {
            views[index].park(walk.cooling)
        } else if walk.cooling.count >= viewThreshold, views.count < Self.maximumViews {
            var view = ModelView(heap: heap)
            view.park(walk.cooling)
            viewIndexByModel[model] = views.count
            views.append(view)
            viewIndex = views.count - 1
        }

        if let chosen = walk.chosen ?? walk.fallback {
            return commit(slot: chosen.slot, upstream: chosen.upstream, now: now)
        }
        if walk.sawHealthyKey { return .exhausted }
        var soonest = walk.soonest
        if let index = viewIndex, let parked = views[index].parked.top {
            soonest = min(soonest, parked.until)
        }
        guard soonest.isFinite else { return .exhausted }
        return .allKeysCooling(until: Date(timeIntervalSinceReferenceDate: max(soonest, time)))
    }

    /// Chooses the pair for a request bound to one key (a project-bound resource such as
    /// `files/abc`), and when `upstream` is given to that upstream too (a resumable upload
    /// session lives at the upstream that started it).
    ///
    /// - ``PickResult/noKeys`` when the key is not in the pool (disabled or deleted);
    ///   ``PickResult/noUpstreams`` when the bound upstream is not (disabled).
    /// - ``PickResult/allKeysCooling(until:)`` when the key is cooling for `model`.
    /// - ``PickResult/exhausted`` when every usable pair with the key was tried.
    /// - Otherwise the key with its best untried upstream (healthy first; the bound one even
    ///   while it cools, there being no other).
    public mutating func pick(key keyID: Int64, upstream upstreamID: Int64?, model: String, now: Date, tried: Set<PairID> = []) -> PickResult {
        guard let slot = slotByID[keyID] else { return .noKeys }
        let time = now.timeIntervalSinceReferenceDate
        let end = peekCoolingEnd(slot: slot, model: model, now: time)
        if end > time { return .allKeysCooling(until: Date(timeIntervalSinceReferenceDate: end)) }
        if let upstreamID {
            guard let index = upstreamIndexByID[upstreamID] else { return .noUpstreams }
            if tried.contains(PairID(key: keyID, upstream: upstreamID)) { return .exhausted }
            return commit(slot: slot, upstream: index, now: now)
        }
        guard !upstreamSlots.isEmpty else { return .noUpstreams }
        let index = chooseUpstream(forKey: keyID, mode: .healthyOnly, now: time, tried: tried)
            ?? chooseUpstream(forKey: keyID, mode: .soonestEnd, now: time, tried: tried)
        guard let index else { return .exhausted }
        return commit(slot: slot, upstream: index, now: now)
    }

    // MARK: Walk

    /// What one best-first walk of a key heap found.
    struct Walk {
        /// The first healthy key with an untried upstream (preferring healthy upstreams).
        var chosen: (slot: Int32, upstream: Int)?
        /// The first healthy key whose only untried upstreams are cooling.
        var fallback: (slot: Int32, upstream: Int)?
        /// Whether any key healthy for the model was met.
        var sawHealthyKey = false
        /// The soonest end among the cooling keys met.
        var soonest = Double.infinity
        /// The cooling keys met, with the end of their cooldown.
        var cooling: [(slot: Int32, end: Double)] = []
    }

    /// Visits `heap` in rank order from the root (a frontier of heap positions, itself a small
    /// heap), skipping cooling keys, until a healthy key with an untried healthy upstream is found.
    /// Reads only: parking and committing happen afterwards.
    func walk(_ heap: KeyHeap, model: String, now: Double, tried: Set<PairID>) -> Walk {
        var result = Walk()
        guard heap.count > 0 else { return result }
        var anyHealthyUpstream = false
        for upstream in upstreamSlots where upstream.coolUntil <= now {
            anyHealthyUpstream = true
            break
        }
        let mode: UpstreamChoice = anyHealthyUpstream ? .healthyOnly : .soonestEnd

        // Fast path: a healthy root with an untried upstream needs no frontier.
        let root = heap.slot(at: 0)
        let rootEnd = peekCoolingEnd(slot: root, model: model, now: now)
        if rootEnd <= now, let upstream = chooseUpstream(forKey: slots[Int(root)].key.id, mode: mode, now: now, tried: tried) {
            result.sawHealthyKey = true
            result.chosen = (root, upstream)
            return result
        }

        var frontier = Frontier(heap: heap)
        frontier.push(0)
        while let position = frontier.pop() {
            let slot = heap.slot(at: position)
            let end = position == 0 ? rootEnd : peekCoolingEnd(slot: slot, model: model, now: now)
            if end > now {
                result.soonest = min(result.soonest, end)
                result.cooling.append((slot, end))
                frontier.pushChildren(of: position)
                continue
            }
            result.sawHealthyKey = true
            let keyID = slots[Int(slot)].key.id
            if let upstream = chooseUpstream(forKey: keyID, mode: mode, now: now, tried: tried) {
                result.chosen = (slot, upstream)
                return result
            }
            if anyHealthyUpstream, result.fallback == nil,
               let upstream = chooseUpstream(forKey: keyID, mode: .soonestEnd, now: now, tried: tried)
            {
                result.fallback = (slot, upstream)
            }
            frontier.pushChildren(of: position)
        }
        return result
    }

    // MARK: Upstream choice

    enum UpstreamChoice {
        /// Only upstreams not cooling, by (last failure, last use, sequence, id).
        case healthyOnly
        /// Any upstream, by (end of cooldown, last failure, last use, sequence, id).
        case soonestEnd
    }

    /// The index of the best upstream for the key, skipping tried pairs.
    @inline(__always)
    func chooseUpstream(forKey keyID: Int64, mode: UpstreamChoice, now: Double, tried: Set<PairID>) -> Int? {
        var best: Int?
        for index in upstreamSlots.indices {
            let candidate = upstreamSlots[index]
            if mode == .healthyOnly, candidate.coolUntil > now { continue }
            if !tried.isEmpty, tried.contains(PairID(key: keyID, upstream: candidate.upstream.id)) { continue }
            guard let current = best else {
                best = index
                continue
            }
            if Self.upstream(candidate, precedes: upstreamSlots[current], mode: mode, now: now, memory: upstreamFailureMemory) {
                best = index
            }
        }
        return best
    }

    @inline(__always)
    static func upstream(_ lhs: UpstreamSlot, precedes rhs: UpstreamSlot, mode: UpstreamChoice, now: Double, memory: Double) -> Bool {
        if mode == .soonestEnd {
            let left = max(lhs.coolUntil, now)
            let right = max(rhs.coolUntil, now)
            if left != right { return left < right }
        }
        let leftFailed = remembered(lhs, now: now, memory: memory), rightFailed = remembered(rhs, now: now, memory: memory)
        if leftFailed != rightFailed { return leftFailed < rightFailed }
        if lhs.used != rhs.used { return lhs.used < rhs.used }
        if lhs.sequence != rhs.sequence { return lhs.sequence < rhs.sequence }
        return lhs.upstream.id < rhs.upstream.id
    }

    /// An upstream's last failure as far as ordering goes: forgotten once the upstream is out of
    /// its cooldown and `memory` seconds have passed, so a recovered upstream takes its share of
    /// the load again instead of waiting for the others to fail.
    @inline(__always)
    static func remembered(_ slot: UpstreamSlot, now: Double, memory: Double) -> Double {
        slot.coolUntil > now || slot.failed + memory > now ? slot.failed : -.infinity
    }

    // MARK: Commit

    private mutating func commit(slot: Int32, upstream index: Int, now: Date) -> PickResult {
        let time = now.timeIntervalSinceReferenceDate
        sequence &+= 1
        let keyIndex = Int(slot)
        // Forget expired cooldowns of what is being used.
        Self.pruneExpired(&slots[keyIndex].cooldowns, now: time)
        let project = Int(slots[keyIndex].project)
        if project >= 0 { Self.pruneExpired(&projects[project].cooldowns, now: time) }
        slots[keyIndex].key.lastUsedAt = now
        slots[keyIndex].rank.used = time
        slots[keyIndex].rank.sequence = sequence
        updateRank(slot: slot)
        if !slots[keyIndex].usageDirty {
            slots[keyIndex].usageDirty = true
            dirtyKeys.append(slots[keyIndex].key.id)
        }

        sequence &+= 1
        upstreamSlots[index].upstream.lastUsedAt = now
        upstreamSlots[index].used = time
        upstreamSlots[index].sequence = sequence
        if !upstreamSlots[index].usageDirty {
            upstreamSlots[index].usageDirty = true
            dirtyUpstreams.append(upstreamSlots[index].upstream.id)
        }
        return .pair(slots[keyIndex].key, upstreamSlots[index].upstream)
    }

    // MARK: Views

    /// Re-sorts a key whose rank changed, in the main heap and in every model view holding it.
    mutating func updateRank(slot: Int32) {
        let rank = slots[Int(slot)].rank
        heap.update(slot: slot, rank: rank)
        for index in views.indices { views[index].heap.update(slot: slot, rank: rank) }
    }

    private mutating func dropView(at index: Int) {
        views.remove(at: index)
        viewIndexByModel = viewIndexByModel.filter { $0.value != index }.mapValues { $0 > index ? $0 - 1 : $0 }
    }
}

// MARK: - Frontier

/// The positions of a key heap still to visit in a best-first walk, itself a min-heap by rank.
private struct Frontier {
    let heap: KeyHeap
    var positions: [Int32] = []

    init(heap: KeyHeap) {
        self.heap = heap
    }

    mutating func pushChildren(of position: Int) {
        let left = 2 * position + 1
        if left < heap.count { push(left) }
        if left + 1 < heap.count { push(left + 1) }
    }

    mutating func push(_ position: Int) {
        positions.append(Int32(position))
        var index = positions.count - 1
        while index > 0 {
            let parent = (index - 1) / 2
            guard precedes(positions[index], positions[parent]) else { break }
            positions.swapAt(index, parent)
            index = parent
        }
    }

    mutating func pop() -> Int? {
        guard let first = positions.first else { return nil }
        let last = positions.removeLast()
        if !positions.isEmpty {
            positions[0] = last
            var index = 0
            let count = positions.count
            while true {
                let left = 2 * index + 1
                guard left < count else { break }
                let right = left + 1
                let child = right < count && precedes(positions[right], positions[left]) ? right : left
                guard precedes(positions[child], positions[index]) else { break }
                positions.swapAt(child, index)
                index = child
            }
        }
        return Int(first)
    }

    @inline(__always)
    private func precedes(_ lhs: Int32, _ rhs: Int32) -> Bool {
        KeyRank.precedes(heap.rank(at: Int(lhs)), heap.rank(at: Int(rhs)))
    }
}
