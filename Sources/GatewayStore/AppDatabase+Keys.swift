import Foundation
import GatewayCore
import GRDB

// MARK: - Keys as an operator sees them: never the secret

/// A cooldown in force, as listed.
public struct CooldownListing: Codable, Sendable, Equatable {
    public var model: String
    public var until: Date
    public var reason: String
    public var quotaId: String?
    /// Set when the cooldown comes from the key's project rather than the key itself.
    public var project: String?
}

/// One key in `keys list`: everything but the secret.
public struct KeyListing: Codable, Sendable, Equatable {
    public var id: Int64
    public var fingerprint: String
    public var tail: String
    public var project: String?
    public var state: KeyRecord.State
    public var cooldowns: [CooldownListing]
    public var lastUsedAt: Date?
    public var lastThrottledAt: Date?
    public var deletedAt: Date?
    public var deletedReason: String?
    /// Requests this key answered (the final attempt of a request), and how many were not a
    /// success (from the daily totals, so they include days whose raw rows were pruned).
    public var requests: Int
    public var failedRequests: Int
    /// Upstream tries made with this key that came back throttled.
    public var throttles: Int
    /// The stored secret is not a valid key (edited by hand): the gateway does not use it.
    public var invalidSecret: Bool
    /// Its requests cost 0 (`keys set --free-tier`).
    public var freeTier: Bool
}

extension AppDatabase {
    /// Every key with its cooldowns in force at `now` and its request counts.
    public func listKeys(now: Date = Date(), states: Set<KeyRecord.State> = Set(KeyRecord.State.allCases)) throws -> [KeyListing] {
        try read { db in
            StoreLists.keys(try StoreLists.keyQueries(.sqlite, now: now).map { try db.table($0) }, states: states)
        }
    }

    /// Finds one key by id, fingerprint (or a unique prefix of at least 4 digits), tail, or the
    /// whole secret. An unknown or ambiguous selector is an error that says so.
    public func findKey(_ selector: String) throws -> KeyRecord {
        try read { db in try Self.resolveKey(selector, in: db) }
    }

    static func resolveKey(_ selector: String, in db: Database) throws -> KeyRecord {
        let trimmed = selector.hasPrefix("…") ? String(selector.dropFirst()) : selector
        if let id = Int64(trimmed), let key = try KeyRecord.fetchOne(db, key: id) { return key }
        if let key = try KeyRecord.filter(KeyRecord.Columns.secret == trimmed).fetchOne(db) { return key }
        var matches: [KeyRecord] = []
        if trimmed.count >= 4, trimmed.allSatisfy(\.isHexDigit) {
            matches = try KeyRecord.filter(sql: "fingerprint LIKE ? || '%'", arguments: [trimmed.lowercased()]).limit(10).fetchAll(db)
        }
        if matches.isEmpty, trimmed.count == 4 {
            matches = try KeyRecord.filter(sql: "tail = ?", arguments: [trimmed]).limit(10).fetchAll(db)
        }
        switch matches.count {
        case 1: return matches[0]
        case 0: throw StoreError.notFound("no key matches '\(Self.safeSelector(trimmed))' (give an id, a fingerprint or the last 4 characters; see 'gemini-gateway keys list')")
        default:
            let names = matches.map { "\($0.fingerprint) (…\($0.tail))" }.joined(separator: ", ")
            throw StoreError.ambiguous("'\(Self.safeSelector(trimmed))' matches several keys: \(names); give more of the fingerprint")
        }
    }

    /// A selector may be a whole key pasted by the operator: an error message shows only its tail.
    static func safeSelector(_ selector: String) -> String {
        selector.count > 16 ? Secret.redacted(selector) : selector
    }

    /// Sets a key's state. `deleted` is a soft delete: the row, its history and its secret stay.
    /// Restoring clears cooldowns, so a restored key is usable at once.
    @discardableResult
    public func setKeyState(_ selector: String, to state: KeyRecord.State, reason: String? = nil, now: Date = Date()) throws -> KeyRecord {
        try write { db in
            var key = try Self.resolveKey(selector, in: db)
            key.state = state
            key.updatedAt = now
            switch state {
            case .active:
                key.disabledAt = nil
                key.deletedAt = nil
                key.deletedReason = nil
                key.throttleStreak = 0
                try db.execute(sql: "DELETE FROM key_cooldowns WHERE key_id = ?", arguments: [key.id])
            case .disabled:
                key.disabledAt = now
            case .deleted:
                key.deletedAt = now
                key.deletedReason = reason ?? "deleted by operator"
            }
            try key.update(db)
            return key
        }
    }

    /// Marks keys free-tier or not: the key `selector`, or every key labelled `project` (keys
    /// imported later with that label are not marked). Returns the keys changed. The running
    /// gateway picks the change up with its next reload (the key's `updated_at` moves).
    @discardableResult
    public func setFreeTier(_ freeTier: Bool, key selector: String?, project: String?, now: Date = Date()) throws -> [KeyRecord] {
        try write { db in
            var keys: [KeyRecord]
            if let project {
                keys = try KeyRecord.filter(KeyRecord.Columns.project == project).fetchAll(db)
                guard !keys.isEmpty else { throw StoreError.notFound("no key has the project label '\(project)' (see 'gemini-gateway keys list')") }
            } else if let selector {
                keys = [try Self.resolveKey(selector, in: db)]
            } else {
                throw StoreError.invalid("name a key or give --project")
            }
            for index in keys.indices {
                keys[index].freeTier = freeTier
                keys[index].updatedAt = now
                try keys[index].update(db)
            }
            return keys
        }
    }
}
