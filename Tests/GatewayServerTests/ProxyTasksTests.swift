import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport
@testable import GatewayHTTP
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

    /// As the gateway stops them when the grace runs out: the service group cancels every
    /// service, then, as each one returns, still signals a graceful shutdown to the next. The
    /// writer must take the rows of the requests cancelled with it even after that signal.
    @Test func theWriterTakesRowsHandedOverAfterTheGraceRanOut() async throws {
        let database = try AppDatabase.inMemory()
        let tasks = ProxyTasks()
        // Rows wait 10 s before a write: one is still waiting when the group is cancelled. The
        // writer waits for stragglers only once it has been cancelled.
        let cancelled = Flag()
        let writer = RequestLogWriter(
            database: database, coalescing: .seconds(10),
            stragglers: {
                cancelled.set()
                return await tasks.idle(within: .seconds(60))
            },
            logger: Logger(label: "test")
        )
        var configuration = ServiceGroupConfiguration(services: [writer, tasks], logger: Logger(label: "test"))
        configuration.maximumGracefulShutdownDuration = .milliseconds(200)
        let group = ServiceGroup(configuration: configuration)
        tasks.started()  // a long stream: it ends only once cancelled
        let running = Task { try await group.run() }
        #expect(writer.enqueue(Self.row("waiting")))
        await group.triggerGracefulShutdown()
        try await waitUntil("the grace to run out and the writer to be cancelled") { cancelled.isSet }
        #expect(writer.enqueue(Self.row("late")), "the cancelled request's row")
        tasks.finished()
        try await running.value
        let rows = try await database.writer.read { try String.fetchAll($0, sql: "SELECT request_id FROM requests ORDER BY request_id") }
        #expect(rows == ["late", "waiting"])
        #expect(writer.droppedRows == 0)
    }

    static func row(_ id: String) -> RequestLogEntry {
        var entry = RequestLogEntry(requestId: id, startedAt: Date(), method: "POST", endpoint: "generateContent")
        entry.status = 499
        entry.outcome = .cancelled
        return entry
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
