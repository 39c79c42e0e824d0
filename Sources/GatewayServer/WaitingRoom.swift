import Foundation
import GatewayCore
import Synchronization

/// The requests waiting for a key to come back (`serve --max-queue-wait`, `--max-queued`): a
/// ``WaitQueue`` behind a lock, each waiter a suspended task (a continuation: no thread, no
/// upstream connection), woken by one timer set at the queue's next event. A waiter whose task is
/// cancelled (its client hung up) leaves the line at once.
final class WaitingRoom: Sendable {
    /// How a wait ended.
    enum End: Sendable {
        /// Its turn came: pick again.
        case woken
        /// Its deadline came first.
        case expired
        /// Its client went away.
        case cancelled
        /// ``WaitQueue/capacity`` requests were waiting already: it was not let in.
        case full
    }

    typealias Queue = WaitQueue<CheckedContinuation<End, Never>>
    typealias Ticket = Queue.Ticket

    private struct State {
        var queue: Queue
        var timer: Task<Void, Never>?
        /// The instant the timer is set for (reference-date seconds).
        var armedFor = Double.infinity
    }

    private let state: Mutex<State>
    private let expiredCount = Atomic<Int>(0)
    /// The longest a request waits in all; zero: requests never wait.
    let maximumWait: Duration
    /// Most waiters at once.
    let capacity: Int

    init(maximumWait: Duration, capacity: Int) {
        self.maximumWait = maximumWait
        self.capacity = capacity
        state = Mutex(State(queue: Queue(capacity: capacity)))
    }

    deinit {
        state.withLock { $0.timer?.cancel() }
    }

    /// Whether requests may wait at all.
    var isOn: Bool { maximumWait > .zero && capacity > 0 }

    /// Requests waiting now.
    var waiting: Int { state.withLock { $0.queue.count } }

    /// Waits that ran out since the start.
    var expired: Int { expiredCount.load(ordering: .relaxed) }

    /// A place in line for a request that waits for the first time.
    func ticket() -> Ticket {
        state.withLock { $0.queue.issueTicket() }
    }

    /// Waits until it is the request's turn after `wakeAt` (when a key it can use comes back), or
    /// until `deadline`, or until its task is cancelled.
    func wait(model: String, ticket: Ticket, wakeAt: Date, deadline: Date) async -> End {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<End, Never>) in
                let refused: End? = state.withLock { state in
                    guard state.queue.enqueue(
                        continuation, ticket: ticket, model: model,
                        wakeAt: wakeAt.timeIntervalSinceReferenceDate, deadline: deadline.timeIntervalSinceReferenceDate
                    ) else { return .full }
                    // Cancelled before it was in line: the handler found nothing to take out.
                    if Task.isCancelled {
                        _ = state.queue.remove(ticket: ticket, model: model)
                        return .cancelled
                    }
                    arm(&state)
                    return nil
                }
                if let refused { continuation.resume(returning: refused) }
            }
        } onCancel: {
            let continuation = state.withLock { $0.queue.remove(ticket: ticket, model: model) }
            continuation?.resume(returning: .cancelled)
        }
    }

    /// A woken request's try is over: `throttled` when its key answered 429 again (or it found
    /// none free), which keeps the others waiting; otherwise more of them are let go.
    func turnEnded(model: String, throttled: Bool) {
        let released = state.withLock { state in
            let released = state.queue.turnEnded(model: model, throttled: throttled, now: Date().timeIntervalSinceReferenceDate)
            arm(&state)
            return released
        }
        for continuation in released { continuation.resume(returning: .woken) }
    }

    // MARK: - The timer

    /// Sets the timer for the queue's next event, when that is sooner than the one it is set for.
    private func arm(_ state: inout State) {
        guard let next = state.queue.nextEvent else { return }
        guard next < state.armedFor else { return }
        state.timer?.cancel()
        state.armedFor = next
        let delay = max(0, next - Date().timeIntervalSinceReferenceDate)
        state.timer = Task { [weak self] in
            try? await Task.sleep(for: .seconds(delay))
            guard !Task.isCancelled else { return }
            self?.fire()
        }
    }

    /// Wakes what is due and expires what ran out, then sets the timer for the next event.
    private func fire() {
        let (released, expired) = state.withLock { state in
            state.timer = nil
            state.armedFor = .infinity
            // A hair late rather than early: a timer that fires a moment before its instant finds
            // nothing due and would set itself again for that same instant.
            let due = state.queue.due(now: Date().timeIntervalSinceReferenceDate + 0.001)
            arm(&state)
            return due
        }
        if !expired.isEmpty { expiredCount.add(expired.count, ordering: .relaxed) }
        for continuation in expired { continuation.resume(returning: .expired) }
        for continuation in released { continuation.resume(returning: .woken) }
    }
}
