import Foundation
import GatewayCore
import GRDB
@testable import GatewayStore
import Testing

/// The usage report's queries are built in Swift from ``UsageColumn``; the views
/// `usage_by_client_day` and `usage_by_model_day` of migration 0002 are SQL of their own. For the
/// same rows they must give the same columns and the same values, whether the report reads whole
/// days (from `daily_usage`, folded in Swift) or cut days (from `request_facts`).
@Suite struct UsageReportQueryTests {
    static let day: TimeInterval = 86_400
    /// Three UTC days from this midnight.
    static let firstMidnight = Date(timeIntervalSince1970: 1_764_201_600)

    /// Rows of every outcome, usage status, client and model over three days. Latencies are
    /// multiples of 1/8 ms, so every sum is exact whatever order it is added in.
    static func entries(_ count: Int, keys: [Int64], upstream: Int64, generator: inout LogBindingTests.Generator) -> [RequestLogEntry] {
        (0..<count).map { index in
            func pick<T>(_ values: [T]) -> T { values[Int.random(in: 0..<values.count, using: &generator)] }
            // Never in a day's last second: the cut-day range below ends one millisecond before midnight.
            let start = firstMidnight + Double(Int.random(in: 0..<3, using: &generator)) * day
                + Double(Int.random(in: 0..<86_000_000, using: &generator)) / 1000
            var e = RequestLogEntry(requestId: "q-\(index)", startedAt: start, method: "POST", endpoint: "generateContent")
            e.clientName = pick(["alice", "bob", nil])
            e.model = pick(["gemini-2.5-flash", "gemini-2.5-pro", nil])
            e.isStream = Bool.random(using: &generator)
            e.outcome = pick(RequestOutcome.allCases)
            e.status = e.outcome == .success ? 200 : pick([400, 429, 499, 502, 503])
            e.usageStatus = pick(UsageStatus.allCases)
            e.keyId = pick(keys)
            e.upstreamId = upstream
            e.latencyMs = pick([nil, Double(Int.random(in: 0..<80_000, using: &generator)) / 8])
            e.ttfbMs = pick([nil, Double(Int.random(in: 0..<8_000, using: &generator)) / 8])
            e.requestBytes = Int.random(in: 0..<100_000, using: &generator)
            e.responseBytes = Int.random(in: 0..<1_000_000, using: &generator)
            e.promptTokens = Int.random(in: 0..<10_000, using: &generator)
            e.cachedTokens = Int.random(in: 0..<1_000, using: &generator)
            e.candidatesTokens = Int.random(in: 0..<5_000, using: &generator)
            e.thoughtsTokens = Int.random(in: 0..<5_000, using: &generator)
            e.toolUseTokens = pick([0, 9])
            e.totalTokens = e.promptTokens + e.candidatesTokens + e.thoughtsTokens
            e.attempts = (0..<Int.random(in: 0...3, using: &generator)).map { attempt in
                AttemptRow(attempt: attempt + 1, startedAt: start, keyId: e.keyId, upstreamId: upstream, status: 200, verdict: "success")
            }
            return e
        }
    }

    @Test func theReportIsTheViewForTheSameRows() async throws {
        let directory = TemporaryDirectory()
        let (store, keys, upstream) = try RetentionTests.database(directory)
        var generator = LogBindingTests.Generator(state: 59)
        let rows = Self.entries(600, keys: keys, upstream: upstream, generator: &generator)
        for batch in stride(from: 0, to: rows.count, by: 150) {
            try await store.insert(Array(rows[batch..<(batch + 150)]))
        }
        for offset in 0..<3 {
            let midnight = Self.firstMidnight + Double(offset) * Self.day
            let dayText = String(LogTimestamp(midnight).day)
            let wholeDay = ReportRange(since: midnight, until: midnight + Self.day)
            let cutDay = ReportRange(since: midnight, until: midnight + Self.day - 0.001)
            for dimension in UsageDimension.allCases {
                let view = try store.read { db in
                    try ReportTable.fetch(
                        db, sql: "SELECT * FROM usage_by_\(dimension.rawValue)_day WHERE day = ? ORDER BY \(dimension.rawValue)",
                        arguments: [dayText])
                }
                #expect(view.rows.count >= 2, "\(dayText) \(dimension): rows to compare")
                for (range, read) in [(wholeDay, "daily_usage"), (cutDay, "request_facts")] {
                    let report = try store.usageReport(by: dimension, range: range)
                    #expect(report.columns == view.columns, "\(dayText) \(dimension) from \(read)")
                    #expect(report.rows == view.rows, "\(dayText) \(dimension) from \(read)")
                    // Without the day column: the same numbers.
                    let totals = try store.usageReport(by: dimension, range: range, perDay: false)
                    #expect(totals.rows == view.rows.map { Array($0.dropFirst()) }, "\(dayText) \(dimension) from \(read)")
                }
            }
        }
    }

    @Test func theTerminalTableShowsTheColumnsItAlwaysShowed() throws {
        #expect(UsageColumn.reportMeasures.filter(\.inTable).map(\.name) == [
            "requests", "successful", "errors", "client_errors", "throttled", "upstream_errors", "cancelled",
            "truncated", "prompt_tokens", "cached_tokens", "candidates_tokens", "thoughts_tokens", "total_tokens",
            "avg_latency_ms",
        ])
        // The fold writes every column of daily_usage, in its order.
        let directory = TemporaryDirectory()
        let (store, _, _) = try RetentionTests.database(directory)
        let columns = try store.read { db in try db.columns(in: "daily_usage").map(\.name) }
        #expect(columns == ["day", "client", "model"] + UsageColumn.allCases.map(\.name))
    }
}
