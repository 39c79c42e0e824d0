import Foundation

// MARK: - WaitQueue

/// The requests waiting for a key to come back, per model, in arrival order: the rules of the
/// bounded wait (`serve --max-queue-wait`, `--max-queued`), without the waiting itself (the server
/// keeps one of these behind a lock, with a continuation as each waiter's `Payload`, and one
/// timer at ``nextEvent``).
///
/// - A request enters only when every key is cooling for its model and the soonest one that can
///   serve it ends before its deadline (``Scheduler/waitableReturn(model:now:)``); it gives that
///   end as its `wakeAt`. Over ``capacity`` waiters, ``enqueue(_:ticket:model:wakeAt:deadline:)``
///   refuses.
/// - Once the earliest `wakeAt` of a model has come, its waiters are released one *turn* at a
///   time, oldest ticket first: a released waiter picks again and makes its try. A try that is
///   not throttled ends its turn with two more released (the key took one more: try more, as TCP's
///   slow start does); a throttled one releases nobody, and its waiter comes back with its old
///   ticket (first in line again), within its remaining time. So a key that comes back serves as
///   many waiters as it can take, and its next 429 keeps the rest waiting instead of sending them
///   all to it at once.
/// - A turn that has not ended after ``turnGrace`` seconds (a long answer whose head comes only at
///   its end) lets one more waiter go, so that slow answers do not hold the line.
/// - A waiter whose deadline comes first is expired (its request answers 429 with `Retry-After`).
///
/// Times are seconds since the reference date, as in ``Scheduler``. Not thread-safe.
public struct WaitQueue<Payload> {
    /// A place in line: lower tickets are served first. A waiter sent back after its turn keeps its ticket.
    public struct Ticket: Sendable, Hashable, Comparable {
        public let value: UInt64
        public static func < (lhs: Ticket, rhs: Ticket) -> Bool { lhs.value < rhs.value }
    }

    struct Waiter {
        var ticket: Ticket
        var payload: Payload
        var deadline: Double
    }

    /// The waiters of one model, by ticket, and the turns given out.
    struct Line {
        var waiters: [Waiter] = []
        /// When the first key for the model comes back, as the latest waiter to enter saw it:
        /// the freshest knowledge (a key that answered 429 again after a wake pushes it back for
        /// everyone in line).
        var wakeAt = Double.infinity
        var turnsOut = 0
        var lastRelease = -Double.infinity

        var earliestDeadline: Double { waiters.reduce(Double.infinity) { min($0, $1.deadline) } }
    }

    /// Most waiters at once (all models); more are refused.
    public let capacity: Int
    /// Seconds a turn holds the line before one more waiter is let go anyway.
    public let turnGrace: Double
    var lines: [String: Line] = [:]
    var nextTicket: UInt64 = 0
    /// Waiters now.
    public private(set) var count = 0

    /// A queue of at most `capacity` waiters.
    public init(capacity: Int, turnGrace: Double = 1) {
        self.capacity = capacity
        self.turnGrace = turnGrace
    }

    /// The next place in line (taken when a request first waits).
    public mutating func issueTicket() -> Ticket {
        nextTicket &+= 1
        return Ticket(value: nextTicket)
    }

    /// Adds a waiter for `model` that wants to be woken at `wakeAt` (when a key it can use comes
    /// back: the line's wake for all its waiters from now on) and must be answered by `deadline`. False (nothing added) when ``capacity`` waiters
    /// are waiting already.
    public mutating func enqueue(_ payload: Payload, ticket: Ticket, model: String, wakeAt: Double, deadline: Double) -> Bool {
        guard count < capacity else { return false }
        let waiter = Waiter(ticket: ticket, payload: payload, deadline: deadline)
        var line = lines[model] ?? Line()
        line.wakeAt = wakeAt
        // Newcomers go last (the common case); a waiter sent back goes to its place.
        if let last = line.waiters.last, last.ticket > ticket {
            let index = line.waiters.firstIndex { $0.ticket > ticket } ?? line.waiters.endIndex
            line.waiters.insert(waiter, at: index)
        } else {
            line.waiters.append(waiter)
        }
        lines[model] = line
        count += 1
        return true
    }

    /// Takes a waiter out of line (its client went away); nil when it is not waiting.
    public mutating func remove(ticket: Ticket, model: String) -> Payload? {
        guard var line = lines[model], let index = line.waiters.firstIndex(where: { $0.ticket == ticket }) else { return nil }
        let waiter = line.waiters.remove(at: index)
        count -= 1
        store(line, for: model)
        return waiter.payload
    }

    /// What is due at `now`: the waiters whose deadline has come (expired), and those whose turn
    /// it is (released).
    public mutating func due(now: Double) -> (released: [Payload], expired: [Payload]) {
        var released: [Payload] = []
        var expired: [Payload] = []
        for model in Array(lines.keys) {
            guard var line = lines[model] else { continue }
            let before = line.waiters.count
            line.waiters.removeAll { waiter in
                guard waiter.deadline <= now else { return false }
                expired.append(waiter.payload)
                return true
            }
            count -= before - line.waiters.count
            if !line.waiters.isEmpty, line.wakeAt <= now, line.turnsOut == 0 || now >= line.lastRelease + turnGrace {
                released.append(release(&line, now: now))
            }
            store(line, for: model)
        }
        return (released, expired)
    }

    /// A released waiter's try is over (or it found no key after all): `throttled` when the key
    /// it got answered 429 or none was free, so nobody else is let go; otherwise two more
    /// waiters are (returned, to be woken).
    public mutating func turnEnded(model: String, throttled: Bool, now: Double) -> [Payload] {
        guard var line = lines[model] else { return [] }
        line.turnsOut = max(0, line.turnsOut - 1)
        var released: [Payload] = []
        if !throttled {
            for _ in 0..<2 where !line.waiters.isEmpty {
                released.append(release(&line, now: now))
            }
        }
        store(line, for: model)
        return released
    }

    /// When ``due(now:)`` has something to do next (a wake, a deadline, a turn's grace); nil when
    /// nobody waits.
    public var nextEvent: Double? {
        var next = Double.infinity
        for line in lines.values where !line.waiters.isEmpty {
            next = min(next, line.earliestDeadline)
            next = min(next, line.turnsOut == 0 ? line.wakeAt : max(line.wakeAt, line.lastRelease + turnGrace))
        }
        return next.isFinite ? next : nil
    }

    /// Waiters of `model` now.
    public func waiting(model: String) -> Int { lines[model]?.waiters.count ?? 0 }

    // MARK: Helpers

    private mutating func release(_ line: inout Line, now: Double) -> Payload {
        let waiter = line.waiters.removeFirst()
        line.turnsOut += 1
        line.lastRelease = now
        count -= 1
        return waiter.payload
    }

    /// Keeps a line while it has waiters or turns out; drops it otherwise.
    private mutating func store(_ line: Line, for model: String) {
        lines[model] = line.waiters.isEmpty && line.turnsOut == 0 ? nil : line
    }
}

extension WaitQueue: Sendable where Payload: Sendable {}
extension WaitQueue.Waiter: Sendable where Payload: Sendable {}
extension WaitQueue.Line: Sendable where Payload: Sendable {}
