import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Testing

/// What the log writer costs per request row. Benchmarks, not checks: they run only with
/// GATEWAY_BENCH=1 (bench/reports.sh WRITER=1).
///
/// - `foldingCost` times batches written as ``AppDatabase/insert(_:)`` writes them (insert, then
///   fold, in one transaction), each step timed (wall time: noisy on a shared machine). "insert"
///   includes summing the batch's daily totals, "fold" is adding them to the daily tables.
/// - `instructionCount` writes a fixed number of realistic rows and nothing else, to be run under
///   `valgrind --tool=callgrind` twice (GATEWAY_BENCH_ROWS=0 and, say, 20000): the difference of
///   the two instruction totals divided by the rows is the writer's cost per row, independent of
///   the machine's load. See bench/RESULTS.md, "Writer and usage scan, instruction counts".
@Suite(.enabled(if: ProcessInfo.processInfo.environment["GATEWAY_BENCH"] == "1"))
struct WriterCostBenchmark {
    @Test func foldingCost() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        // A log that is not empty: 100,000 rows of the last 30 days.
        let now = Date()
        for chunk in 0..<50 {
            try await store.insert((0..<2_000).map { index in
                RetentionTests.entry(
                    "seed-\(chunk)-\(index)", at: now.addingTimeInterval(-Double((chunk * 2_000 + index) % 2_592_000)),
                    client: "client-\(index % 20)", model: "gemini-model-\(index % 6)", keys: keys, upstream: upstream,
                    verdicts: index % 10 == 0 ? ["throttled", "success"] : ["success"]
                )
            })
        }
        var counter = 0
        func batch(_ size: Int) -> [RequestLogEntry] {
            (0..<size).map { index in
                counter += 1
                return RetentionTests.entry(
                    "bench-\(counter)", at: Date(), client: "client-\(index % 20)", model: "gemini-model-\(index % 6)",
                    keys: keys, upstream: upstream, verdicts: index % 10 == 0 ? ["throttled", "success"] : ["success"]
                )
            }
        }
        for size in [1, 10, 100, 2_000] {
            let batches = max(5, min(300, 20_000 / size))
            var insert = Duration.zero, fold = Duration.zero, total = Duration.zero
            for _ in 0..<batches {
                let rows = batch(size)
                let start = ContinuousClock.now
                // What AppDatabase.insert does, timed step by step.
                let (inserting, folding) = try await store.writer.write { db in
                    let t0 = ContinuousClock.now
                    var t1 = t0
                    try AppDatabase.insert(rows, db, inserted: { t1 = ContinuousClock.now })
                    return (t1 - t0, ContinuousClock.now - t1)
                }
                total += ContinuousClock.now - start
                insert += inserting
                fold += folding
            }
            func perRequest(_ duration: Duration) -> Int {
                Int(duration / .microseconds(1) / Double(batches * size))
            }
            print(String(format: "  batches of %4d requests: insert %4d us, fold %4d us, whole transaction (with commit) %4d us per request",
                         size, perRequest(insert), perRequest(fold), perRequest(total)))
        }
        #expect(try store.read { db in try Int.fetchOne(db, sql: "SELECT SUM(requests) FROM daily_usage") }
                == store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") })
    }

    // MARK: - Instructions per row

    /// A row as the gateway writes it under the benchmark's load: every column a real request
    /// fills, one try (every tenth request two, the first throttled), time-ordered ids.
    static func realisticEntry(_ index: Int, at date: Date, keys: [Int64], upstream: Int64) -> RequestLogEntry {
        let hex = String(1_000_000 + index, radix: 16)
        var entry = RequestLogEntry(
            requestId: "19ac5f3b2e1" + "7f3a" + String(repeating: "0", count: max(0, 5 - hex.count)) + hex,
            startedAt: date, method: "POST", endpoint: "generateContent"
        )
        entry.clientId = nil
        entry.clientName = "bench-client-\(index % 3)"
        entry.apiVersion = "v1beta"
        entry.model = index % 4 == 0 ? "gemini-2.5-pro" : "gemini-2.5-flash"
        entry.status = 200
        entry.outcome = .success
        let retried = index % 10 == 0
        entry.keyId = keys[index % keys.count]
        entry.keyFingerprint = "3f9a0c2b7d1e"
        entry.upstreamId = upstream
        entry.upstreamUrl = "https://relay.example.com"
        entry.latencyMs = 3.0 + Double(index % 997) / 128.0 + 0.0001 * Double(index % 7)
        entry.ttfbMs = 2.5 + Double(index % 991) / 256.0
        entry.requestBytes = 187
        entry.responseBytes = 1_338
        entry.promptTokens = 24
        entry.candidatesTokens = 176
        entry.thoughtsTokens = 188
        entry.totalTokens = 388
        entry.usageStatus = .complete
        entry.attempts = (retried ? [("throttled", 429), ("success", 200)] : [("success", 200)]).enumerated().map { attempt, verdict in
            AttemptRow(
                attempt: attempt + 1, startedAt: date.addingTimeInterval(Double(attempt) * 0.0031),
                keyId: keys[(index + attempt) % keys.count], upstreamId: upstream, status: verdict.1, verdict: verdict.0,
                googleStatus: verdict.1 == 429 ? "RESOURCE_EXHAUSTED" : nil,
                reason: verdict.1 == 429 ? "per_minute" : nil,
                quotaId: verdict.1 == 429 ? "GenerateRequestsPerMinutePerProjectPerModel-FreeTier" : nil,
                latencyMs: 1.5 + Double((index + attempt) % 613) / 64.0
            )
        }
        return entry
    }

    /// Seeds GATEWAY_BENCH_SEED rows (default 10,000), makes GATEWAY_BENCH_ROWS rows (default
    /// 20,000) in batches of GATEWAY_BENCH_BATCH (default 1,000: what 100 ms of coalescing gathers
    /// at ~10,000 requests/s) and writes them: GATEWAY_BENCH_MODE=insert the rows alone (no fold),
    /// `none` not at all (the baseline run: the same work but the writing), anything else through
    /// ``AppDatabase/insert(_:)`` as the log writer does (insert, fold, commit).
    @Test func instructionCount() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = Int(environment["GATEWAY_BENCH_SEED"] ?? "") ?? 10_000
        let rows = Int(environment["GATEWAY_BENCH_ROWS"] ?? "") ?? 20_000
        let batchSize = max(1, Int(environment["GATEWAY_BENCH_BATCH"] ?? "") ?? 1_000)
        let mode = environment["GATEWAY_BENCH_MODE"] ?? "all"
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        // A fixed instant: the same rows, days and ids on every run.
        let base = Date(timeIntervalSince1970: 1_764_250_000.123)
        func entries(_ range: Range<Int>) -> [RequestLogEntry] {
            range.map { Self.realisticEntry($0, at: base.addingTimeInterval(Double($0) * 0.000_137), keys: keys, upstream: upstream) }
        }
        var next = 0
        while next < seed {
            let end = min(seed, next + 2_000)
            try await store.insert(entries(next..<end))
            next = end
        }
        let batches = stride(from: next, to: next + rows, by: batchSize).map { entries($0..<min($0 + batchSize, next + rows)) }
        for batch in batches {
            switch mode {
            case "none": continue
            case "insert": try await store.writer.write { db in try AppDatabase.insertRows(batch, db) }
            default: try await store.insert(batch)
            }
        }
        let written = try store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") }
        #expect(written == seed + (mode == "none" ? 0 : rows))
    }
}
