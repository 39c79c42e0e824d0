import Foundation
import GRDB

// MARK: - Folding raw rows into the daily tables

/// One of the `daily_*` tables of migration 0002 and the `pending_daily_*` view that says what
/// the rows not yet folded add to it.
struct DailyTable: Sendable {
    /// The table; its view is `pending_<name>`.
    let name: String
    /// The columns that name a row (the primary key).
    let keyColumns: [String]
    /// Columns that add up.
    let sumColumns: [String]
    /// Columns that keep the largest value.
    let maxColumns: [String]

    /// `INSERT ... SELECT ... FROM pending_<name> ... ON CONFLICT DO UPDATE`: adds the pending
    /// totals to the rows already there.
    var foldSQL: String {
        let columns = (keyColumns + sumColumns + maxColumns).joined(separator: ", ")
        let updates = sumColumns.map { "\($0) = \($0) + excluded.\($0)" }
            + maxColumns.map { "\($0) = max(COALESCE(\($0), excluded.\($0)), COALESCE(excluded.\($0), \($0)))" }
        return """
            INSERT INTO \(name) (\(columns))
            SELECT \(columns) FROM pending_\(name) WHERE true
            ON CONFLICT (\(keyColumns.joined(separator: ", "))) DO UPDATE SET \(updates.joined(separator: ", "))
            """
    }

    static let all: [DailyTable] = [
        DailyTable(
            name: "daily_usage", keyColumns: ["day", "client", "model"],
            sumColumns: [
                "requests", "successful", "errors", "client_errors", "throttled", "no_capacity", "upstream_errors",
                "cancelled", "truncated", "streamed", "upstream_attempts", "usage_missing", "usage_truncated",
                "prompt_tokens", "cached_tokens", "candidates_tokens", "thoughts_tokens", "tool_use_tokens",
                "total_tokens", "request_bytes", "response_bytes", "latency_ms_sum", "ttfb_ms_sum", "ttfb_requests",
            ],
            maxColumns: []
        ),
        DailyTable(
            name: "daily_key_usage", keyColumns: ["day", "key_id"],
            sumColumns: [
                "requests", "successful", "errors", "total_tokens", "attempts", "successful_attempts",
                "throttled_attempts", "key_failures", "upstream_failures",
            ],
            maxColumns: []
        ),
        DailyTable(
            name: "daily_upstream_usage", keyColumns: ["day", "upstream_id", "model"],
            sumColumns: [
                "requests", "successful", "errors", "attempts", "successful_attempts", "throttled_attempts",
                "key_failures", "upstream_failures", "timed_attempts", "latency_ms_sum",
            ],
            maxColumns: ["latency_ms_max"]
        ),
        DailyTable(
            name: "daily_upstream_latency", keyColumns: ["day", "upstream_id", "model", "bucket_ms"],
            sumColumns: ["attempts"], maxColumns: []
        ),
    ]
}

extension AppDatabase {
    /// Makes sure every `requests`/`attempts` row above the bookmarks in `log_state` is pending:
    /// if rows at the top were deleted (by hand), the next ids SQLite hands out could be at or
    /// below the bookmark and would never be folded. Call before inserting.
    static func lowerFoldBookmarks(_ db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE log_state SET
                requests_folded_through = min(requests_folded_through, COALESCE((SELECT MAX(id) FROM requests), 0)),
                attempts_folded_through = min(attempts_folded_through, COALESCE((SELECT MAX(id) FROM attempts), 0))
            WHERE requests_folded_through > COALESCE((SELECT MAX(id) FROM requests), 0)
               OR attempts_folded_through > COALESCE((SELECT MAX(id) FROM attempts), 0)
            """).execute()
    }

    /// Adds every pending raw row to the daily tables and moves the bookmarks past them. Run in
    /// the transaction that inserted the rows, so the daily tables are never behind and no row is
    /// counted twice. Costs a few microseconds per row, nothing when nothing is pending.
    static func foldPendingRows(_ db: Database) throws {
        let pending = try Bool.fetchOne(db.cachedStatement(sql: """
            SELECT COALESCE((SELECT MAX(id) FROM requests), 0) > requests_folded_through
                OR COALESCE((SELECT MAX(id) FROM attempts), 0) > attempts_folded_through
            FROM log_state
            """)) ?? false
        guard pending else { return }
        for table in DailyTable.all {
            try db.cachedStatement(sql: table.foldSQL).execute()
        }
        try db.cachedStatement(sql: """
            UPDATE log_state SET
                requests_folded_through = COALESCE((SELECT MAX(id) FROM requests), 0),
                attempts_folded_through = COALESCE((SELECT MAX(id) FROM attempts), 0)
            """).execute()
    }

    /// Folds rows that were inserted without going through ``insert(_:)`` (by hand, by a
    /// benchmark). The log writer and retention do this themselves.
    public func foldPendingRows() throws {
        try write { db in try Self.foldPendingRows(db) }
    }
}
