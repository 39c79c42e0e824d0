import Foundation
import GatewayCore

// MARK: - What the operator's lists read, written once for both stores

/// The queries of `keys list`, `clients list`, `upstreams list`, `prices list` and `status`, and
/// the Swift that turns their rows into listings. Each store runs the queries in one read
/// transaction (SQLite's `read`, PostgreSQL's `transaction`) and hands the answers back here, so
/// that the two stores list the same things the same way.
package enum StoreLists {
    // MARK: Keys

    /// The cooldowns in force, the project cooldowns in force, the keys with their counts.
    package static func keyQueries(_ dialect: SQLDialect, now: Date) -> [StoreQuery] {
        let d = dialect
        return [
            StoreQuery.with(d, .time(now)) {
                "SELECT key_id, model, until, reason, quota_id FROM key_cooldowns WHERE until > \($0) ORDER BY key_id, model"
            },
            StoreQuery.with(d, .time(now)) {
                "SELECT project, model, until, reason, quota_id FROM project_cooldowns WHERE until > \($0) ORDER BY project, model"
            },
            StoreQuery(d, sql: """
                SELECT k.id, k.secret, k.fingerprint, k.tail, k.project, k.state, k.deleted_at, k.deleted_reason,
                       k.last_used_at, k.last_throttled_at, k.free_tier,
                       COALESCE(r.requests, 0) AS requests, COALESCE(r.failed, 0) AS failed,
                       COALESCE(r.throttles, 0) AS throttles
                FROM keys k
                LEFT JOIN (SELECT key_id, \(d.int("SUM(requests)")) AS requests, \(d.int("SUM(errors)")) AS failed,
                                  \(d.int("SUM(throttled_attempts)")) AS throttles
                           FROM daily_key_usage GROUP BY key_id) r ON r.key_id = k.id
                ORDER BY k.id
                """),
        ]
    }

    /// Every key (in `states`) with its cooldowns in force and its request counts; never the secret.
    package static func keys(_ answers: [ReportTable], states: Set<KeyRecord.State>) -> [KeyListing] {
        var cooldowns: [Int64: [CooldownListing]] = [:]
        for row in answers[0].storeRows {
            cooldowns[row.int64("key_id"), default: []].append(CooldownListing(
                model: row.text("model"), until: row.date("until") ?? .distantPast, reason: row.text("reason"),
                quotaId: row.optionalText("quota_id")))
        }
        var projectCooldowns: [String: [CooldownListing]] = [:]
        for row in answers[1].storeRows {
            projectCooldowns[row.text("project"), default: []].append(CooldownListing(
                model: row.text("model"), until: row.date("until") ?? .distantPast, reason: row.text("reason"),
                quotaId: row.optionalText("quota_id"), project: row.text("project")))
        }
        return answers[2].storeRows.compactMap { row -> KeyListing? in
            guard let state = KeyRecord.State(rawValue: row.text("state")), states.contains(state) else { return nil }
            let id = row.int64("id"), project = row.optionalText("project")
            var inForce = state == .deleted ? [] : cooldowns[id] ?? []
            if state != .deleted, let project { inForce += projectCooldowns[project] ?? [] }
            let validSecret = if case .success = ListFile.validateKey(row.text("secret")) { true } else { false }
            return KeyListing(
                id: id, fingerprint: row.text("fingerprint"), tail: row.text("tail"), project: project, state: state,
                cooldowns: inForce.sorted { $0.until < $1.until },
                lastUsedAt: row.date("last_used_at"), lastThrottledAt: row.date("last_throttled_at"),
                deletedAt: row.date("deleted_at"), deletedReason: row.optionalText("deleted_reason"),
                requests: row.int("requests"), failedRequests: row.int("failed"), throttles: row.int("throttles"),
                invalidSecret: !validSecret, freeTier: row.bool("free_tier"))
        }
    }

    /// The secrets of every key, for `keys check` (never shown).
    package static let secretsQuery = "SELECT id, secret FROM keys"

    /// The keys `keys check` probes: those `chosen` (by selector) if any; else every key when
    /// `all`; else the deleted, disabled and cooling ones; with their secrets.
    package static func keysToCheck(_ listed: [KeyListing], secrets: ReportTable, chosen: Set<Int64>?, all: Bool) -> [KeyCheckCandidate] {
        let keys = listed.filter { key in
            if let chosen { return chosen.contains(key.id) }
            return all || key.state != .active || !key.cooldowns.isEmpty
        }
        var byID: [Int64: String] = [:]
        for row in secrets.storeRows { byID[row.int64("id")] = row.text("secret") }
        return keys.compactMap { key in byID[key.id].map { KeyCheckCandidate(key: key, secret: $0) } }
    }

    // MARK: Clients

    package static let clientsSQL = """
        SELECT c.id, c.name, c.token_hash, c.token_tail, c.created_at, c.revoked_at, c.rpm, c.rpd, c.tpm, c.tpd,
               c.daily_budget_micros, c.monthly_budget_micros, c.max_concurrent, c.models, c.expires_at, c.updated_at,
               COALESCE(r.requests, 0) AS requests, r.last_request_at
        FROM clients c
        LEFT JOIN (SELECT client_id, COUNT(*) AS requests, MAX(started_at) AS last_request_at
                   FROM requests GROUP BY client_id) r ON r.client_id = c.id
        ORDER BY c.id
        """

    package static func clients(_ answer: ReportTable, usage: [Int64: ClientUsage]) -> [ClientListing] {
        answer.storeRows.map { row in
            let client = ClientRecord(row)
            return ClientListing(
                id: client.id ?? 0, name: client.name, tokenTail: client.tokenTail, createdAt: client.createdAt,
                revokedAt: client.revokedAt, requests: row.int("requests"), lastRequestAt: row.date("last_request_at"),
                limits: client.limits, usage: usage[client.id ?? 0] ?? ClientUsage())
        }
    }

    // MARK: Upstreams

    package static func upstreamsSQL(_ d: SQLDialect) -> String {
        """
        SELECT u.id, u.base_url, u.state, u.cooldown_until, u.failure_streak, u.last_failure_at, u.last_failure_reason,
               u.last_used_at, u.created_at, u.updated_at,
               COALESCE(r.requests, 0) AS requests, COALESCE(r.failed, 0) AS failed
        FROM upstreams u
        LEFT JOIN (SELECT upstream_id, \(d.int("SUM(requests)")) AS requests, \(d.int("SUM(upstream_failures)")) AS failed
                   FROM daily_upstream_usage GROUP BY upstream_id) r ON r.upstream_id = u.id
        ORDER BY u.id
        """
    }

    package static func upstreams(_ answer: ReportTable, now: Date) -> [UpstreamListing] {
        answer.storeRows.map { row in
            let upstream = UpstreamRecord(row)
            return UpstreamListing(
                id: upstream.id ?? 0, baseUrl: upstream.baseUrl, state: upstream.state,
                cooldownUntil: upstream.cooldownUntil.flatMap { $0 > now ? $0 : nil },
                failureStreak: upstream.failureStreak, lastFailureAt: upstream.lastFailureAt,
                lastFailureReason: upstream.lastFailureReason, lastUsedAt: upstream.lastUsedAt,
                requests: row.int("requests"), failedAttempts: row.int("failed"), invalidURL: !upstream.hasValidURL)
        }
    }

    // MARK: Prices

    package static func pricesSQL(_ d: SQLDialect) -> String {
        """
        SELECT model, input, cached_input, output, thinking, long_context_threshold, input_long, cached_input_long,
               output_long, thinking_long, audio_input, source, taken_on
        FROM prices ORDER BY \(d.bytewise("model"))
        """
    }

    package static func prices(_ answer: ReportTable) -> [ModelPrice] {
        answer.storeRows.map { row in
            ModelPrice(
                model: row.text("model"), input: row.int64("input"), cachedInput: row.int64("cached_input"),
                output: row.int64("output"), thinking: row.int64("thinking"),
                longContextThreshold: row.optionalInt("long_context_threshold"), inputLong: row.optionalInt64("input_long"),
                cachedInputLong: row.optionalInt64("cached_input_long"), outputLong: row.optionalInt64("output_long"),
                thinkingLong: row.optionalInt64("thinking_long"), audioInput: row.optionalInt64("audio_input"),
                source: row.optionalText("source"), takenOn: row.optionalText("taken_on"))
        }
    }

    // MARK: Status

    package static func statusQuery(_ d: SQLDialect, now: Date) -> StoreQuery {
        StoreQuery.with(d, .time(now)) { now in
            """
            SELECT
              (SELECT COUNT(*) FROM keys WHERE state = 'active') AS active_keys,
              (SELECT COUNT(*) FROM keys k WHERE state = 'active' AND (
                  EXISTS (SELECT 1 FROM key_cooldowns c WHERE c.key_id = k.id AND c.until > \(now))
                  OR EXISTS (SELECT 1 FROM project_cooldowns p WHERE p.project = k.project AND p.until > \(now)))
              ) AS cooling_keys,
              (SELECT COUNT(*) FROM keys WHERE state = 'disabled') AS disabled_keys,
              (SELECT COUNT(*) FROM keys WHERE state = 'deleted') AS deleted_keys,
              (SELECT COUNT(*) FROM upstreams WHERE state = 'active') AS active_upstreams,
              (SELECT COUNT(*) FROM upstreams WHERE state = 'active' AND cooldown_until > \(now)) AS cooling_upstreams,
              (SELECT COUNT(*) FROM upstreams WHERE state = 'disabled') AS disabled_upstreams,
              (SELECT COUNT(*) FROM clients WHERE revoked_at IS NULL) AS active_clients,
              (SELECT COUNT(*) FROM requests) AS requests
            """
        }
    }

    package static func status(_ answer: ReportTable) -> StoreStatus {
        let row = answer.storeRows.first ?? StoreRow(index: [:], values: [])
        let active = row.int("active_keys"), cooling = row.int("cooling_keys")
        return StoreStatus(
            usableKeys: active - cooling, coolingKeys: cooling,
            disabledKeys: row.int("disabled_keys"), deletedKeys: row.int("deleted_keys"),
            activeUpstreams: row.int("active_upstreams"), coolingUpstreams: row.int("cooling_upstreams"),
            disabledUpstreams: row.int("disabled_upstreams"), activeClients: row.int("active_clients"),
            requestsLogged: row.int("requests"))
    }
}

// MARK: - Records from either store's rows

extension ClientRecord {
    /// A client from its row (the columns of `clients`), as either store gives it.
    init(_ row: StoreRow) {
        self.init(
            id: row.optionalInt64("id"), name: row.text("name"), tokenHash: row.text("token_hash"),
            tokenTail: row.text("token_tail"), createdAt: row.date("created_at") ?? .distantPast, revokedAt: row.date("revoked_at"))
        rpm = row.optionalInt("rpm")
        rpd = row.optionalInt("rpd")
        tpm = row.optionalInt("tpm")
        tpd = row.optionalInt("tpd")
        dailyBudgetMicros = row.optionalInt64("daily_budget_micros")
        monthlyBudgetMicros = row.optionalInt64("monthly_budget_micros")
        maxConcurrent = row.optionalInt("max_concurrent")
        models = row.optionalText("models")
        expiresAt = row.date("expires_at")
        updatedAt = row.date("updated_at")
    }

    /// The first client of `answer`, if any.
    package static func first(_ answer: ReportTable) -> ClientRecord? { answer.storeRows.first.map(ClientRecord.init) }
}

extension UpstreamRecord {
    /// An upstream from its row (the columns of `upstreams`), as either store gives it.
    init(_ row: StoreRow) {
        self.init(
            id: row.optionalInt64("id"), baseUrl: row.text("base_url"),
            state: UpstreamRecord.State(rawValue: row.text("state")) ?? .disabled,
            cooldownUntil: row.date("cooldown_until"), failureStreak: row.int("failure_streak"),
            lastFailureAt: row.date("last_failure_at"), lastFailureReason: row.optionalText("last_failure_reason"),
            lastUsedAt: row.date("last_used_at"), createdAt: row.date("created_at") ?? .distantPast,
            updatedAt: row.date("updated_at") ?? .distantPast)
    }

    package static func first(_ answer: ReportTable) -> UpstreamRecord? { answer.storeRows.first.map(UpstreamRecord.init) }
}

extension KeyRecord {
    /// A key from its row (the columns of `keys`), as either store gives it.
    init(_ row: StoreRow) {
        self.init(
            id: row.optionalInt64("id"), secret: row.text("secret"), fingerprint: row.text("fingerprint"),
            tail: row.text("tail"), project: row.optionalText("project"),
            state: KeyRecord.State(rawValue: row.text("state")) ?? .disabled,
            disabledAt: row.date("disabled_at"), deletedAt: row.date("deleted_at"),
            deletedReason: row.optionalText("deleted_reason"), lastUsedAt: row.date("last_used_at"),
            lastThrottledAt: row.date("last_throttled_at"), throttleStreak: row.int("throttle_streak"),
            createdAt: row.date("created_at") ?? .distantPast, updatedAt: row.date("updated_at") ?? .distantPast,
            freeTier: row.bool("free_tier"))
    }

    package static func all(_ answer: ReportTable) -> [KeyRecord] { answer.storeRows.map(KeyRecord.init) }
}
