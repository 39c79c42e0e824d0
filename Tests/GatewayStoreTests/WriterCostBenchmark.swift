import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Testing

/// What folding into the daily tables adds to the log writer: batches written as
/// ``AppDatabase/insert(_:)`` writes them (insert, then fold, in one transaction), each step timed.
/// A benchmark, not a check: it runs only with GATEWAY_BENCH=1 (bench/reports.sh WRITER=1).
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
                    try AppDatabase.lowerFoldBookmarks(db)
                    let t0 = ContinuousClock.now
                    try AppDatabase.insertRows(rows, db)
                    let t1 = ContinuousClock.now
                    try AppDatabase.foldPendingRows(db)
                    return (t1 - t0, ContinuousClock.now - t1)
                }
                total += ContinuousClock.now - start
                insert += inserting
                fold += folding
            }
            func perRequest(_ duration: Duration) -> Int {
                Int((Double(duration.components.attoseconds) / 1e12 + Double(duration.components.seconds) * 1e6) / Double(batches * size))
            }
            print(String(format: "  batches of %4d requests: insert %4d us, fold %4d us, whole transaction (with commit) %4d us per request",
                         size, perRequest(insert), perRequest(fold), perRequest(total)))
        }
        #expect(try store.read { db in try Int.fetchOne(db, sql: "SELECT SUM(requests) FROM daily_usage") }
                == store.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") })
    }
}
