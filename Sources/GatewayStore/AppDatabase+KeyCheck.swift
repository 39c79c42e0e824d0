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
        var chosen: Set<Int64>?
        if !selectors.isEmpty {
            chosen = try Set(selectors.compactMap { try findKey($0).id })
        }
        let keys = try listKeys(now: now).filter { key in
            if let chosen { return chosen.contains(key.id) }
            return all || key.state != .active || !key.cooldowns.isEmpty
        }
        guard !keys.isEmpty else { return [] }
        let secrets: [Int64: String] = try read { db in
            var secrets: [Int64: String] = [:]
            // Chunks keep the statement under SQLite's limit on bound parameters.
            for chunk in stride(from: 0, to: keys.count, by: 500).map({ keys[$0..<min($0 + 500, keys.count)] }) {
                let ids = chunk.map(\.id)
                let rows = try Row.fetchAll(
                    db, sql: "SELECT id, secret FROM keys WHERE id IN (\(databaseQuestionMarks(count: ids.count)))",
                    arguments: StatementArguments(ids))
                for row in rows { secrets[row["id"]] = row["secret"] }
            }
            return secrets
        }
        return keys.compactMap { key in secrets[key.id].map { KeyCheckCandidate(key: key, secret: $0) } }
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
