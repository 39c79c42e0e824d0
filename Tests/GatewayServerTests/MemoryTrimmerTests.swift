import Logging
import Synchronization
import Testing
@testable import GatewayServer

/// After a burst, once the gateway is quiet, the memory it freed goes back to the system, once.
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
        for (started, running, trims, why) in observations {
            let fired = quiet.observe(started: started, running: running)
            #expect(fired == trims, why)
        }
    }

    @Test func theServiceTrimsWhenRequestsHaveStoppedAndTheAllocatorCanBeTrimmed() async throws {
        #if canImport(Glibc)
        #expect(MemoryTrimmer.canTrim, "glibc's malloc_trim is found")
        #endif
        MemoryTrimmer.returnFreeMemory()

        let tasks = ProxyTasks()
        let trims = Atomic<Int>(0)
        let trimmer = MemoryTrimmer(tasks: tasks, interval: .milliseconds(20), logger: Logger(label: "test")) {
            trims.add(1, ordering: .relaxed)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await trimmer.run() }
            try await Task.sleep(for: .milliseconds(100))
            #expect(trims.load(ordering: .relaxed) == 0, "no request yet: nothing to give back")
            tasks.started()
            tasks.finished()
            // Within a bounded wait: the interval with the request, then a quiet one.
            for _ in 0..<100 where trims.load(ordering: .relaxed) == 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(trims.load(ordering: .relaxed) == 1)
            group.cancelAll()
        }
    }
}
