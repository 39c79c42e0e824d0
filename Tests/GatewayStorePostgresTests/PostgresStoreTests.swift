import Foundation
import GatewayCore
import GatewayStore
@testable import GatewayStorePostgres
import Logging
import TestSupport
import Testing

/// The PostgreSQL store against the throwaway server `scripts/test` starts
/// (`GATEWAY_TEST_POSTGRES`); skipped without one, except with CI=true.
@Suite struct PostgresStoreTests {
    /// A batch written again after its commit's answer was lost adds nothing: each request is
    /// one row and counted once in the daily totals.
    @Test func aBatchWrittenTwiceIsCountedOnce() async throws {
        guard let location = try await freshDatabase() else { return }
        try await PostgresStore.with(location, logger: Logger(label: "test")) { store in
            try await store.registerInstance(name: "test")
            let started = Date()
            let batch = (0..<50).map { index in
                var entry = RequestLogEntry(requestId: String(format: "test-%05d", index), startedAt: started, method: "POST", endpoint: "generateContent")
                entry.model = "gemini-2.5-flash"
                entry.clientName = "app"
                entry.outcome = .success
                entry.status = 200
                entry.promptTokens = 4
                entry.candidatesTokens = 6
                entry.totalTokens = 10
                entry.clientId = 1
                entry.attempts = [AttemptRow(attempt: 1, startedAt: started, keyId: 1, upstreamId: 1, status: 200, verdict: "success", latencyMs: 12.5)]
                return entry
            }
            try await store.insert(batch, streams: [])
            try await store.insert(batch, streams: [])
            try await store.insert(Array(batch.prefix(10)), streams: [])
            let usage = try await store.clientUsage(now: started)
            #expect(usage.lastMinute.count == 50)
            #expect(usage.lastMinute.map(\.tokens).reduce(0, +) == 500)
            let owners = try await store.resourceOwners(now: started)
            #expect(owners.isEmpty)
        }
        let rows = try await psql(location, """
            SELECT (SELECT COUNT(*) FROM requests) || ' ' || (SELECT COUNT(*) FROM attempts) || ' ' ||
                   (SELECT SUM(requests) FROM daily_usage) || ' ' || (SELECT SUM(attempts) FROM daily_key_usage) || ' ' ||
                   (SELECT SUM(attempts) FROM daily_upstream_latency)
            """)
        #expect(rows == "50 50 50 50 50")
    }

    /// The log's rows go to PostgreSQL as a JSON parameter (not `COPY`, see `insertRows`): text
    /// with quotes, backslashes, control characters and non-ASCII arrives as it was (NUL dropped,
    /// as PostgreSQL's text cannot hold it), nulls stay null, times keep their milliseconds.
    @Test func aRowsValuesArriveAsWritten() async throws {
        guard let location = try await freshDatabase() else { return }
        let reason = "quote \" backslash \\ tab \t newline \n cr \r bell \u{07} nul \u{0} é 漢 🙂 {\"json\": [1]}"
        let started = Date(timeIntervalSince1970: 1_765_000_000.125)
        try await PostgresStore.with(location, logger: Logger(label: "test")) { store in
            try await store.registerInstance(name: "test")
            var entry = RequestLogEntry(requestId: "test-escapes", startedAt: started, method: "POST", endpoint: "generateContent")
            entry.errorReason = reason
            entry.latencyMs = 12.25
            entry.ttfbMs = .nan
            entry.attempts = [AttemptRow(attempt: 1, startedAt: started, keyId: nil, upstreamId: 1, status: nil, verdict: "x\ny", latencyMs: 1e-5)]
            try await store.insert([entry], streams: [])
        }
        let stored = try await psql(location, """
            SELECT (error_reason = \(Self.literal(reason.replacingOccurrences(of: "\u{0}", with: "")))) || ' ' || (ttfb_ms IS NULL) || ' ' ||
                latency_ms || ' ' || (client_id IS NULL) || ' ' || to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')
            FROM requests WHERE request_id = 'test-escapes'
            """)
        #expect(stored == "true true 12.25 true 2025-12-06 05:46:40.125")
        let attempt = try await psql(location, "SELECT (verdict = E'x\\ny') || ' ' || (key_id IS NULL) || ' ' || (status IS NULL) || ' ' || latency_ms FROM attempts")
        #expect(attempt == "true true true 1e-05")
    }

    /// `text` as a PostgreSQL string literal (E'…' with backslashes and quotes escaped).
    static func literal(_ text: String) -> String {
        "E'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// What one instance writes is read by another, once, and never by itself.
    @Test func sharedChangesReachTheOtherInstanceOnly() async throws {
        guard let location = try await freshDatabase() else { return }
        try await PostgresStore.with(location, logger: Logger(label: "a")) { a in
            try await PostgresStore.with(location, logger: Logger(label: "b")) { b in
                let (idA, idB) = (try await a.registerInstance(name: "a"), try await b.registerInstance(name: "b"))
                #expect(idA != idB)
                _ = try await a.importLists(keys: ListFile.parseKeys(Data("AIzaSyFAKE-test-key-number-one-00000001\n".utf8)), upstreams: nil, now: Date())
                #expect(try await a.changesByOthers().isEmpty)
                #expect(try await b.changesByOthers().isEmpty)
                // B listens; its doorbell rings once when it is connected, then at each NOTIFY.
                let listener = Task { await b.listen() }
                defer { listener.cancel() }
                #expect(await b.waitForChanges(timeout: .seconds(30)), "B's listener connected")
                let cooldown = KeyCooldown(keyID: 1, model: "gemini-2.5-flash", until: Date().addingTimeInterval(60), reason: "RATE_LIMIT_EXCEEDED")
                try await a.apply([.keyCooldown(cooldown), .upstreamRecovered(id: 1)], lastUsed: LastUsedBatch(keys: [1: Date()]), now: Date())
                #expect(await b.waitForChanges(timeout: .seconds(30)), "A's NOTIFY rang B's doorbell")
                let seen = try await b.changesByOthers()
                #expect(seen.count == 1)
                if case .keyCooldown(let got) = seen.first {
                    #expect(got.keyID == 1 && got.model == cooldown.model && got.reason == cooldown.reason)
                    #expect(abs(got.until.timeIntervalSince(cooldown.until)) < 0.001)
                } else {
                    Issue.record("expected the key's cooldown, got \(seen)")
                }
                #expect(try await b.changesByOthers().isEmpty, "read once")
                #expect(try await a.changesByOthers().isEmpty, "an instance skips its own")
            }
        }
    }

    /// The streams an instance left running when it died are logged `interrupted` by another,
    /// also when that instance came back at once under another id: by the old id's stale
    /// heartbeat, while serving. A live instance's streams are left alone, the check while
    /// serving never takes this instance's own, and the start takes only its own.
    @Test func theStreamsOfAnInstanceThatDiedAreRecoveredByAnother() async throws {
        guard let location = try await freshDatabase() else { return }
        try await PostgresStore.with(location, logger: Logger(label: "a")) { a in
            try await PostgresStore.with(location, logger: Logger(label: "b")) { b in
                let (idA, idB) = (try await a.registerInstance(name: "a"), try await b.registerInstance(name: "b"))
                func stream(of instance: Int32, _ number: Int) -> RequestLogEntry {
                    // A request id: 11 hex digits of time, 4 of the instance, 5 of a counter.
                    var entry = RequestLogEntry(requestId: "00000000000" + String(format: "%04x%05d", instance, number),
                                                startedAt: Date(), method: "POST", endpoint: "streamGenerateContent")
                    entry.isStream = true
                    entry.outcome = .success
                    entry.status = 200
                    entry.responseBytes = 100
                    return entry
                }
                let (ofA, ofB) = (stream(of: idA, 1), stream(of: idB, 1))
                try await a.insert([], streams: [ofA])
                try await b.insert([], streams: [ofB])

                #expect(try await b.recoverOrphanedStreams().isEmpty, "A is alive, and B's own are running")
                _ = try await psql(location, "UPDATE gateway_instances SET heartbeat_at = now() - interval '1 hour' WHERE id = \(idA)")
                let recovered = try await b.recoverOrphanedStreams()
                #expect(recovered.map(\.requestId) == [ofA.requestId])
                #expect(try await b.recoverOrphanedStreams().isEmpty, "once")
                // At start, an instance's own id's streams are its last run's: recovered.
                #expect(try await b.recoverInterruptedStreams().map(\.requestId) == [ofB.requestId])
                // Another id's streams are not taken at start (after an outage of the database
                // every other instance's heartbeat is old), only by the check while serving.
                let ofGone = stream(of: 0x0999, 1)
                try await b.insert([], streams: [ofGone])
                #expect(try await b.recoverInterruptedStreams().isEmpty)
                #expect(try await b.recoverOrphanedStreams().map(\.requestId) == [ofGone.requestId])
            }
        }
        let rows = try await psql(location, """
            SELECT string_agg(outcome || ':' || error_reason, ',') || ' ' || (SELECT COUNT(*) FROM streams_in_flight)
                || ' ' || (SELECT SUM(requests) FROM daily_usage) FROM requests
            """)
        #expect(rows == "interrupted:GATEWAY_STOPPED,interrupted:GATEWAY_STOPPED,interrupted:GATEWAY_STOPPED 0 3")
    }

    /// After an outage of the database every instance's heartbeat is old. An instance starting
    /// then takes an id never used, not the id of one still serving; once all are used, the one
    /// not heard of for longest.
    @Test func anInstanceStartingAfterAnOutageTakesNoLiveInstancesId() async throws {
        guard let location = try await freshDatabase() else { return }
        try await PostgresStore.with(location, logger: Logger(label: "a")) { a in
            let idA = try await a.registerInstance(name: "a")
            _ = try await psql(location, "UPDATE gateway_instances SET heartbeat_at = now() - interval '1 hour'")
            try await PostgresStore.with(location, logger: Logger(label: "b")) { b in
                let idB = try await b.registerInstance(name: "b")
                #expect(idB != idA, "A's heartbeat is stale, but ids never used come first")
            }
            // Every id used, all stale: the stalest is taken.
            _ = try await psql(location, """
                INSERT INTO gateway_instances (id, name, started_at, heartbeat_at)
                SELECT g, 'gone', now(), now() - interval '1 hour' FROM generate_series(1, 65535) AS g
                ON CONFLICT (id) DO UPDATE SET heartbeat_at = now() - interval '1 hour';
                UPDATE gateway_instances SET heartbeat_at = now() - interval '2 hours' WHERE id = 4242
                """)
            try await PostgresStore.with(location, logger: Logger(label: "c")) { c in
                let idC = try await c.registerInstance(name: "c")
                #expect(idC == 4242)
            }
        }
    }

    /// The look for dead instances' streams waits until this instance's heartbeats have gone
    /// through for a while, again after each failure: after an outage the others need time to
    /// beat again. Then it runs at most once an interval.
    @Test func theOrphanCheckWaitsForTheHeartbeatsToSettle() {
        var state = PostgresStore.State()
        let start = ContinuousClock.now
        func beat(_ succeeded: Bool, at seconds: Int) -> Bool {
            state.heartbeat(succeeded: succeeded, at: start + .seconds(seconds), interval: .seconds(60), settle: .seconds(30))
        }
        #expect(!beat(true, at: 0), "the first heartbeat after start")
        #expect(!beat(true, at: 10))
        #expect(beat(true, at: 30), "30 s of heartbeats")
        #expect(!beat(true, at: 40), "within the interval")
        #expect(!beat(false, at: 100), "a heartbeat failed: the database is away")
        #expect(!beat(true, at: 300), "back after an outage")
        #expect(!beat(true, at: 320))
        #expect(beat(true, at: 330), "30 s after the outage")
    }
}

/// A new database on the test server, or nil (skip) without one.
func freshDatabase() async throws -> PostgresLocation? {
    let environment = ProcessInfo.processInfo.environment
    guard let server = environment["GATEWAY_TEST_POSTGRES"], !server.isEmpty else {
        if environment["CI"] == "true" { Issue.record("GATEWAY_TEST_POSTGRES is not set: scripts/test starts the server") }
        return nil
    }
    let name = "gw_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    let admin = try PostgresLocation.parse(server, password: environment["PGPASSWORD"]).get()
    _ = try await psql(admin, "CREATE DATABASE \(name)")
    var location = admin
    location.database = name
    return location
}

func psql(_ location: PostgresLocation, _ sql: String) async throws -> String {
    let child = try await ChildProcess("/usr/bin/env", ["psql", location.description, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                       environment: ProcessInfo.processInfo.environment)
    guard await child.waitForExit() == 0 else { throw StoreError.database("psql failed: \(child.stderr)") }
    return child.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}
