import ServiceLifecycle
import Synchronization

/// The proxied requests being answered. Each runs in a task of its own, outside the server's
/// connection tasks, so on shutdown the service group waits here for the last of them, after the
/// server has closed its connections and before the request log is flushed for the last time:
/// no request row is lost to a shutdown.
final class ProxyTasks: Service, Sendable {
    private struct State {
        var running = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var running: Int { state.withLock { $0.running } }

    func started() {
        state.withLock { $0.running += 1 }
    }

    func finished() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.running -= 1
            guard state.running == 0 else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when no proxied request is being answered.
    func idle() async {
        await withCheckedContinuation { continuation in
            let now: Bool = state.withLock { state in
                guard state.running > 0 else { return true }
                state.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func run() async throws {
        try? await gracefulShutdown()
        await idle()
    }
}
