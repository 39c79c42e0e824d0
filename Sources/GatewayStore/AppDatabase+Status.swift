import Foundation
import GRDB

// MARK: - Status: what can serve right now

/// Counts for `gemini-gateway status` and readiness.
public struct StoreStatus: Codable, Sendable, Equatable {
    /// Active keys with no cooldown in force for any model.
    public var usableKeys: Int
    /// Active keys with at least one cooldown in force (they may still serve other models).
    public var coolingKeys: Int
    public var disabledKeys: Int
    public var deletedKeys: Int
    public var activeUpstreams: Int
    public var coolingUpstreams: Int
    public var disabledUpstreams: Int
    public var activeClients: Int
    public var requestsLogged: Int
}

extension AppDatabase {
    public func status(now: Date = Date()) throws -> StoreStatus {
        try read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT
                  (SELECT COUNT(*) FROM keys WHERE state = 'active') AS active_keys,
                  (SELECT COUNT(*) FROM keys k WHERE state = 'active' AND (
                      EXISTS (SELECT 1 FROM key_cooldowns c WHERE c.key_id = k.id AND c.until > :now)
                      OR EXISTS (SELECT 1 FROM project_cooldowns p WHERE p.project = k.project AND p.until > :now))
                  ) AS cooling_keys,
                  (SELECT COUNT(*) FROM keys WHERE state = 'disabled') AS disabled_keys,
                  (SELECT COUNT(*) FROM keys WHERE state = 'deleted') AS deleted_keys,
                  (SELECT COUNT(*) FROM upstreams WHERE state = 'active') AS active_upstreams,
                  (SELECT COUNT(*) FROM upstreams WHERE state = 'active' AND cooldown_until > :now) AS cooling_upstreams,
                  (SELECT COUNT(*) FROM upstreams WHERE state = 'disabled') AS disabled_upstreams,
                  (SELECT COUNT(*) FROM clients WHERE revoked_at IS NULL) AS active_clients,
                  (SELECT COUNT(*) FROM requests) AS requests
                """, arguments: ["now": now])!
            let active: Int = row["active_keys"], cooling: Int = row["cooling_keys"]
            return StoreStatus(
                usableKeys: active - cooling, coolingKeys: cooling,
                disabledKeys: row["disabled_keys"], deletedKeys: row["deleted_keys"],
                activeUpstreams: row["active_upstreams"], coolingUpstreams: row["cooling_upstreams"],
                disabledUpstreams: row["disabled_upstreams"], activeClients: row["active_clients"],
                requestsLogged: row["requests"]
            )
        }
    }
}
