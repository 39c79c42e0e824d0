import Foundation
import GatewayCore
import GatewayStore
import PostgresNIO

// MARK: - The rest of the operator's changes: keys set, keys check --restore, clients set, upstreams, prices

/// As SQLite's store makes them (`AppDatabase+Keys`, `+KeyCheck`, `+Clients`, `+Upstreams`,
/// `+Prices`), and as every change here, each moves `pool_version`, so that every instance
/// reloads within its reload interval.
extension PostgresStore {
    public func setFreeTier(_ freeTier: Bool, key selector: String?, project: String?, now: Date) async throws -> [KeyRecord] {
        try await transaction { connection in
            var ids: [Int64]
            if let project {
                ids = try await self.table("SELECT id FROM keys WHERE project = \(project)", connection).rows.compactMap { $0.first?.integer }
                guard !ids.isEmpty else { throw StoreError.notFound("no key has the project label '\(project)' (see 'gemini-gateway keys list')") }
            } else if let selector {
                ids = [try await self.resolveKey(selector, connection).id ?? 0]
            } else {
                throw StoreError.invalid("name a key or give --project")
            }
            let version = try await Self.bump(connection, logger: self.logger)
            let changed = try await self.table("""
                UPDATE keys SET free_tier = \(freeTier), updated_at = \(now), version = \(version) WHERE id = ANY(\(ids)) RETURNING *
                """, connection)
            return KeyRecord.all(changed).sorted { ($0.id ?? 0) < ($1.id ?? 0) }
        }
    }

    /// The pool's version moves even when the key turned out not to be active: one reload more.
    public func clearKeyCooldowns(id: Int64, now: Date) async throws -> Int? {
        try await transaction { connection in
            let version = try await Self.bump(connection, logger: self.logger)
            let updated = try await self.table("""
                UPDATE keys SET throttle_streak = 0, updated_at = \(now), version = \(version)
                WHERE id = \(id) AND state = 'active' RETURNING id
                """, connection)
            guard !updated.rows.isEmpty else { return nil }
            return try await self.table("DELETE FROM key_cooldowns WHERE key_id = \(id) RETURNING key_id", connection).rows.count
        }
    }

    public func setClientLimits(_ selector: String, _ change: ClientLimitsChange, now: Date) async throws -> ClientRecord {
        try await transaction { connection in
            let id = Int64(selector) ?? -1
            let found = try await self.table("""
                SELECT * FROM clients WHERE revoked_at IS NULL AND (id = \(id) OR name = \(selector))
                ORDER BY (id = \(id)) DESC LIMIT 1
                """, connection)
            guard var client = ClientRecord.first(found) else {
                throw StoreError.notFound("no active client named '\(selector)' (see 'gemini-gateway clients list')")
            }
            client.limits = change.applied(to: client.limits)
            client.updatedAt = now
            let version = try await Self.bump(connection, logger: self.logger)
            try await connection.query("""
                UPDATE clients SET rpm = \(client.rpm), rpd = \(client.rpd), tpm = \(client.tpm), tpd = \(client.tpd),
                    daily_budget_micros = \(client.dailyBudgetMicros), monthly_budget_micros = \(client.monthlyBudgetMicros),
                    max_concurrent = \(client.maxConcurrent), models = \(client.models), expires_at = \(client.expiresAt),
                    updated_at = \(now), version = \(version)
                WHERE id = \(client.id ?? 0)
                """, logger: self.logger)
            return client
        }
    }

    public func addUpstream(_ url: String, now: Date) async throws -> UpstreamImportSummary {
        try await importLists(keys: nil, upstreams: ListFile.oneUpstream(url), now: now).upstreams ?? UpstreamImportSummary()
    }

    public func setUpstreamState(_ selector: String, to state: UpstreamRecord.State, now: Date) async throws -> UpstreamRecord {
        try await transaction { connection in
            let id = Int64(selector) ?? -1
            let normalized = (try? ListFile.normalizeUpstreamURL(selector).get()) ?? selector
            let found = try await self.table("""
                SELECT id FROM upstreams WHERE id = \(id) OR base_url = \(normalized) ORDER BY (id = \(id)) DESC LIMIT 1
                """, connection)
            guard let upstream = found.rows.first?.first?.integer else {
                throw StoreError.notFound("no upstream matches '\(selector)' (give an id or a base URL; see 'gemini-gateway upstreams list')")
            }
            let version = try await Self.bump(connection, logger: self.logger)
            let changed = try await self.table(state == .active ? """
                UPDATE upstreams SET state = 'active', cooldown_until = NULL, failure_streak = 0, updated_at = \(now),
                    version = \(version)
                WHERE id = \(upstream) RETURNING *
                """ : """
                UPDATE upstreams SET state = \(state.rawValue), updated_at = \(now), version = \(version)
                WHERE id = \(upstream) RETURNING *
                """, connection)
            guard let record = UpstreamRecord.first(changed) else { throw StoreError.notFound("upstream \(upstream) went away") }
            return record
        }
    }

    public func importPrices(_ prices: [ModelPrice], now: Date) async throws -> Int {
        try await transaction { connection in
            _ = try await Self.bump(connection, logger: self.logger)
            try await Self.importPrices(prices, now: now, connection, logger: self.logger)
            return prices.count
        }
    }
}
