import Foundation
import GatewayCore
import GRDB

// MARK: - Keys for `keys check`: the listing, and the secret to probe with

/// A key to probe: what an operator may see of it, and the secret to send upstream (never print it).
public struct KeyCheckCandidate: Sendable {
    /// The key as `keys list` shows it (state, cooldowns in force, ...).
    public var key: KeyListing
    /// The whole key, for the probe's `x-goog-api-key` header only.
    public var secret: String
}

extension AppDatabase {
    /// The keys to check, ordered by id: those named by `selectors` (ids, fingerprints or
    /// prefixes, last 4 characters, as `keys restore` takes them) if any; else every key when
    /// `all`; else the deleted, disabled and cooling ones (at `now`).
    public func keysToCheck(selectors: [String] = [], all: Bool = false, now: Date = Date()) throws -> [KeyCheckCandidate] {
        try read { db in
            let chosen = selectors.isEmpty ? nil : try Set(selectors.compactMap { try Self.resolveKey($0, in: db).id })
            let listed = StoreLists.keys(try StoreLists.keyQueries(.sqlite, now: now).map { try db.table($0) }, states: Set(KeyRecord.State.allCases))
            return StoreLists.keysToCheck(listed, secrets: try db.table(StoreQuery(.sqlite, sql: StoreLists.secretsQuery)), chosen: chosen, all: all)
        }
    }

    /// Clears the key's own cooldowns (not its project's: those are about the project's quota)
    /// and its throttle streak, if it is still active. Its `updated_at` moves, so a running
    /// gateway sees an operator change and drops the cooldowns it holds in memory too, within
    /// its reload interval. Returns how many cooldowns were cleared, nil when the key is not
    /// active (any more).
    @discardableResult
    public func clearKeyCooldowns(id: Int64, now: Date = Date()) throws -> Int? {
        try write { db in
            try db.execute(
                sql: "UPDATE keys SET throttle_streak = 0, updated_at = ? WHERE id = ? AND state = 'active'",
                arguments: [now, id])
            guard db.changesCount > 0 else { return nil }
            try db.execute(sql: "DELETE FROM key_cooldowns WHERE key_id = ?", arguments: [id])
            return db.changesCount
        }
    }
}
