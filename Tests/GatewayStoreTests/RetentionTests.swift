import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Logging
import Testing

/// Daily totals folded as rows are written; retention deletes old raw rows in small batches and
/// every report over the whole range still adds up.
@Suite struct RetentionTests {
    static let day: TimeInterval = 86_400

    /// A database with two keys and one upstream, in a temporary file (WAL, as in production).
    static func database(_ directory: TemporaryDirectory) throws -> (AppDatabase, keys: [Int64], upstream: Int64) {
        let store = try AppDatabase.open(path: directory.file("gateway.db"))
        _ = try store.importKeys(ListFile.parseKeys(Array("AIzaRetentionKey-0000000001\nAIzaRetentionKey-0000000002\n".utf8)))
        _ = try store.importUpstreams(ListFile.parseUpstreams(Array("https://relay.example.com\n".utf8)))
        let keys = try store.listKeys().map(\.id)
        let upstream = try store.listUpstreams()[0].id
        return (store, keys, upstream)
    }

    /// A logged request: `tokens` total tokens, one attempt per verdict (the last one's key serves it).
    static func entry(
        _ id: String, at date: Date, client: String = "alice", model: String = "gemini-2.5-flash",
        outcome: RequestOutcome = .success, keys: [Int64], upstream: Int64, tokens: Int = 10, verdicts: [String] = ["success"]
    ) -> RequestLogEntry {
        var entry = RequestLogEntry(requestId: id, startedAt: date, method: "POST", endpoint: "generateContent")
        entry.clientName = client
        entry.model = model
        entry.status = outcome == .success ? 200 : 429
        entry.outcome = outcome
        entry.keyId = keys[(verdicts.count - 1) % keys.count]
        entry.upstreamId = upstream
        entry.latencyMs = 100
        entry.ttfbMs = 40
        entry.promptTokens = tokens / 2
        entry.candidatesTokens = tokens - tokens / 2
        entry.totalTokens = tokens
        entry.usageStatus = outcome == .success ? .complete : .none
        entry.attempts = verdicts.enumerated().map { index, verdict in
            AttemptRow(attempt: index + 1, startedAt: date, keyId: keys[index % keys.count], upstreamId: upstream,
                       status: verdict == "success" ? 200 : 429, verdict: verdict, latencyMs: 50 + Double(index))
        }
        return entry
    }

    static func count(_ store: AppDatabase, _ sql: String, _ arguments: StatementArguments = []) throws -> Int {
        try store.read { db in try Int.fetchOne(db, sql: sql, arguments: arguments) ?? 0 }
    }

    static func retention(_ store: AppDatabase, days: Int = 30, batch: Int = 1_000, now: Date) -> RetentionService {
        RetentionService(
            database: store, settings: .init(retentionDays: days, batchSize: batch, pause: .milliseconds(1)),
            logger: Logger(label: "retention-test"), now: { now }
        )
    }

    // MARK: - Folding

    @Test func rowsAreFoldedAsTheyAreWrittenAndOnlyOnce() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try Self.database(directory)
        let now = Date()
        try await store.insert([
            Self.entry("r1", at: now, keys: keys, upstream: upstream, tokens: 10),
            Self.entry("r2", at: now, client: "bob", keys: keys, upstream: upstream, tokens: 20, verdicts: ["throttled", "success"]),
        ])
        // The same rows again (a retried batch) are ignored, and counted once.
        try await store.insert([Self.entry("r1", at: now, keys: keys, upstream: upstream, tokens: 10)])
        try await store.insert([Self.entry("r3", at: now, outcome: .throttled, keys: keys, upstream: upstream, tokens: 0, verdicts: ["throttled"])])
        try store.foldPendingRows()  // nothing pending: changes nothing

        #expect(try Self.count(store, "SELECT SUM(requests) FROM daily_usage") == 3)
        #expect(try Self.count(store, "SELECT SUM(total_tokens) FROM daily_usage") == 30)
        #expect(try Self.count(store, "SELECT SUM(errors) FROM daily_usage WHERE client = 'alice'") == 1)
        #expect(try Self.count(store, "SELECT SUM(throttled) FROM daily_usage") == 1)
        #expect(try Self.count(store, "SELECT SUM(attempts) FROM daily_key_usage") == 4)
        #expect(try Self.count(store, "SELECT SUM(throttled_attempts) FROM daily_key_usage") == 2)
        #expect(try Self.count(store, "SELECT SUM(requests) FROM daily_key_usage") == 3)
        #expect(try Self.count(store, "SELECT SUM(attempts) FROM daily_upstream_latency") == 4)
        #expect(try Self.count(store, "SELECT SUM(timed_attempts) FROM daily_upstream_usage") == 4)
        #expect(try Self.count(store, "SELECT requests_folded_through FROM log_state") == 3)
        #expect(try Self.count(store, "SELECT attempts_folded_through FROM log_state") == 4)
    }

    @Test func rowsLoggedBeforeTheMigrationAreFoldedByIt() throws {
        let queue = try DatabaseQueue()
        try AppDatabase.migrator.migrate(queue, upTo: "0001_initial")
        try queue.write { db in
            try db.execute(sql: """
                INSERT INTO upstreams (id, base_url, created_at, updated_at)
                VALUES (7, 'https://relay.example.com', '2026-09-01 00:00:00.000', '2026-09-01 00:00:00.000');
                INSERT INTO requests (request_id, started_at, client_name, method, endpoint, model, status, outcome,
                                      attempt_count, latency_ms, total_tokens, usage_status)
                VALUES ('old-1', '2026-10-01 10:00:00.000', 'alice', 'POST', 'generateContent', 'm', 200, 'success', 1, 80, 12, 'complete'),
                       ('old-2', '2026-10-01 11:00:00.000', 'alice', 'POST', 'generateContent', 'm', 400, 'client_error', 1, 20, 0, 'none'),
                       ('old-3', '2026-10-02 09:00:00.000', 'bob', 'POST', 'countTokens', 'm', 200, 'success', 1, 10, 0, 'none');
                INSERT INTO attempts (request_id, attempt, started_at, upstream_id, status, verdict, latency_ms)
                VALUES ('old-1', 1, '2026-10-01 10:00:00.000', 7, 200, 'success', 70),
                       ('old-2', 1, '2026-10-01 11:00:00.000', 7, 400, 'client_error', 15);
                """)
        }
        let store = try AppDatabase(writer: queue)
        let days = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT day, client, requests, errors, total_tokens FROM usage_by_client_day ORDER BY day, client")
        }
        #expect(days.map { [$0["day"] as String, $0["client"] as String] } == [["2026-10-01", "alice"], ["2026-10-02", "bob"]])
        #expect(days.map { $0["requests"] as Int } == [2, 1])
        #expect(days.map { $0["errors"] as Int } == [1, 0])
        #expect(days.map { $0["total_tokens"] as Int } == [12, 0])
        #expect(try Self.count(store, "SELECT SUM(attempts) FROM daily_upstream_usage WHERE upstream_id = 7") == 2)
        #expect(try Self.count(store, "SELECT requests_folded_through FROM log_state") == 3)
    }

    // MARK: - Pruning

    @Test func oldRowsGoTheirCountsStayAndReportsStillAddUp() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try Self.database(directory)
        let now = Date()
        let midnight = UTC.startOfDay(now)
        // 45 and 32 days old (pruned with 30 days kept), 10 days old and today (kept).
        var entries: [RequestLogEntry] = []
        for (age, count) in [(45.0, 7), (32.0, 5), (10.0, 3), (0.0, 2)] {
            let time = age == 0 ? now.addingTimeInterval(-1) : midnight.addingTimeInterval(-age * Self.day + 3_600)
            for index in 0..<count {
                entries.append(Self.entry("\(Int(age))-\(index)", at: time, client: index % 2 == 0 ? "alice" : "bob", keys: keys,
                                          upstream: upstream, tokens: 10 + index, verdicts: index == 0 ? ["throttled", "success"] : ["success"]))
            }
        }
        try await store.insert(entries)
        let everything = ReportRange(since: midnight.addingTimeInterval(-60 * Self.day), until: now.addingTimeInterval(60))
        let before = try Self.reports(store, everything)

        let pruned = try await Self.retention(store, batch: 3, now: now).prune()
        #expect(pruned == PruneBatch(requests: 12, attempts: 14))

        // Raw rows before the cutoff are gone, the rest are there.
        let cutoff = AppDatabase.retentionCutoff(retentionDays: 30, now: now)
        #expect(try Self.count(store, "SELECT COUNT(*) FROM requests WHERE started_at < ?", [cutoff]) == 0)
        #expect(try Self.count(store, "SELECT COUNT(*) FROM attempts WHERE started_at < ?", [cutoff]) == 0)
        #expect(try Self.count(store, "SELECT COUNT(*) FROM requests") == 5)
        #expect(try Self.count(store, "SELECT COUNT(*) FROM attempts") == 7)
        let state = try #require(try store.read { db in try Row.fetchOne(db, sql: "SELECT * FROM log_state") })
        #expect(state["pruned_before"] as Date? == cutoff)
        #expect(state["requests_pruned"] as Int == 12)
        #expect(state["attempts_pruned"] as Int == 14)

        // The daily totals still hold every row: every report over the whole range is unchanged.
        #expect(try Self.count(store, "SELECT SUM(requests) FROM daily_usage") == 17)
        let after = try Self.reports(store, everything)
        #expect(after == before)
        #expect(try store.usageReport(by: .client, range: everything, perDay: false).records.map { $0["requests"] }
                == [.integer(10), .integer(7)])

        // A range that cuts a pruned day counts that day whole, and says so.
        let cut = ReportRange(since: midnight.addingTimeInterval(-45 * Self.day + 7_200), until: now)
        let widened = try store.usageReport(by: .model, range: cut, perDay: false)
        #expect(widened.widenedDays == [UTC.dayString(midnight.addingTimeInterval(-45 * Self.day))])
        #expect(widened.value("requests", row: 0) == .integer(17))
        // A cut day still in the raw rows is cut exactly: only today's 2 requests after 00:00:00.5 ago.
        let recent = try store.usageReport(by: .model, range: ReportRange(since: now.addingTimeInterval(-2), until: now), perDay: false)
        #expect(recent.value("requests", row: 0) == .integer(2))
        #expect(recent.widenedDays.isEmpty)

        // A second pass finds nothing; the bookkeeping does not move back.
        #expect(try await Self.retention(store, batch: 3, now: now).prune() == PruneBatch())
    }

    @Test func pruningEveryRowThenWritingAgainCountsTheNewRows() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try Self.database(directory)
        let now = Date()
        let old = UTC.startOfDay(now).addingTimeInterval(-40 * Self.day)
        try await store.insert((0..<4).map { Self.entry("old-\($0)", at: old, keys: keys, upstream: upstream) })
        #expect(try await Self.retention(store, now: now).prune() == PruneBatch(requests: 4, attempts: 4))
        #expect(try Self.count(store, "SELECT COUNT(*) FROM requests") == 0)
        // SQLite hands ids 1... out again: they must be folded, not skipped as already counted.
        try await store.insert((0..<3).map { Self.entry("new-\($0)", at: now, keys: keys, upstream: upstream) })
        #expect(try Self.count(store, "SELECT SUM(requests) FROM daily_usage") == 7)
        #expect(try Self.count(store, "SELECT SUM(attempts) FROM daily_key_usage") == 7)
    }

    @Test func theLogWriterKeepsWritingWhileRetentionPrunes() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try Self.database(directory)
        let now = Date()
        let old = UTC.startOfDay(now).addingTimeInterval(-40 * Self.day)
        for chunk in 0..<10 {
            try await store.insert((0..<2_000).map { Self.entry("old-\(chunk)-\($0)", at: old, keys: keys, upstream: upstream) })
        }
        // Batches of 1,000 with 100 ms between them: the writer's inserts get in between (a
        // prune in one transaction would hold them all until its end).
        let retention = RetentionService(
            database: store, settings: .init(retentionDays: 30, batchSize: 1_000, pause: .milliseconds(100)),
            logger: Logger(label: "retention-test"), now: { now }
        )
        let pruning = Task { try await retention.prune() }
        var written = 0
        var duringPrune = 0  // inserts done while some old rows were pruned and some were not
        let deadline = ContinuousClock.now + .seconds(600)
        while ContinuousClock.now < deadline {
            try await store.insert([Self.entry("new-\(written)", at: Date(), keys: keys, upstream: upstream)])
            written += 1
            let left = try Self.count(store, "SELECT COUNT(*) FROM requests WHERE started_at < ?", [old.addingTimeInterval(Self.day)])
            if left == 0 { break }
            if left < 20_000 { duringPrune += 1 }
            try await Task.sleep(for: .milliseconds(2))
        }
        let pruned = try await pruning.value
        #expect(pruned.requests == 20_000)
        #expect(try Self.count(store, "SELECT COUNT(*) FROM requests") == written)
        #expect(try Self.count(store, "SELECT SUM(requests) FROM daily_usage") == 20_000 + written)
        #expect(duringPrune > 0, "no log write got in while retention pruned (\(written) inserts)")
    }

    // MARK: - Helpers

    static func reports(_ store: AppDatabase, _ range: ReportRange) throws -> [ReportTable] {
        try [
            store.usageReport(by: .client, range: range), store.usageReport(by: .model, range: range, perDay: false),
            store.keyReport(range: range), store.upstreamReport(range: range),
        ]
    }
}
