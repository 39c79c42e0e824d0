import Foundation
import GatewayCore
import GRDB

// MARK: - Gateway tokens (clients)

/// One client in `clients list`: the token's last 4 characters only.
public struct ClientListing: Codable, Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var tokenTail: String
    public var createdAt: Date
    public var revokedAt: Date?
    public var requests: Int
    public var lastRequestAt: Date?
    /// Its limits (nil: none) and what it used of them: requests and tokens of the last minute
    /// and of today (UTC), money of today and of this month (micro-dollars), as the request log
    /// holds them (written within a second).
    public var limits: ClientLimits
    public var usage: ClientUsage
}

/// What a client used in the windows of its limits, from the request log: admitted requests
/// (refusals by its limits not counted), tokens (prompt + candidates + thoughts), cost.
public struct ClientUsage: Codable, Sendable, Equatable {
    public var minuteRequests = 0
    public var minuteTokens = 0
    public var dayRequests = 0
    public var dayTokens = 0
    public var dayCostMicros: Int64 = 0
    public var monthCostMicros: Int64 = 0
    public init() {}
}

/// A change of a client's limits: each nil leaves that limit as it is, `.some(nil)` removes it.
public struct ClientLimitsChange: Sendable {
    public var rpm: Int??
    public var rpd: Int??
    public var tpm: Int??
    public var tpd: Int??
    public var dailyBudgetMicros: Int64??
    public var monthlyBudgetMicros: Int64??
    public var maxConcurrent: Int??
    public var models: [String]??
    public var expiresAt: Date??
    public init() {}

    public var isEmpty: Bool {
        rpm == nil && rpd == nil && tpm == nil && tpd == nil && dailyBudgetMicros == nil && monthlyBudgetMicros == nil
            && maxConcurrent == nil && models == nil && expiresAt == nil
    }

    public func applied(to limits: ClientLimits) -> ClientLimits {
        var l = limits
        if let rpm { l.rpm = rpm }
        if let rpd { l.rpd = rpd }
        if let tpm { l.tpm = tpm }
        if let tpd { l.tpd = tpd }
        if let dailyBudgetMicros { l.dailyBudgetMicros = dailyBudgetMicros }
        if let monthlyBudgetMicros { l.monthlyBudgetMicros = monthlyBudgetMicros }
        if let maxConcurrent { l.maxConcurrent = maxConcurrent }
        if let models { l.models = models }
        if let expiresAt { l.expiresAt = expiresAt }
        return l
    }
}

extension AppDatabase {
    /// Creates a client with a fresh token, stores only the token's hash, and returns the token:
    /// the one time it is ever shown.
    public func addClient(name: String, limits: ClientLimits = ClientLimits(), now: Date = Date()) throws -> (client: ClientRecord, token: String) {
        let name = name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 100, name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) else {
            throw StoreError.invalid("a client name is 1 to 100 printable characters")
        }
        let token = Secret.newToken()
        let client = try write { db in
            if try ClientRecord.filter(ClientRecord.Columns.name == name && ClientRecord.Columns.revokedAt == nil).fetchCount(db) > 0 {
                throw StoreError.invalid("a client named '\(name)' exists already (revoke it first, or pick another name)")
            }
            var client = ClientRecord(
                id: nil, name: name, tokenHash: Secret.tokenHash(token), tokenTail: Secret.tail(token),
                createdAt: now, revokedAt: nil, limits: limits
            )
            try client.insert(db)
            return client
        }
        return (client, token)
    }

    /// The active client whose token hashes to `tokenHash`, if any.
    public func client(tokenHash: String) throws -> ClientRecord? {
        try read { db in
            try ClientRecord.filter(ClientRecord.Columns.tokenHash == tokenHash && ClientRecord.Columns.revokedAt == nil).fetchOne(db)
        }
    }

    /// Every client that is not revoked: (id, name, token hash).
    public func activeClients() throws -> [ClientRecord] {
        try read { db in try ClientRecord.filter(ClientRecord.Columns.revokedAt == nil).fetchAll(db) }
    }

    public func listClients(now: Date = Date()) throws -> [ClientListing] {
        try read { db in
            StoreLists.clients(try db.table(StoreQuery(.sqlite, sql: StoreLists.clientsSQL)), usage: try Self.clientUsage(db, now: now))
        }
    }

    /// Revokes the active client with this name or id. Its rows in the request log stay.
    @discardableResult
    public func revokeClient(_ selector: String, now: Date = Date()) throws -> ClientRecord {
        try write { db in
            let active = ClientRecord.filter(ClientRecord.Columns.revokedAt == nil)
            let found = try Int64(selector).flatMap { try active.filter(key: $0).fetchOne(db) }
                ?? active.filter(ClientRecord.Columns.name == selector).fetchOne(db)
            guard var client = found else {
                throw StoreError.notFound("no active client named '\(selector)' (see 'gemini-gateway clients list')")
            }
            client.revokedAt = now
            try client.update(db)
            return client
        }
    }

    /// Changes the limits of the active client with this name or id. The running gateway picks
    /// the change up with its next reload (`updated_at` moves).
    @discardableResult
    public func setClientLimits(_ selector: String, _ change: ClientLimitsChange, now: Date = Date()) throws -> ClientRecord {
        try write { db in
            var client = try Self.activeClient(selector, db)
            client.limits = change.applied(to: client.limits)
            client.updatedAt = now
            try client.update(db)
            return client
        }
    }

    static func activeClient(_ selector: String, _ db: Database) throws -> ClientRecord {
        let active = ClientRecord.filter(ClientRecord.Columns.revokedAt == nil)
        let found = try Int64(selector).flatMap { try active.filter(key: $0).fetchOne(db) }
            ?? active.filter(ClientRecord.Columns.name == selector).fetchOne(db)
        guard let client = found else {
            throw StoreError.notFound("no active client named '\(selector)' (see 'gemini-gateway clients list')")
        }
        return client
    }

    // MARK: - What clients used, for their limits

    /// What the active clients used (by id) as of `now`: admitted requests (not refused by their
    /// limits), tokens (prompt + candidates + thoughts) and cost in today's and this month's UTC
    /// days from the daily totals (by client name), and the last minute from the raw rows.
    public func clientUsage(now: Date = Date()) throws -> (usage: [Int64: ClientUsage], lastMinute: [RecentClientRequest]) {
        try read { db in (try Self.clientUsage(db, now: now), try Self.lastMinute(db, now: now)) }
    }

    static func clientUsage(_ db: Database, now: Date) throws -> [Int64: ClientUsage] {
        let second = Int64(now.timeIntervalSince1970.rounded(.down))
        let today = Self.utcDay(second)
        let (year, month, _) = UTCCalendar.civil(ClientUsageCounters.day(second))
        let monthStart = String(format: "%04d-%02d-01", Int(year), Int(month))
        var usage: [Int64: ClientUsage] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT c.id,
                   COALESCE(SUM(CASE WHEN d.day = ? THEN d.requests - d.client_limited END), 0) AS day_requests,
                   COALESCE(SUM(CASE WHEN d.day = ? THEN d.prompt_tokens + d.candidates_tokens + d.thoughts_tokens END), 0) AS day_tokens,
                   COALESCE(SUM(CASE WHEN d.day = ? THEN d.cost_micros END), 0) AS day_cost,
                   COALESCE(SUM(d.cost_micros), 0) AS month_cost
            FROM clients c
            JOIN daily_usage d ON d.client = c.name AND d.day >= ? AND d.day <= ?
            WHERE c.revoked_at IS NULL
            GROUP BY c.id
            """, arguments: [today, today, today, monthStart, today]) {
            var u = ClientUsage()
            u.dayRequests = row["day_requests"]
            u.dayTokens = row["day_tokens"]
            u.dayCostMicros = row["day_cost"]
            u.monthCostMicros = row["month_cost"]
            usage[row["id"]] = u
        }
        for recent in try lastMinute(db, now: now) {
            usage[recent.clientId, default: ClientUsage()].minuteRequests += 1
            usage[recent.clientId, default: ClientUsage()].minuteTokens += recent.tokens
        }
        return usage
    }

    static func lastMinute(_ db: Database, now: Date) throws -> [RecentClientRequest] {
        try Row.fetchAll(db, sql: """
            SELECT client_id, started_at, prompt_tokens + candidates_tokens + thoughts_tokens AS tokens
            FROM requests
            WHERE started_at > ? AND client_id IS NOT NULL AND outcome <> 'client_limit'
            ORDER BY started_at
            """, arguments: [now.addingTimeInterval(-60)]).map {
            RecentClientRequest(clientId: $0["client_id"], startedAt: $0["started_at"], tokens: $0["tokens"])
        }
    }

    /// 'YYYY-MM-DD' of the UTC day holding `second`.
    static func utcDay(_ second: Int64) -> String {
        let (y, m, d) = UTCCalendar.civil(ClientUsageCounters.day(second))
        return String(format: "%04d-%02d-%02d", Int(y), Int(m), Int(d))
    }
}
