// MARK: - ModelView

/// The keys of the pool as seen by one model that has many keys cooling: a heap of the keys not
/// known to be cooling for it, plus the cooling ones "parked" until their cooldown ends.
///
/// Without a view, a pick skips the cooling keys that rank ahead of the first healthy one, on
/// every pick. That is cheap when they are few, but "least recently throttled first" can put
/// thousands of them ahead (keys that hit a per-day quota in the morning rank before keys
/// throttled later for another model), and then every pick would cost them all. A view skips each
/// cooling key once per cooldown instead: the first pick that meets it parks it, and it returns
/// when its cooldown ends. The ``Scheduler`` creates a view for a model when one pick skips
/// ``Scheduler/viewThreshold`` cooling keys and drops it once nothing is parked.
struct ModelView: Sendable {
    /// Keys not known to be cooling for the model (cooling ones are parked when met).
    var heap: KeyHeap
    /// Keys known to be cooling for the model, by the end of their cooldown at parking time.
    var parked = ParkingHeap()

    /// Moves the cooling keys met by a pick from the heap to the parking.
    mutating func park(_ cooling: [(slot: Int32, end: Double)]) {
        for (slot, end) in cooling where heap.contains(slot: slot) {
            heap.remove(slot: slot)
            parked.push(until: end, slot: slot)
        }
    }

    /// Returns to the heap every parked key whose cooldown has ended (a key that got another
    /// cooldown meanwhile is simply parked again when next met). Dead slots are dropped.
    mutating func release(now: Double, slots: [Scheduler.KeySlot]) {
        while let top = parked.top, top.until <= now {
            parked.pop()
            let slot = top.slot
            guard slots[Int(slot)].alive, !heap.contains(slot: slot) else { continue }
            heap.insert(slot: slot, rank: slots[Int(slot)].rank)
        }
    }
}

// MARK: - ParkingHeap

/// A binary min-heap of (until, slot).
struct ParkingHeap: Sendable {
    struct Entry: Sendable {
        var until: Double
        var slot: Int32
    }

    private(set) var entries: [Entry] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var top: Entry? { entries.first }

    mutating func push(until: Double, slot: Int32) {
        entries.append(Entry(until: until, slot: slot))
        var index = entries.count - 1
        while index > 0 {
            let parent = (index - 1) / 2
            guard entries[index].until < entries[parent].until else { break }
            entries.swapAt(index, parent)
            index = parent
        }
    }

    mutating func pop() {
        guard !entries.isEmpty else { return }
        let last = entries.removeLast()
        guard !entries.isEmpty else { return }
        entries[0] = last
        var index = 0
        while true {
            let left = 2 * index + 1
            guard left < entries.count else { break }
            let right = left + 1
            let child = right < entries.count && entries[right].until < entries[left].until ? right : left
            guard entries[child].until < entries[index].until else { break }
            entries.swapAt(child, index)
            index = child
        }
    }
}
