import Synchronization
import Testing
@testable import GatewayServer

/// The count of proxied requests running, which a shutdown waits on: the service waits while
/// the server drains, and the request log's writer, cancelled, waits a moment for the rows of
/// the requests cancelled with it.
struct ProxyTasksTests {
    @Test func idleReturnsWhenTheLastRequestEnds() async throws {
        let tasks = ProxyTasks()
        tasks.started()
        tasks.started()
        let waiter = Task { await tasks.idle() }
        tasks.finished()
        try await Task.sleep(for: .milliseconds(50))
        #expect(tasks.running == 1)
        tasks.finished()
        await waiter.value
        #expect(tasks.running == 0)
        #expect(tasks.startedTotal == 2)
    }

    @Test func aCancelledWaiterDoesNotEndAnotherOnesWait() async throws {
        let tasks = ProxyTasks()
        tasks.started()
        let ended = Flag()
        // The service's wait, cancelled when the shutdown's grace is over, and the writer's.
        let service = Task { await tasks.idle() }
        let writer = Task {
            await tasks.idle()
            ended.set()
        }
        try await Task.sleep(for: .milliseconds(50))
        service.cancel()
        await service.value
        try await Task.sleep(for: .milliseconds(50))
        #expect(!ended.isSet, "still a request running")
        tasks.finished()
        await writer.value
        #expect(ended.isSet)
    }

    @Test func idleWithinALimitSaysHowManyAreStillRunning() async {
        let tasks = ProxyTasks()
        tasks.started()
        tasks.started()
        let clock = ContinuousClock()
        let started = clock.now
        #expect(await tasks.idle(within: .milliseconds(100)) == 2)
        #expect(clock.now - started >= .milliseconds(100))

        Task {
            try await Task.sleep(for: .milliseconds(20))
            tasks.finished()
            tasks.finished()
        }
        // Before the limit (after it, 2 would still be running).
        #expect(await tasks.idle(within: .seconds(60)) == 0)
    }

    @Test func aWaiterCancelledBeforeItWaitsReturnsAtOnce() async {
        let tasks = ProxyTasks()
        tasks.started()
        let waiter = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await tasks.idle()
        }
        await waiter.value
        #expect(tasks.running == 1)
    }
}

private final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
}
