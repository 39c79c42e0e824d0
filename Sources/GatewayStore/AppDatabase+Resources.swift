import Foundation
import GRDB

// MARK: - Owners of project-bound resources

/// The key (and for an upload session the upstream) that created a project-bound resource.
public struct ResourceOwner: Sendable, Equatable {
    public var keyID: Int64
    public var upstreamID: Int64?
    public var clientID: Int64?

    public init(keyID: Int64, upstreamID: Int64?, clientID: Int64?) {
        self.keyID = keyID
        self.upstreamID = upstreamID
        self.clientID = clientID
    }
}

extension AppDatabase {
    /// How long owners are kept: Google deletes files after 48 hours and upload sessions after a
    /// week; cached contents, batches and tuned models live as long as their owner says, so they
    /// are kept until deleted through the gateway.
    public static let resourceOwnerLifetimes: [(prefix: String, days: Int)] = [("files/", 3), ("uploads/", 8)]

    /// Every owner still worth knowing, by resource name (expired files and uploads are skipped).
    public func resourceOwners(now: Date = Date()) async throws -> [String: ResourceOwner] {
        try await writer.read { db in
            var owners: [String: ResourceOwner] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT name, key_id, upstream_id, client_id, created_at FROM resource_owners")
            while let row = try rows.next() {
                let name: String = row["name"]
                let created: Date = row["created_at"]
                if Self.resourceOwnerExpired(name: name, createdAt: created, now: now) { continue }
                owners[name] = ResourceOwner(keyID: row["key_id"], upstreamID: row["upstream_id"], clientID: row["client_id"])
            }
            return owners
        }
    }

    /// Records (or replaces) the owner of each name.
    public func saveResourceOwners(_ names: [String], owner: ResourceOwner, now: Date = Date()) async throws {
        try await writer.write { db in
            for name in names {
                try db.execute(sql: """
                    INSERT INTO resource_owners (name, key_id, upstream_id, client_id, created_at) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, upstream_id = excluded.upstream_id,
                        client_id = excluded.client_id, created_at = excluded.created_at
                    """, arguments: [name, owner.keyID, owner.upstreamID, owner.clientID, now])
            }
        }
    }

    /// Forgets a resource (deleted through the gateway).
    public func deleteResourceOwner(_ name: String) async throws {
        try await writer.write { db in
            try db.execute(sql: "DELETE FROM resource_owners WHERE name = ?", arguments: [name])
        }
    }

    /// Deletes the owners of files and upload sessions that Google has expired; returns how many.
    @discardableResult
    public func pruneResourceOwners(now: Date = Date()) async throws -> Int {
        try await writer.write { db in
            var deleted = 0
            for (prefix, days) in Self.resourceOwnerLifetimes {
                try db.execute(
                    sql: "DELETE FROM resource_owners WHERE name >= ? AND name < ? AND created_at < ?",
                    arguments: [prefix, Self.prefixEnd(prefix), now.addingTimeInterval(-Double(days) * 86_400)]
                )
                deleted += db.changesCount
            }
            return deleted
        }
    }

    public static func resourceOwnerExpired(name: String, createdAt: Date, now: Date) -> Bool {
        for (prefix, days) in resourceOwnerLifetimes where name.hasPrefix(prefix) {
            return createdAt < now.addingTimeInterval(-Double(days) * 86_400)
        }
        return false
    }

    /// The smallest string greater than every string that starts with `prefix` ("files/" -> "files0").
    private static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        bytes[bytes.count - 1] += 1
        return String(decoding: bytes, as: UTF8.self)
    }
}
