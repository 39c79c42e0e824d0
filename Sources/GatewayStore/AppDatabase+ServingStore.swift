import Foundation
import GatewayCore
import GRDB

/// SQLite serves one gateway instance: it shares nothing with others, and what a request names
/// is known to it at start.
extension AppDatabase: ServingStore {
    public var displayName: String { path ?? ":memory:" }

    public var sharedChanges: (any SharedChangeFeed)? { nil }

    public func statusPageData(now: Date) async throws -> StatusPageData {
        try await statusPageData(now: now, buckets: 60)
    }

    public func resourceOwner(named name: String, now: Date = Date()) async throws -> ResourceOwner? {
        try await writer.read { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT key_id, upstream_id, client_id, created_at FROM resource_owners WHERE name = ?
                """, arguments: [name]) else { return nil }
            if Self.resourceOwnerExpired(name: name, createdAt: row["created_at"], now: now) { return nil }
            return ResourceOwner(keyID: row["key_id"], upstreamID: row["upstream_id"], clientID: row["client_id"])
        }
    }
}
