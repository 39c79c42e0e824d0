import Foundation
import GRDB

// MARK: - Deleting old raw rows

/// What one pruning transaction deleted.
public struct PruneBatch: Sendable, Equatable {
    public var requests: Int
    public var attempts: Int

    public init(requests: Int = 0, attempts: Int = 0) {
        self.requests = requests
        self.attempts = attempts
    }

    public var isEmpty: Bool { requests == 0 && attempts == 0 }
}

extension AppDatabase {
    /// The UTC midnight before which raw rows go when `retentionDays` whole days are kept (plus
    /// today so far): with 30, on 2026-12-31 rows that started before 2026-12-01 00:00 go.
    public static func retentionCutoff(retentionDays: Int, now: Date) -> Date {
        UTC.startOfDay(now).addingTimeInterval(-Double(retentionDays) * 86_400)
    }

    /// Deletes at most `limit` requests and `limit` attempts that started before `cutoff` (a UTC
    /// midnight), in one short transaction. Pending rows are folded into the daily tables first,
    /// so the totals keep every deleted row; `log_state.pruned_before` moves to `cutoff` first,
    /// so reports stop reading raw rows for those days before any is deleted.
    public func pruneBatch(before cutoff: Date, limit: Int, now: Date = Date()) async throws -> PruneBatch {
        try await writer.write { db in
            try Self.foldPendingRows(db)
            try db.execute(sql: """
                UPDATE log_state SET pruned_before = :cutoff, last_pruned_at = :now
                WHERE pruned_before IS NULL OR pruned_before < :cutoff
                """, arguments: ["cutoff": cutoff, "now": now])
            try db.execute(sql: """
                DELETE FROM attempts WHERE id IN (
                    SELECT id FROM attempts WHERE started_at < ? ORDER BY started_at LIMIT ?)
                """, arguments: [cutoff, limit])
            let attempts = db.changesCount
            try db.execute(sql: """
                DELETE FROM requests WHERE id IN (
                    SELECT id FROM requests WHERE started_at < ? ORDER BY started_at LIMIT ?)
                """, arguments: [cutoff, limit])
            let requests = db.changesCount
            if requests + attempts > 0 {
                try db.execute(sql: """
                    UPDATE log_state SET requests_pruned = requests_pruned + ?, attempts_pruned = attempts_pruned + ?,
                                         last_pruned_at = ?
                    """, arguments: [requests, attempts, now])
                // Ids below the bookmarks are all folded; if the newest rows went, SQLite will
                // hand their ids out again, so the bookmarks come down to what is left.
                try Self.lowerFoldBookmarks(db)
            }
            return PruneBatch(requests: requests, attempts: attempts)
        }
    }
}
