// MARK: - KeyRank

/// The order in which keys are preferred: least recently throttled first (never throttled before
/// all), then least recently used, then an insertion sequence (so picks at the same instant still
/// rotate), then id. Times are `timeIntervalSinceReferenceDate`, `-infinity` for "never".
struct KeyRank: Sendable, Hashable {
    var throttled: Double
    var used: Double
    var sequence: UInt64
    var id: Int64

    @inline(__always)
    static func precedes(_ lhs: KeyRank, _ rhs: KeyRank) -> Bool {
        if lhs.throttled != rhs.throttled { return lhs.throttled < rhs.throttled }
        if lhs.used != rhs.used { return lhs.used < rhs.used }
        if lhs.sequence != rhs.sequence { return lhs.sequence < rhs.sequence }
        return lhs.id < rhs.id
    }
}

// MARK: - KeyHeap

/// An indexed binary min-heap of key slots ordered by ``KeyRank``.
///
/// `positions[slot]` is the slot's index in `entries` (-1 when absent), so a key's rank can be
/// changed or the key removed in O(log n). The heap is never searched linearly:
/// ``Scheduler`` walks it best-first from the root when it has to skip cooling keys.
struct KeyHeap: Sendable {
    struct Entry: Sendable {
        var rank: KeyRank
        var slot: Int32
    }

    private(set) var entries: [Entry] = []
    private var positions: [Int32] = []

    // MARK: Access

    var count: Int { entries.count }

    @inline(__always)
    func slot(at position: Int) -> Int32 { entries[position].slot }

    @inline(__always)
    func rank(at position: Int) -> KeyRank { entries[position].rank }

    func contains(slot: Int32) -> Bool {
        Int(slot) < positions.count && positions[Int(slot)] >= 0
    }

    // MARK: Building

    /// Builds a heap from unordered entries in O(n).
    init(entries unordered: [Entry] = [], slotCapacity: Int = 0) {
        entries = unordered
        let maximumSlot = unordered.map { Int($0.slot) }.max() ?? -1
        positions = Array(repeating: -1, count: max(slotCapacity, maximumSlot + 1))
        for (index, entry) in entries.enumerated() { positions[Int(entry.slot)] = Int32(index) }
        if entries.count > 1 {
            for index in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
        }
    }

    // MARK: Mutation

    mutating func insert(slot: Int32, rank: KeyRank) {
        if Int(slot) >= positions.count {
            positions.append(contentsOf: repeatElement(-1, count: Int(slot) + 1 - positions.count))
        }
        precondition(positions[Int(slot)] < 0, "slot already in heap")
        entries.append(Entry(rank: rank, slot: slot))
        positions[Int(slot)] = Int32(entries.count - 1)
        siftUp(entries.count - 1)
    }

    mutating func remove(slot: Int32) {
        guard contains(slot: slot) else { return }
        let index = Int(positions[Int(slot)])
        let last = entries.count - 1
        if index != last {
            move(from: last, to: index)
            entries.removeLast()
            positions[Int(slot)] = -1
            restore(index)
        } else {
            entries.removeLast()
            positions[Int(slot)] = -1
        }
    }

    mutating func update(slot: Int32, rank: KeyRank) {
        guard contains(slot: slot) else { return }
        let index = Int(positions[Int(slot)])
        entries[index].rank = rank
        restore(index)
    }

    // MARK: Sifting

    private mutating func restore(_ index: Int) {
        if index > 0, KeyRank.precedes(entries[index].rank, entries[(index - 1) / 2].rank) {
            siftUp(index)
        } else {
            siftDown(index)
        }
    }

    private mutating func move(from source: Int, to destination: Int) {
        entries[destination] = entries[source]
        positions[Int(entries[destination].slot)] = Int32(destination)
    }

    private mutating func siftUp(_ start: Int) {
        var index = start
        let entry = entries[index]
        while index > 0 {
            let parent = (index - 1) / 2
            guard KeyRank.precedes(entry.rank, entries[parent].rank) else { break }
            move(from: parent, to: index)
            index = parent
        }
        entries[index] = entry
        positions[Int(entry.slot)] = Int32(index)
    }

    private mutating func siftDown(_ start: Int) {
        var index = start
        let entry = entries[index]
        let count = entries.count
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            let right = left + 1
            let child = right < count && KeyRank.precedes(entries[right].rank, entries[left].rank) ? right : left
            guard KeyRank.precedes(entries[child].rank, entry.rank) else { break }
            move(from: child, to: index)
            index = child
        }
        entries[index] = entry
        positions[Int(entry.slot)] = Int32(index)
    }
}
