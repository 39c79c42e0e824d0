import Foundation
import GatewayCore

// MARK: - Waiting for a key to come back

extension ProxyHandler {
    /// What a request knows of its waits (`serve --max-queue-wait`): its place in line, the time
    /// it has waited in all, and whether it holds a turn (it was woken and its try is not over).
    struct Waiting {
        var ticket: WaitingRoom.Ticket?
        var waited: Duration = .zero
        var holdsTurn = false
        /// It may wait no more (its wait ran out, or the line was full).
        var ranOut = false
        /// The pairs that answered 429: tried again after a wait, once their cooldown is over.
        var throttled: Set<PairID> = []
    }

    /// What ``waitForKey(_:_:retryDeadline:)`` decided.
    enum WaitOutcome {
        /// Pick again: the request's turn came (or its wait ran out: one last look).
        case pickAgain
        /// Answer 429 with `Retry-After` as without waiting.
        case refuse
        /// The client went away while waiting.
        case cancelled
    }

    /// Every key is cooling for the request's model: waits for the first that can serve it,
    /// when it comes back within the request's remaining wait (`--max-queue-wait` in all) and its
    /// retry budget, and is one worth waiting for (``Scheduler/waitableReturn(model:now:)``: never
    /// a per-day or `limit: 0` cooldown). The wait holds no thread and no upstream connection.
    func waitForKey(_ exchange: Exchange, _ waiting: inout Waiting, retryDeadline: ContinuousClock.Instant) async -> WaitOutcome {
        let model = exchange.model
        // Woken, but the key was taken again: back in line, nobody else let go.
        endTurn(&waiting, model: model, throttled: true)
        guard waits.isOn, !waiting.ranOut else { return .refuse }
        let started = ContinuousClock.now
        let left = min(waits.maximumWait - waiting.waited, retryDeadline - started)
        guard left > .zero else { return .refuse }
        let now = Date()
        let deadline = now.addingTimeInterval(left / .seconds(1))
        let back = exchange.pin.map { pool.waitableReturn(key: $0.owner.keyID, model: model, now: now) }
            ?? pool.waitableReturn(model: model, now: now)
        guard let back, back <= deadline else { return .refuse }
        let ticket = waiting.ticket ?? waits.ticket()
        waiting.ticket = ticket
        let end = await waits.wait(model: model, ticket: ticket, wakeAt: back, deadline: deadline)
        waiting.waited += ContinuousClock.now - started
        exchange.recorder.waited(milliseconds: waiting.waited / .milliseconds(1))
        switch end {
        case .woken:
            waiting.holdsTurn = true
            return .pickAgain
        case .expired:
            waiting.ranOut = true
            metrics.waitExpired()
            return .pickAgain
        case .full:
            waiting.ranOut = true
            metrics.waitRefused()
            return .refuse
        case .cancelled:
            return .cancelled
        }
    }

    /// Ends the request's turn, if it holds one: `throttled` keeps the others waiting.
    func endTurn(_ waiting: inout Waiting, model: String, throttled: Bool) {
        guard waiting.holdsTurn else { return }
        waiting.holdsTurn = false
        waits.turnEnded(model: model, throttled: throttled)
    }
}

extension ProxyHandler.Failure {
    /// A 429 from Google (the key, or its project, cools).
    var isThrottle: Bool {
        if case .answer(_, _, _, .throttled, _) = self { return true }
        return false
    }
}
