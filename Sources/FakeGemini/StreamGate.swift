import Synchronization

extension FakeGemini {
    /// Paces a streamed answer deterministically: before writing each event, the fake takes one permit
    /// from the gate, waiting while there is none. A test can so hold a stream after event 1, check what
    /// the client has seen, and then let the rest go, with no timing guesses.
    ///
    /// ```swift
    /// let gate = FakeGemini.StreamGate(permits: 1)     // event 0 goes at once, event 1 waits
    /// fake.setRules([.init(reply: .sse(events: evs, gate: gate))])
    /// ... client reads event 0 ...; #expect(fake.eventLog().count == 1)
    /// gate.open()                                     // or gate.allow(1)
    /// ```
    /// Waiting is cancelled when the client goes away or the fake stops.
    public final class StreamGate: Sendable {
        private struct Waiter {
            let id: Int
            let continuation: CheckedContinuation<Void, any Error>
        }

        private struct State {
            var permits: Int
            var isOpen = false
            var nextID = 0
            var waiters: [Waiter] = []
            var cancelledIDs: Set<Int> = []
        }

        private let state: Mutex<State>

        /// - Parameter permits: events that may be written before the gate must be opened further.
        public init(permits: Int = 0) {
            self.state = Mutex(State(permits: permits))
        }

        /// Lets `count` more events through.
        public func allow(_ count: Int = 1) {
            let resumed: [Waiter] = state.withLock { state in
                var count = count
                var resumed: [Waiter] = []
                while count > 0, !state.waiters.isEmpty {
                    resumed.append(state.waiters.removeFirst())
                    count -= 1
                }
                state.permits += count
                return resumed
            }
            for waiter in resumed { waiter.continuation.resume() }
        }

        /// Lets every event through from now on.
        public func open() {
            let resumed: [Waiter] = state.withLock { state in
                state.isOpen = true
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in resumed { waiter.continuation.resume() }
        }

        /// Takes a permit, waiting for one.
        func acquire() async throws {
            let id: Int? = state.withLock { state in
                if state.isOpen { return nil }
                if state.permits > 0 {
                    state.permits -= 1
                    return nil
                }
                state.nextID += 1
                return state.nextID
            }
            guard let id else { return }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    enum Action { case wait, proceed, cancelled }
                    let action: Action = state.withLock { state in
                        if state.cancelledIDs.remove(id) != nil { return .cancelled }
                        if state.isOpen { return .proceed }
                        if state.permits > 0 {
                            state.permits -= 1
                            return .proceed
                        }
                        state.waiters.append(Waiter(id: id, continuation: continuation))
                        return .wait
                    }
                    switch action {
                    case .wait: break
                    case .proceed: continuation.resume()
                    case .cancelled: continuation.resume(throwing: CancellationError())
                    }
                }
            } onCancel: {
                let waiter: Waiter? = state.withLock { state in
                    if let i = state.waiters.firstIndex(where: { $0.id == id }) {
                        return state.waiters.remove(at: i)
                    }
                    state.cancelledIDs.insert(id)
                    return nil
                }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }
    }
}
