import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import NIOCore
import Testing
import TestSupport

/// Scenario 11 and live reloads: a graceful shutdown loses no request and no row, and what the
/// CLI changes while serving is picked up without a restart.
@Suite struct LifecycleTests {
    let a = testKey("a"), b = testKey("b"), c = testKey("c")

    @Test func aGracefulShutdownFinishesFiftyRequestsInFlightAndLogsEachOnce() async throws {
        let fake = try await FakeGemini.start()
        fake.setRules([.init(reply: .delay(.milliseconds(700), then: .ok))])
        let gateway = try await GatewayHarness.start(keys: [a, b], upstreams: [fake.baseURL])
        let results = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<50 { group.addTask { try await gateway.generate().status } }
                var statuses: [Int] = []
                for try await status in group { statuses.append(status) }
                return statuses
            }
        }
        // Every request is in flight at the upstream when the shutdown starts (as on SIGTERM).
        #expect(await fake.wait { $0.requestCount == 50 })
        try await gateway.stop()
        let statuses = try await results.value
        #expect(statuses.count == 50)
        #expect(statuses.allSatisfy { $0 == 200 })
        // The log was flushed before the process would exit: exactly one row per request.
        let reopened = try AppDatabase.open(path: gateway.databasePath)
        let (rows, distinct, attempts) = try reopened.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests")!,
             try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT request_id) FROM requests")!,
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM attempts")!)
        }
        #expect(rows == 50)
        #expect(distinct == 50)
        #expect(attempts == 50)
        await fake.stop()
        gateway.removeFiles()
    }

    @Test func aShutdownThatOutlastsItsGraceCancelsWhatIsStillRunningAndLogsIt() async throws {
        let fake = try await FakeGemini.start()
        // Five answers that would take a minute, and a stream whose second event never comes.
        let gate = FakeGemini.StreamGate(permits: 1)
        fake.setRules([
            .init(path: ":streamGenerateContent", reply: .sse(events: [#"{"candidates":[]}"#, #"{"candidates":[]}"#], gate: gate)),
            .init(reply: .delay(.seconds(60), then: .ok)),
        ])
        let gateway = try await GatewayHarness.start(keys: [a, b], upstreams: [fake.baseURL]) {
            $0.shutdownGracePeriod = .milliseconds(500)
        }
        let plain = (0..<5).map { _ in Task { try await gateway.generate().status } }
        let stream = Task { try await gateway.send(gateway.request("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")) }
        #expect(await fake.wait { $0.requestCount == 6 && $0.eventLog().count == 1 })  // the stream's first event is out

        let started = ContinuousClock.now
        try await gateway.stop()
        // The grace, then what is left is cancelled: not the minute the answers would take.
        #expect(ContinuousClock.now - started < .seconds(45), "the grace, then a cancel: not the minute the answers would take")
        for task in plain { _ = try? await task.value }
        _ = try? await stream.value

        // Every request has its row, written before the gateway stopped.
        let reopened = try AppDatabase.open(path: gateway.databasePath)
        let outcomes = try reopened.read { db in
            try String.fetchAll(db, sql: "SELECT outcome FROM requests ORDER BY outcome")
        }
        #expect(outcomes.count == 6, "\(outcomes) \(gateway.logs.all.suffix(30))")
        #expect(outcomes.filter { $0 == "cancelled" }.count + outcomes.filter { $0 == "truncated" }.count == 6)
        await fake.stop()
        gateway.removeFiles()
    }

    @Test func keysAndUpstreamsChangedWhileServingArePickedUpWithoutARestart() async throws {
        try await withGateway(keys: [a], fakes: 2) { gateway, fakes in
            // A new key imported while serving is used.
            _ = try gateway.database.importKeys(ListFile.parseKeys(Array(b.utf8)))
            try await gateway.waitForReload()
            for _ in 0..<4 { #expect(try await gateway.generate().status == 200) }
            let keysUsed = Set(fakes.flatMap { $0.received() }.compactMap(\.key))
            #expect(keysUsed == [a, b])

            // A disabled key and a disabled upstream are no longer used.
            try gateway.database.setKeyState(a, to: .disabled)
            try gateway.database.setUpstreamState(fakes[1].baseURL, to: .disabled)
            try await gateway.waitForReload()
            for fake in fakes { fake.clearReceived() }
            for _ in 0..<4 { #expect(try await gateway.generate().status == 200) }
            #expect(fakes[0].received().allSatisfy { $0.key == b })
            #expect(fakes[0].received().count == 4)
            #expect(fakes[1].received().isEmpty)
        }
    }

    @Test func restoringAKeyClearsItsCooldownInTheRunningGateway() async throws {
        try await withGateway(keys: [a]) { gateway, fakes in
            fakes[0].setRules([.init(times: 1, reply: .perMinuteThrottle(retryDelay: 3_600))])
            #expect(try await gateway.generate().status == 429)
            #expect(try await gateway.generate().status == 429)
            #expect(try await gateway.eventually { db in try !db.listKeys()[0].cooldowns.isEmpty })
            try gateway.database.setKeyState(a, to: .active)
            try await gateway.waitForReload()
            #expect(try await gateway.generate().status == 200)
        }
    }

    @Test func readinessFollowsThePool() async throws {
        try await withGateway(keys: []) { gateway, _ in
            let health = try await gateway.send(gateway.request("/healthz", method: .GET, token: .some(nil)))
            #expect(health.status == 200)
            var ready = try await gateway.send(gateway.request("/readyz", method: .GET, token: .some(nil)))
            #expect(ready.status == 503)
            _ = try gateway.database.importKeys(ListFile.parseKeys(Array(a.utf8)))
            try await gateway.waitForReload()
            ready = try await gateway.send(gateway.request("/readyz", method: .GET, token: .some(nil)))
            #expect(ready.status == 200)
            #expect(try ready.json()["active_keys"] as? Int == 1)
        }
    }
}
