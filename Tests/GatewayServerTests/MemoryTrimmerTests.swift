import Logging
import Synchronization
import Testing
import TestSupport
@testable import GatewayHTTP
@testable import GatewayServer

/// After a burst, once the gateway is quiet, the memory it freed goes back to the system: once,
/// and again when the idle upstream connections it left have been closed.
struct MemoryTrimmerTests {
    @Test func quietAfterActivityFiresOnceAfterAQuietInterval() {
        var quiet = QuietAfterActivity(started: 0)
        // (requests started so far, running now, should it trim, why)
        let observations: [(Int, Int, Bool, Comment)] = [
            (0, 0, false, "nothing happened yet"),
            (5, 2, false, "busy"),
            (9, 0, false, "requests started during the interval"),
            (9, 0, true, "quiet after activity"),
            (9, 0, false, "once"),
            (9, 1, false, "a long request still running"),
            (9, 0, true, "it ended: activity since the last trim"),
            (10, 0, false, "a request"),
            (11, 0, false, "steady light traffic never trims"),
            (11, 0, true, "quiet again"),
        ]
        Self.check(&quiet, observations)
    }

    /// Once more when the quiet has lasted long enough for the upstream pools to close the
    /// connections the burst left idle; activity starts the count over.
    @Test func quietAfterActivityFiresAgainAfterALongerQuiet() {
        var quiet = QuietAfterActivity(started: 0, againAfter: 4)
        let observations: [(Int, Int, Bool, Comment)] = [
            (3, 0, false, "requests"),
            (3, 0, true, "quiet after activity: the first trim"),
            (3, 0, false, "1 interval after it"),
            (3, 0, false, "2"),
            (3, 0, false, "3"),
            (3, 0, true, "4 intervals after the first trim: the idle pooled connections are closed by now"),
            (3, 0, false, "twice per quiet spell, no more"),
            (3, 0, false, "still quiet"),
            (4, 0, false, "a request"),
            (4, 0, true, "quiet again: first trim"),
            (4, 0, false, "1"),
            (5, 0, false, "a request before the second: the count starts over"),
            (5, 0, true, "first trim"),
            (5, 0, false, "1"),
            (5, 0, false, "2"),
            (5, 1, false, "a request running"),
            (5, 0, true, "quiet again after it: first trim"),
            (5, 0, false, "1"),
            (5, 0, false, "2"),
            (5, 0, false, "3"),
            (5, 0, true, "4"),
        ]
        Self.check(&quiet, observations)
    }

    /// Feeds `observations` (requests started so far, running now, should it trim, why) in order.
    static func check(_ quiet: inout QuietAfterActivity, _ observations: [(Int, Int, Bool, Comment)]) {
        for (started, running, trims, why) in observations {
            #expect(quiet.observe(started: started, running: running) == trims, why)
        }
    }

    @Test func theServiceTrimsWhenRequestsHaveStoppedAndTheAllocatorCanBeTrimmed() async throws {
        #if canImport(Glibc)
        #expect(MemoryTrimmer.canTrim, "jemalloc's mallctl or glibc's malloc_trim is found")
        #endif
        MemoryTrimmer.returnFreeMemory()

        let tasks = ProxyTasks()
        let trims = Atomic<Int>(0)
        let trimmer = MemoryTrimmer(tasks: tasks, interval: .milliseconds(20), againAfter: .seconds(60), logger: Logger(label: "test")) {
            trims.add(1, ordering: .relaxed)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await trimmer.run() }
            try await waitUntil("three quiet intervals") { trimmer.intervalsObserved >= 3 }
            #expect(trims.load(ordering: .relaxed) == 0, "no request yet: nothing to give back")
            tasks.started()
            tasks.finished()
            // The interval with the request, then a quiet one.
            try await waitUntil("a trim after the request") { trims.load(ordering: .relaxed) >= 1 }
            let after = trimmer.intervalsObserved
            try await waitUntil("three more quiet intervals") { trimmer.intervalsObserved >= after + 3 }
            #expect(trims.load(ordering: .relaxed) == 1)
            group.cancelAll()
        }
    }

    @Test func theServiceTrimsAgainOnceTheQuietHasLastedAgainAfter() async throws {
        let tasks = ProxyTasks()
        let trims = Atomic<Int>(0)
        let trimmer = MemoryTrimmer(tasks: tasks, interval: .milliseconds(20), againAfter: .milliseconds(60), logger: Logger(label: "test")) {
            trims.add(1, ordering: .relaxed)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await trimmer.run() }
            tasks.started()  // after the trimmer was made: activity, however late `run` starts
            tasks.finished()
            try await waitUntil("a second trim, after againAfter") { trims.load(ordering: .relaxed) >= 2 }
            // More than twice againAfter (3 intervals) of quiet more: no third trim.
            let after = trimmer.intervalsObserved
            try await waitUntil("seven more quiet intervals") { trimmer.intervalsObserved >= after + 7 }
            #expect(trims.load(ordering: .relaxed) == 2, "once when quiet, once more after againAfter, then no more")
            group.cancelAll()
        }
    }
}
