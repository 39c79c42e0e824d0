import Foundation
import GatewayCore
import GRDB

// MARK: - What the status page shows, read in one go

/// Everything `/status` shows that comes from the database, read in one read transaction by
/// `AppDatabase.statusPageData`. Keys appear by fingerprint and tail only, never the secret.
public struct StatusPageData: Sendable, Equatable {
    /// Key counts by condition; `active` includes `cooling`.
    public struct KeyCounts: Sendable, Equatable {
        public var active = 0
        /// Active keys with at least one cooldown in force (for some model, or via their project).
        public var cooling = 0
        public var disabled = 0
        public var deleted = 0

        public init(active: Int = 0, cooling: Int = 0, disabled: Int = 0, deleted: Int = 0) {
            self.active = active
            self.cooling = cooling
            self.disabled = disabled
            self.deleted = deleted
        }
    }

    /// One key as the page lists it.
    public struct Key: Sendable, Equatable {
        public var id: Int64
        public var fingerprint: String
        public var tail: String
        public var project: String?
        public var state: KeyRecord.State
        /// Cooldowns in force, soonest end first.
        public var cooldowns: [CooldownListing]
        public var lastUsedAt: Date?
        public var lastThrottledAt: Date?
        /// When it was disabled or deleted.
        public var since: Date?
        public var deletedReason: String?
    }

    /// One upstream (its row: base URL, state, cooldown, failures) with its tries in the window.
    public struct Upstream: Sendable, Equatable {
        public var record: UpstreamRecord
        /// Tries sent there since `windowStart`, and those that failed because of the upstream.
        public var attempts: Int
        public var failures: Int
    }

    /// Requests, errors (every outcome but success) and total tokens.
    public struct Traffic: Sendable, Equatable {
        public var requests = 0
        public var errors = 0
        public var tokens = 0

        mutating func add(_ other: Traffic) {
            requests += other.requests
            errors += other.errors
            tokens += other.tokens
        }
    }

    /// The traffic of one model ('-' for calls that name none) since `windowStart`.
    public struct ModelTraffic: Sendable, Equatable {
        public var model: String
        public var traffic: Traffic
    }

    public var now: Date
    /// The start of the first bucket; the window runs from here to `now`.
    public var windowStart: Date
    public var bucketSeconds: Int
    public var keyCounts = KeyCounts()
    /// The keys worth an operator's eye first (cooling, disabled, deleted, then usable), at most
    /// `keyLimit` of them.
    public var keys: [Key] = []
    public var keysNotShown = 0
    public var upstreams: [Upstream] = []
    /// One entry per bucket, oldest first (the last one is the bucket in progress).
    public var buckets: [Traffic] = []
    /// The busiest models (by requests), at most `modelLimit`.
    public var models: [ModelTraffic] = []
    public var modelsNotShown = 0
    /// Everything in the window, shown models or not.
    public var total = Traffic()
    /// What each client spent (micro-dollars) per UTC day of the last ``spendDays`` days (oldest
    /// first, today last), the biggest spenders first, at most `spendClientLimit` of them.
    public var spend: [ClientSpend] = []
    public static let spendDays = 30

    /// One client's spend per day.
    public struct ClientSpend: Sendable, Equatable {
        public var client: String
        /// UTC days ('YYYY-MM-DD'), oldest first, and what was spent on each.
        public var days: [String]
        public var costMicros: [Int64]
        public var total: Int64 { costMicros.reduce(0, +) }
    }

    /// The start of bucket `index`.
    public func bucketStart(_ index: Int) -> Date {
        windowStart.addingTimeInterval(Double(index * bucketSeconds))
    }
}

extension AppDatabase {
    /// Reads what the status page shows, in one read transaction beside the writer (WAL).
    ///
    /// Cheap on a big request log: the raw rows are read through the `started_at` index over
    /// the window only (`requests_started_at`, `attempts_started_at`), cooldowns through
    /// `key_cooldowns_until`, keys through `keys_state`; the rest are small tables.
    /// - Parameters:
    ///   - buckets: how many buckets of `bucketSeconds` (whole minutes) the window has; the last
    ///     one holds `now`.
    ///   - keyLimit: the most keys listed; `modelLimit`: the most models listed.
    public func statusPageData(
        now: Date = Date(), buckets: Int = 60, bucketSeconds: Int = 60, keyLimit: Int = 200, modelLimit: Int = 20
    ) async throws -> StatusPageData {
        let seconds = Double(bucketSeconds)
        let currentBucket = (now.timeIntervalSince1970 / seconds).rounded(.down) * seconds
        let windowStart = Date(timeIntervalSince1970: currentBucket - Double((buckets - 1) * bucketSeconds))
        precondition(bucketSeconds % 60 == 0 && buckets > 0, "buckets are whole minutes")
        do {
            return try await writer.read { db in
                var data = StatusPageData(now: now, windowStart: windowStart, bucketSeconds: bucketSeconds)
                data.keyCounts = try Self.statusKeyCounts(db, now: now)
                (data.keys, data.keysNotShown) = try Self.statusKeys(db, now: now, limit: keyLimit, counts: data.keyCounts)
                data.upstreams = try Self.statusUpstreams(db, since: windowStart)
                try Self.statusTraffic(db, into: &data, buckets: buckets, modelLimit: modelLimit)
                data.spend = try Self.statusSpend(db, now: now, clientLimit: 8)
                return data
            }
        } catch {
            throw StoreError(error, path: path ?? ":memory:", busyTimeout: busyTimeout)
        }
    }

    // MARK: Spend

    /// The last 30 UTC days of spend per client, from the daily totals (one index range a day).
    static func statusSpend(_ db: Database, now: Date, clientLimit: Int) throws -> [StatusPageData.ClientSpend] {
        let today = ClientUsageCounters.day(Int64(now.timeIntervalSince1970.rounded(.down)))
        let days = ((today - Int64(StatusPageData.spendDays) + 1)...today).map { utcDay($0 * 86_400) }
        var byClient: [String: [Int64]] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT day, client, SUM(cost_micros) AS cost FROM daily_usage
            WHERE day >= ? AND day <= ? GROUP BY day, client HAVING SUM(cost_micros) > 0
            """, arguments: [days.first!, days.last!]) {
            let day: String = row["day"]
            guard let index = days.firstIndex(of: day) else { continue }
            byClient[row["client"], default: Array(repeating: 0, count: days.count)][index] += row["cost"] as Int64
        }
        return byClient.map { StatusPageData.ClientSpend(client: $0.key, days: days, costMicros: $0.value) }
            .sorted { ($0.total, $1.client) > ($1.total, $0.client) }
            .prefix(clientLimit).map { $0 }
    }

    // MARK: Keys

    /// The keys by state (index counts only): for `/metrics`, on every scrape.
    public func keyCounts(now: Date = Date()) async throws -> StatusPageData.KeyCounts {
        try await writer.read { db in try Self.statusKeyCounts(db, now: now) }
    }

    static func statusKeyCounts(_ db: Database, now: Date) throws -> StatusPageData.KeyCounts {
        let row = try Row.fetchOne(db, sql: """
            SELECT
              (SELECT COUNT(*) FROM keys WHERE state = 'active') AS active,
              (SELECT COUNT(*) FROM keys WHERE state = 'disabled') AS disabled,
              (SELECT COUNT(*) FROM keys WHERE state = 'deleted') AS deleted,
              (SELECT COUNT(*) FROM (
                   SELECT c.key_id FROM key_cooldowns c CROSS JOIN keys k ON k.id = c.key_id
                   WHERE c.until > :now AND k.state = 'active'
                   UNION
                   SELECT k.id FROM project_cooldowns p CROSS JOIN keys k ON k.project = p.project
                   WHERE p.until > :now AND k.state = 'active')) AS cooling
            """, arguments: ["now": now])!
        return .init(active: row["active"], cooling: row["cooling"], disabled: row["disabled"], deleted: row["deleted"])
    }

    private static let statusKeyColumns = """
        id, fingerprint, tail, project, state, disabled_at, deleted_at, deleted_reason, last_used_at, last_throttled_at
        """

    /// Cooling keys first (soonest end first), then disabled, deleted (latest first), usable.
    static func statusKeys(
        _ db: Database, now: Date, limit: Int, counts: StatusPageData.KeyCounts
    ) throws -> ([StatusPageData.Key], Int) {
        // Cooldowns in force on keys that are not deleted: their own and their project's (CROSS JOIN
        // keeps SQLite reading the few project cooldowns first, then their keys by keys_project).
        var cooldowns: [Int64: [CooldownListing]] = [:]
        var coolingOrder: [Int64] = []
        for row in try Row.fetchAll(db, sql: """
            SELECT c.key_id, c.model, c.until, c.reason, c.quota_id, NULL AS project
            FROM key_cooldowns c JOIN keys k ON k.id = c.key_id
            WHERE c.until > :now AND k.state <> 'deleted'
            UNION ALL
            SELECT k.id, p.model, p.until, p.reason, p.quota_id, p.project
            FROM project_cooldowns p CROSS JOIN keys k ON k.project = p.project
            WHERE p.until > :now AND k.state <> 'deleted'
            ORDER BY until
            LIMIT :rows
            """, arguments: ["now": now, "rows": limit * 20]) {
            let id: Int64 = row["key_id"]
            if cooldowns[id] == nil {
                guard coolingOrder.count < limit else { continue }
                coolingOrder.append(id)
            }
            cooldowns[id, default: []].append(CooldownListing(
                model: row["model"], until: row["until"], reason: row["reason"], quotaId: row["quota_id"], project: row["project"]
            ))
        }

        func keys(_ rows: [Row]) -> [StatusPageData.Key] {
            rows.map { row in
                let state = KeyRecord.State(rawValue: row["state"]) ?? .active
                let id: Int64 = row["id"]
                return StatusPageData.Key(
                    id: id, fingerprint: row["fingerprint"], tail: row["tail"], project: row["project"], state: state,
                    cooldowns: cooldowns[id] ?? [], lastUsedAt: row["last_used_at"], lastThrottledAt: row["last_throttled_at"],
                    since: state == .deleted ? row["deleted_at"] : state == .disabled ? row["disabled_at"] : nil,
                    deletedReason: row["deleted_reason"]
                )
            }
        }

        var listed: [StatusPageData.Key] = []
        if !coolingOrder.isEmpty {
            let byID = Dictionary(uniqueKeysWithValues: keys(try Row.fetchAll(
                db, sql: "SELECT \(statusKeyColumns) FROM keys WHERE id IN (\(databaseQuestionMarks(count: coolingOrder.count)))",
                arguments: StatementArguments(coolingOrder)
            )).map { ($0.id, $0) })
            listed = coolingOrder.compactMap { byID[$0] }
        }
        let shown = Set(listed.map(\.id))
        for (state, order) in [("disabled", "disabled_at DESC, id"), ("deleted", "deleted_at DESC, id"), ("active", "id")] {
            let room = limit - listed.count
            guard room > 0 else { break }
            let rows = try Row.fetchAll(db, sql: """
                SELECT \(statusKeyColumns) FROM keys WHERE state = ? ORDER BY \(order) LIMIT ?
                """, arguments: [state, room + shown.count])
            listed += keys(rows).filter { !shown.contains($0.id) }.prefix(room)
        }
        let total = counts.active + counts.disabled + counts.deleted
        return (listed, max(0, total - listed.count))
    }

    // MARK: Upstreams

    static func statusUpstreams(_ db: Database, since: Date) throws -> [StatusPageData.Upstream] {
        var tries: [Int64: (Int, Int)] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT upstream_id, COUNT(*) AS attempts,
                   SUM(verdict IN ('upstream_failure', 'upstream_blocked', 'transient')) AS failures
            FROM attempts WHERE started_at >= ? AND upstream_id IS NOT NULL
            GROUP BY upstream_id
            """, arguments: [since]) {
            tries[row["upstream_id"]] = (row["attempts"], row["failures"])
        }
        return try UpstreamRecord.order(UpstreamRecord.Columns.id).fetchAll(db).map { upstream in
            let counts = tries[upstream.id ?? 0]
            return StatusPageData.Upstream(record: upstream, attempts: counts?.0 ?? 0, failures: counts?.1 ?? 0)
        }
    }

    // MARK: Traffic

    /// One pass over the window's request rows (through `requests_started_at`), grouped by
    /// minute and model; buckets and per-model totals are summed from that.
    static func statusTraffic(_ db: Database, into data: inout StatusPageData, buckets: Int, modelLimit: Int) throws {
        data.buckets = Array(repeating: .init(), count: buckets)
        var byModel: [String: StatusPageData.Traffic] = [:]
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        let rows = try Row.fetchCursor(db, sql: """
            SELECT substr(started_at, 1, 16) AS minute, COALESCE(model, '-') AS model, COUNT(*) AS requests,
                   SUM(outcome <> 'success') AS errors, SUM(total_tokens) AS tokens
            FROM requests WHERE started_at >= ?
            GROUP BY minute, model
            """, arguments: [data.windowStart])
        var bucketOfMinute: [String: Int] = [:]
        while let row = try rows.next() {
            let minute: String = row["minute"]
            let traffic = StatusPageData.Traffic(requests: row["requests"], errors: row["errors"], tokens: row["tokens"])
            let bucket: Int
            if let known = bucketOfMinute[minute] {
                bucket = known
            } else {
                let start = formatter.date(from: minute) ?? data.now
                bucket = min(buckets - 1, max(0, Int(start.timeIntervalSince(data.windowStart)) / data.bucketSeconds))
                bucketOfMinute[minute] = bucket
            }
            data.buckets[bucket].add(traffic)
            byModel[row["model"], default: .init()].add(traffic)
            data.total.add(traffic)
        }
        let ranked = byModel.map { StatusPageData.ModelTraffic(model: $0.key, traffic: $0.value) }
            .sorted { ($0.traffic.requests, $1.model) > ($1.traffic.requests, $0.model) }
        data.models = Array(ranked.prefix(modelLimit))
        data.modelsNotShown = ranked.count - data.models.count
    }
}
