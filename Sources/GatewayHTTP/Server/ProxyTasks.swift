import ServiceLifecycle
import Synchronization

/// The proxied requests being answered. Each runs in a task of its own, outside the server's
/// connection tasks, so on shutdown the service group waits here for the last of them, after the
/// server has closed its connections and before the request log is flushed for the last time:
/// no request row is lost to a shutdown.
///
/// Every request counts itself in and out: an atomic, not a lock that the event loops would
/// share (a loop preempted while holding it would stall the other).
public final class ProxyTasks: Service, Sendable {
    private let count = Atomic<Int>(0)
    /// Requests started since the gateway started (for ``MemoryTrimmer``: was there activity?).
    private let total = Atomic<Int>(0)
    /// Someone waits for the end (shutdown): only then does the last request look for waiters.
    private let draining = Atomic<Bool>(false)
    private let waiters = Mutex(Waiters())
    private let nextWaiter = Atomic<Int>(0)

    private struct Waiters {
        var waiting: [Int: CheckedContinuation<Void, Never>] = [:]
        /// Waiters cancelled before they were registered (or after they were resumed: a few ids
        /// at shutdown, never more).
        var cancelled: Set<Int> = []
    }

    public init() {}

    public var running: Int { count.load(ordering: .sequentiallyConsistent) }

    /// Proxied requests started so far.
    public var startedTotal: Int { total.load(ordering: .relaxed) }

    public func started() {
        count.add(1, ordering: .relaxed)
        total.add(1, ordering: .relaxed)
    }

    /// Counts a request in, unless `limit` requests are running already (`limit` 0: no limit);
    /// false when it is not counted (the caller answers it as overloaded). One compare-and-swap
    /// as a rule: the count never goes over the limit, not even for a moment, so a request is
    /// never refused for room that another refused request only seemed to take.
    public func start(within limit: Int) -> Bool {
        guard limit > 0 else {
            started()
            return true
        }
        var running = count.load(ordering: .relaxed)
        while running < limit {
            let (exchanged, now) = count.weakCompareExchange(
                expected: running, desired: running + 1, successOrdering: .relaxed, failureOrdering: .relaxed
            )
            if exchanged {
                total.add(1, ordering: .relaxed)
                return true
            }
            running = now
        }
        return false
    }

    public func finished() {
        // Sequentially consistent with `idle()`'s store and load: one of the two sees the other.
        if count.subtract(1, ordering: .sequentiallyConsistent).newValue == 0, draining.load(ordering: .sequentiallyConsistent) {
            wake()
        }
    }

    /// Returns when no proxied request is being answered, or when the waiting task is cancelled
    /// (the service group's shutdown grace is over).
    public func idle() async {
        draining.store(true, ordering: .sequentiallyConsistent)
        let id = nextWaiter.add(1, ordering: .relaxed).oldValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let cancelled = waiters.withLock { waiters in
                    if waiters.cancelled.remove(id) != nil { return true }
                    waiters.waiting[id] = continuation
                    return false
                }
                if cancelled {
                    continuation.resume()
                } else {
                    // After registering: a request that ended in between has found the waiter, or this does.
                    wake()
                }
            }
        } onCancel: {
            // Only this waiter: another one (the log writer's, waiting for the last rows) waits on.
            let continuation = waiters.withLock { waiters in
                let continuation = waiters.waiting.removeValue(forKey: id)
                if continuation == nil { waiters.cancelled.insert(id) }
                return continuation
            }
            continuation?.resume()
        }
    }

    /// Returns when no proxied request is being answered, or after `limit`, with the number of
    /// requests still running then.
    public func idle(within limit: Duration) async -> Int {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.idle() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        return running
    }

    private func wake() {
        guard running == 0 else { return }
        // Whoever takes the waiters resumes them: each exactly once.
        let ready = waiters.withLock { waiters in
            defer { waiters.waiting = [:] }
            return waiters.waiting.values
        }
        for waiter in ready { waiter.resume() }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await idle()
    }
}
