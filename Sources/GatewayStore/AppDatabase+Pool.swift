import Foundation
import GatewayCore
import GRDB

// MARK: - The scheduler's state: loaded on start and on change, written behind

/// Everything the in-memory pool is built from.
public struct PoolState: Sendable {
    public var keys: [PoolKey]
    public var upstreams: [PoolUpstream]
    public var cooldowns: [KeyCooldown]
    public var projectCooldowns: [ProjectCooldown]
    public var clients: [ClientRecord]
    /// Keys whose row an operator changed since the `since` date given to `loadPoolState`.
    public var keysChangedByOperator: Set<Int64>
    /// Fingerprints of active keys left out of `keys` because their secret is not a valid key
    /// (edited by hand with `sqlite3`: the gateway's own commands validate every key).
    public var invalidKeys: [String] = []
    /// Ids of enabled upstreams left out of `upstreams` for the same reason (their URL is not
    /// shown: it might carry what should not be logged).
    public var invalidUpstreams: [Int64] = []
    /// The price table (`prices import`).
    public var prices: [ModelPrice] = []

    public init(
        keys: [PoolKey], upstreams: [PoolUpstream], cooldowns: [KeyCooldown], projectCooldowns: [ProjectCooldown],
        clients: [ClientRecord], keysChangedByOperator: Set<Int64>, invalidKeys: [String] = [],
        invalidUpstreams: [Int64] = [], prices: [ModelPrice] = []
    ) {
        self.keys = keys
        self.upstreams = upstreams
        self.cooldowns = cooldowns
        self.projectCooldowns = projectCooldowns
        self.clients = clients
        self.keysChangedByOperator = keysChangedByOperator
        self.invalidKeys = invalidKeys
        self.invalidUpstreams = invalidUpstreams
        self.prices = prices
    }
}

extension KeyRecord {
    /// Whether the stored secret is a key the gateway's commands would accept: the pool uses no
    /// other (a secret edited by hand into something else could add a header upstream).
    var hasValidSecret: Bool {
        if case .success = ListFile.validateKey(secret) { return true }
        return false
    }
}

extension UpstreamRecord {
    /// Whether the stored base URL is one `upstreams add` would accept, as stored (the command
    /// trims what it is given; a space stored around a URL makes it one no parser reads): the
    /// pool uses no other.
    var hasValidURL: Bool {
        guard !baseUrl.unicodeScalars.contains(where: ListFile.isInvisible) else { return false }
        if case .success = ListFile.normalizeUpstreamURL(baseUrl) { return true }
        return false
    }
}

extension AppDatabase {
    /// A value that changes whenever an operator (the CLI) changes keys, upstreams, clients (their
    /// limits included) or prices.
    /// Cheap (index lookups), so the server can poll it every second.
    public func poolMarker() async throws -> String {
        try await writer.read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT (SELECT MAX(updated_at) FROM keys) AS k, (SELECT MAX(id) FROM keys) AS ki,
                       (SELECT MAX(updated_at) FROM upstreams) AS u, (SELECT MAX(id) FROM upstreams) AS ui,
                       (SELECT MAX(id) FROM clients) AS c, (SELECT MAX(revoked_at) FROM clients) AS cr,
                       (SELECT MAX(updated_at) FROM clients) AS cu, (SELECT MAX(updated_at) FROM prices) AS p,
                       (SELECT COUNT(*) FROM prices) AS pc
                """)!
            return row.databaseValues.map { $0.description }.joined(separator: "|")
        }
    }

    /// The active keys, enabled upstreams, cooldowns in force and active clients.
    ///
    /// A key goes upstream in a header as it is stored, and so does an upstream's host, and the
    /// upstream connections do not check outgoing headers again (every other value in them comes
    /// from a parsed request): a secret that is not a valid key, or a base URL the `upstreams`
    /// command would refuse (a line break written into either by hand would add a header), is
    /// left out here and named in ``PoolState/invalidKeys`` or ``PoolState/invalidUpstreams``.
    ///
    /// With `changedSince`, the keys whose row changed since a second before that load are
    /// ``PoolState/keysChangedByOperator`` (the second covers a change stamped by a clock a
    /// little behind this one).
    public func loadPoolState(now: Date = Date(), changedSince previous: PoolLoad? = nil) async throws -> PoolState {
        let changedSince = previous?.at.addingTimeInterval(-1)
        return try await writer.read { db in
            var invalidKeys: [String] = []
            let keys = try KeyRecord.filter(KeyRecord.Columns.state == KeyRecord.State.active.rawValue).fetchAll(db).compactMap { (record: KeyRecord) -> PoolKey? in
                guard record.hasValidSecret else {
                    invalidKeys.append(record.fingerprint)
                    return nil
                }
                return PoolKey(
                    id: record.id!, secret: record.secret, fingerprint: record.fingerprint, project: record.project,
                    lastUsedAt: record.lastUsedAt, lastThrottledAt: record.lastThrottledAt, throttleStreak: record.throttleStreak,
                    freeTier: record.freeTier
                )
            }
            var invalidUpstreams: [Int64] = []
            let upstreams = try UpstreamRecord.filter(UpstreamRecord.Columns.state == UpstreamRecord.State.active.rawValue)
                .fetchAll(db).compactMap { (record: UpstreamRecord) -> PoolUpstream? in
                    guard record.hasValidURL else {
                        invalidUpstreams.append(record.id!)
                        return nil
                    }
                    return PoolUpstream(
                        id: record.id!, baseURL: record.baseUrl, cooldownUntil: record.cooldownUntil,
                        failureStreak: record.failureStreak, lastFailureAt: record.lastFailureAt, lastUsedAt: record.lastUsedAt
                    )
                }
            let cooldowns = try KeyCooldownRecord.filter(Column("until") > now).fetchAll(db).map {
                KeyCooldown(keyID: $0.keyId, model: $0.model, until: $0.until, reason: $0.reason, quotaID: $0.quotaId)
            }
            let projectCooldowns = try ProjectCooldownRecord.filter(Column("until") > now).fetchAll(db).map {
                ProjectCooldown(project: $0.project, model: $0.model, until: $0.until, reason: $0.reason, quotaID: $0.quotaId)
            }
            let clients = try ClientRecord.filter(ClientRecord.Columns.revokedAt == nil).fetchAll(db)
            var changed = Set<Int64>()
            if let changedSince {
                changed = try Set(Int64.fetchAll(db, sql: "SELECT id FROM keys WHERE updated_at > ?", arguments: [changedSince]))
            }
            return PoolState(
                keys: keys, upstreams: upstreams, cooldowns: cooldowns, projectCooldowns: projectCooldowns,
                clients: clients, keysChangedByOperator: changed, invalidKeys: invalidKeys,
                invalidUpstreams: invalidUpstreams, prices: try Self.prices(db)
            )
        }
    }

    /// Writes pool state changes and last-use times in one transaction. These writes do not touch
    /// `updated_at` of keys, which marks operator changes; a soft delete does, so that every
    /// reader sees the key gone.
    public func apply(_ changes: [StateChange], lastUsed: LastUsedBatch = LastUsedBatch(), now: Date = Date()) async throws {
        try await writer.write { db in
            for change in changes {
                switch change {
                case .keyCooldown(let c):
                    try db.execute(sql: """
                        INSERT INTO key_cooldowns (key_id, model, until, reason, quota_id, created_at) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (key_id, model) DO UPDATE SET until = MAX(until, excluded.until), reason = excluded.reason,
                            quota_id = excluded.quota_id, created_at = excluded.created_at
                        """, arguments: [c.keyID, c.model, c.until, c.reason, c.quotaID, now])
                case .projectCooldown(let c):
                    try db.execute(sql: """
                        INSERT INTO project_cooldowns (project, model, until, reason, quota_id, created_at) VALUES (?, ?, ?, ?, ?, ?)
                        ON CONFLICT (project, model) DO UPDATE SET until = MAX(until, excluded.until), reason = excluded.reason,
                            quota_id = excluded.quota_id, created_at = excluded.created_at
                        """, arguments: [c.project, c.model, c.until, c.reason, c.quotaID, now])
                case .keyCooldownLifted(let id, let model, let until):
                    try db.execute(sql: "DELETE FROM key_cooldowns WHERE key_id = ? AND model = ? AND until <= ?",
                                   arguments: [id, model, until])
                case .projectCooldownLifted(let project, let model, let until):
                    try db.execute(sql: "DELETE FROM project_cooldowns WHERE project = ? AND model = ? AND until <= ?",
                                   arguments: [project, model, until])
                case .keyThrottled(let id, let at, let streak):
                    try db.execute(sql: "UPDATE keys SET last_throttled_at = ?, throttle_streak = ? WHERE id = ?",
                                   arguments: [at, streak, id])
                case .keyRecovered(let id):
                    try db.execute(sql: "UPDATE keys SET throttle_streak = 0 WHERE id = ?", arguments: [id])
                case .keyDeleted(let id, let reason, let at):
                    try db.execute(sql: """
                        UPDATE keys SET state = 'deleted', deleted_at = ?, deleted_reason = ?, updated_at = ?
                        WHERE id = ? AND state = 'active'
                        """, arguments: [at, reason, at, id])
                case .upstreamFailed(let id, let until, let streak, let reason, let at):
                    try db.execute(sql: """
                        UPDATE upstreams SET cooldown_until = COALESCE(?, cooldown_until), failure_streak = ?,
                            last_failure_at = ?, last_failure_reason = ? WHERE id = ?
                        """, arguments: [until, streak, at, reason, id])
                case .upstreamRecovered(let id):
                    try db.execute(sql: "UPDATE upstreams SET cooldown_until = NULL, failure_streak = 0 WHERE id = ?",
                                   arguments: [id])
                }
            }
            let key = try db.cachedStatement(sql: "UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, ''), ?) WHERE id = ?")
            for (id, at) in lastUsed.keys { try key.execute(arguments: [at, id]) }
            let upstream = try db.cachedStatement(sql: "UPDATE upstreams SET last_used_at = MAX(COALESCE(last_used_at, ''), ?) WHERE id = ?")
            for (id, at) in lastUsed.upstreams { try upstream.execute(arguments: [at, id]) }
        }
    }
}
