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
    /// Reads what the status page shows (``StatusPageQueries``), in one read transaction beside the
    /// writer (WAL).
    public func statusPageData(
        now: Date = Date(), buckets: Int = 60, bucketSeconds: Int = 60, keyLimit: Int = 200, modelLimit: Int = 20
    ) async throws -> StatusPageData {
        let page = StatusPageQueries(now: now, buckets: buckets, bucketSeconds: bucketSeconds, keyLimit: keyLimit, modelLimit: modelLimit)
        do {
            return try await writer.read { db in page.data(try page.queries(.sqlite).map { try db.table($0) }) }
        } catch {
            throw StoreError(error, path: path ?? ":memory:", busyTimeout: busyTimeout)
        }
    }

    /// The keys by state (index counts only): for `/metrics`, on every scrape.
    public func keyCounts(now: Date = Date()) async throws -> StatusPageData.KeyCounts {
        try await writer.read { db in StatusPageQueries.keyCounts(try db.table(StatusPageQueries.keyCountsQuery(.sqlite, now: now))) }
    }
}

/// The status page's queries and the Swift that makes ``StatusPageData`` of their answers, once
/// for both stores: each runs ``queries(_:)`` in one read transaction and hands the answers to
/// ``data(_:)``. The queries do not depend on each other's answers, so that they can be sent in one go.
///
/// Cheap on a big request log: the raw rows are read through the `started_at` index over the window
/// only (`requests_started_at`, `attempts_started_at`), cooldowns through `key_cooldowns_until`, keys
/// through `keys_state`; the rest are small tables.
package struct StatusPageQueries: Sendable {
    let now: Date
    let buckets: Int
    let bucketSeconds: Int
    let keyLimit: Int
    let modelLimit: Int
    /// The start of the first bucket; the last one holds `now`.
    let windowStart: Date

    /// - Parameters:
    ///   - buckets: how many buckets of `bucketSeconds` (whole minutes) the window has; the last
    ///     one holds `now`.
    ///   - keyLimit: the most keys listed; `modelLimit`: the most models listed.
    package init(now: Date, buckets: Int = 60, bucketSeconds: Int = 60, keyLimit: Int = 200, modelLimit: Int = 20) {
        precondition(bucketSeconds % 60 == 0 && buckets > 0, "buckets are whole minutes")
        self.now = now
        self.buckets = buckets
        self.bucketSeconds = bucketSeconds
        self.keyLimit = keyLimit
        self.modelLimit = modelLimit
        let seconds = Double(bucketSeconds)
        let currentBucket = (now.timeIntervalSince1970 / seconds).rounded(.down) * seconds
        windowStart = Date(timeIntervalSince1970: currentBucket - Double((buckets - 1) * bucketSeconds))
    }

    static let spendClientLimit = 8
    private static let keyColumns = """
        k.id, k.fingerprint, k.tail, k.project, k.state, k.disabled_at, k.deleted_at, k.deleted_reason, k.last_used_at,
        k.last_throttled_at
        """
    /// The states listed after the cooling keys, in order, with their order.
    private static let stateOrder = [("disabled", "disabled_at DESC, id"), ("deleted", "deleted_at DESC, id"), ("active", "id")]

    /// The queries, in the order ``data(_:)`` reads their answers.
    package func queries(_ d: SQLDialect) -> [StoreQuery] {
        var queries = [Self.keyCountsQuery(d, now: now)]
        // Cooldowns in force on keys that are not deleted, their own and their project's, each with
        // its key's columns (CROSS JOIN keeps SQLite reading the few project cooldowns first, then
        // their keys by keys_project).
        var cooling = StoreQuery(d)
        let at = cooling.bind(.time(now))
        cooling.sql = """
            SELECT c.key_id, c.model, c.until, c.reason, c.quota_id, NULL AS cooldown_project, \(Self.keyColumns)
            FROM key_cooldowns c JOIN keys k ON k.id = c.key_id
            WHERE c.until > \(at) AND k.state <> 'deleted'
            UNION ALL
            SELECT k.id, p.model, p.until, p.reason, p.quota_id, p.project, \(Self.keyColumns)
            FROM project_cooldowns p \(d.orderedJoin) keys k ON k.project = p.project
            WHERE p.until > \(at) AND k.state <> 'deleted'
            ORDER BY until, key_id, model
            LIMIT \(cooling.bind(.int(Int64(keyLimit * 20))))
            """
        queries.append(cooling)
        // Each state's first keys: at most `keyLimit` are listed, and at most `keyLimit` of them may
        // be cooling keys listed already.
        for (state, order) in Self.stateOrder {
            var query = StoreQuery(d)
            query.sql = """
                SELECT \(Self.keyColumns) FROM keys k WHERE state = \(query.bind(.text(state)))
                ORDER BY \(order) LIMIT \(query.bind(.int(Int64(2 * keyLimit))))
                """
            queries.append(query)
        }
        queries.append(StoreQuery.with(d, .time(windowStart)) { since in
            """
            SELECT upstream_id, COUNT(*) AS attempts,
                   \(d.int("SUM(CASE WHEN verdict IN ('upstream_failure', 'upstream_blocked', 'transient') THEN 1 ELSE 0 END)")) AS failures
            FROM attempts WHERE started_at >= \(since) AND upstream_id IS NOT NULL
            GROUP BY upstream_id
            """
        })
        queries.append(StoreQuery(d, sql: """
            SELECT id, base_url, state, cooldown_until, failure_streak, last_failure_at, last_failure_reason, last_used_at,
                   created_at, updated_at
            FROM upstreams ORDER BY id
            """))
        // One pass over the window's request rows (through `requests_started_at`), grouped by
        // minute and model; buckets and per-model totals are summed from that.
        queries.append(StoreQuery.with(d, .time(windowStart)) { since in
            """
            SELECT \(d.minute("started_at")) AS minute, COALESCE(model, '-') AS model, COUNT(*) AS requests,
                   \(d.int("SUM(CASE WHEN outcome <> 'success' THEN 1 ELSE 0 END)")) AS errors,
                   \(d.int("SUM(total_tokens)")) AS tokens
            FROM requests WHERE started_at >= \(since)
            GROUP BY 1, 2
            """
        })
        // The last 30 UTC days of spend per client, from the daily totals (one index range a day).
        let days = spendDays
        var spend = StoreQuery(d)
        spend.sql = """
            SELECT day, client, \(d.int("SUM(cost_micros)")) AS cost FROM daily_usage
            WHERE day >= \(spend.bind(.day(days.first!))) AND day <= \(spend.bind(.day(days.last!)))
            GROUP BY day, client HAVING SUM(cost_micros) > 0
            """
        queries.append(spend)
        return queries
    }

    /// The page from the answers of ``queries(_:)``.
    package func data(_ answers: [ReportTable]) -> StatusPageData {
        var data = StatusPageData(now: now, windowStart: windowStart, bucketSeconds: bucketSeconds)
        data.keyCounts = Self.keyCounts(answers[0])
        (data.keys, data.keysNotShown) = keys(cooling: answers[1], byState: Array(answers[2..<5]), counts: data.keyCounts)
        data.upstreams = upstreams(tries: answers[5], records: answers[6])
        traffic(answers[7], into: &data)
        data.spend = spend(answers[8])
        return data
    }

    // MARK: Keys

    package static func keyCountsQuery(_ d: SQLDialect, now: Date) -> StoreQuery {
        StoreQuery.with(d, .time(now)) { now in
            """
            SELECT
              (SELECT COUNT(*) FROM keys WHERE state = 'active') AS active,
              (SELECT COUNT(*) FROM keys WHERE state = 'disabled') AS disabled,
              (SELECT COUNT(*) FROM keys WHERE state = 'deleted') AS deleted,
              (SELECT COUNT(*) FROM (
                   SELECT c.key_id FROM key_cooldowns c \(d.orderedJoin) keys k ON k.id = c.key_id
                   WHERE c.until > \(now) AND k.state = 'active'
                   UNION
                   SELECT k.id FROM project_cooldowns p \(d.orderedJoin) keys k ON k.project = p.project
                   WHERE p.until > \(now) AND k.state = 'active') AS cooling_keys) AS cooling
            """
        }
    }

    package static func keyCounts(_ answer: ReportTable) -> StatusPageData.KeyCounts {
        guard let row = answer.storeRows.first else { return .init() }
        return .init(active: row.int("active"), cooling: row.int("cooling"), disabled: row.int("disabled"), deleted: row.int("deleted"))
    }

    /// Cooling keys first (soonest end first), then disabled, deleted (latest first), usable.
    private func keys(cooling: ReportTable, byState: [ReportTable], counts: StatusPageData.KeyCounts) -> ([StatusPageData.Key], Int) {
        func key(_ row: StoreRow, cooldowns: [CooldownListing]) -> StatusPageData.Key {
            let state = KeyRecord.State(rawValue: row.text("state")) ?? .active
            return StatusPageData.Key(
                id: row.int64("id"), fingerprint: row.text("fingerprint"), tail: row.text("tail"), project: row.optionalText("project"),
                state: state, cooldowns: cooldowns, lastUsedAt: row.date("last_used_at"), lastThrottledAt: row.date("last_throttled_at"),
                since: state == .deleted ? row.date("deleted_at") : state == .disabled ? row.date("disabled_at") : nil,
                deletedReason: row.optionalText("deleted_reason"))
        }
        var cooldowns: [Int64: [CooldownListing]] = [:]
        var coolingOrder: [Int64] = []
        var coolingRows: [Int64: StoreRow] = [:]
        for row in cooling.storeRows {
            let id = row.int64("key_id")
            if cooldowns[id] == nil {
                guard coolingOrder.count < keyLimit else { continue }
                coolingOrder.append(id)
                coolingRows[id] = row
            }
            cooldowns[id, default: []].append(CooldownListing(
                model: row.text("model"), until: row.date("until") ?? .distantPast, reason: row.text("reason"),
                quotaId: row.optionalText("quota_id"), project: row.optionalText("cooldown_project")))
        }
        var listed = coolingOrder.compactMap { id in coolingRows[id].map { key($0, cooldowns: cooldowns[id] ?? []) } }
        let shown = Set(listed.map(\.id))
        for answer in byState {
            let room = keyLimit - listed.count
            guard room > 0 else { break }
            listed += answer.storeRows.map { key($0, cooldowns: cooldowns[$0.int64("id")] ?? []) }
                .filter { !shown.contains($0.id) }.prefix(room)
        }
        let total = counts.active + counts.disabled + counts.deleted
        return (listed, max(0, total - listed.count))
    }

    // MARK: Upstreams

    private func upstreams(tries: ReportTable, records: ReportTable) -> [StatusPageData.Upstream] {
        var counts: [Int64: (Int, Int)] = [:]
        for row in tries.storeRows { counts[row.int64("upstream_id")] = (row.int("attempts"), row.int("failures")) }
        return records.storeRows.map { row in
            let upstream = UpstreamRecord(row)
            let tried = counts[upstream.id ?? 0]
            return StatusPageData.Upstream(record: upstream, attempts: tried?.0 ?? 0, failures: tried?.1 ?? 0)
        }
    }

    // MARK: Traffic

    private func traffic(_ answer: ReportTable, into data: inout StatusPageData) {
        data.buckets = Array(repeating: .init(), count: buckets)
        var byModel: [String: StatusPageData.Traffic] = [:]
        var bucketOfMinute: [String: Int] = [:]
        for row in answer.storeRows {
            let minute = row.text("minute")
            let traffic = StatusPageData.Traffic(requests: row.int("requests"), errors: row.int("errors"), tokens: row.int("tokens"))
            let bucket: Int
            if let known = bucketOfMinute[minute] {
                bucket = known
            } else {
                let start = UTC.dateTime(minute) ?? data.now
                bucket = min(buckets - 1, max(0, Int(start.timeIntervalSince(data.windowStart)) / data.bucketSeconds))
                bucketOfMinute[minute] = bucket
            }
            data.buckets[bucket].add(traffic)
            byModel[row.text("model"), default: .init()].add(traffic)
            data.total.add(traffic)
        }
        let ranked = byModel.map { StatusPageData.ModelTraffic(model: $0.key, traffic: $0.value) }
            .sorted { ($0.traffic.requests, $1.model) > ($1.traffic.requests, $0.model) }
        data.models = Array(ranked.prefix(modelLimit))
        data.modelsNotShown = ranked.count - data.models.count
    }

    // MARK: Spend

    /// The UTC days of the spend chart, oldest first, today last.
    private var spendDays: [String] {
        let today = ClientUsageCounters.day(Int64(now.timeIntervalSince1970.rounded(.down)))
        return ((today - Int64(StatusPageData.spendDays) + 1)...today).map { AppDatabase.utcDay($0 * 86_400) }
    }

    private func spend(_ answer: ReportTable) -> [StatusPageData.ClientSpend] {
        let days = spendDays
        var byClient: [String: [Int64]] = [:]
        for row in answer.storeRows {
            guard let index = days.firstIndex(of: row.text("day")) else { continue }
            byClient[row.text("client"), default: Array(repeating: 0, count: days.count)][index] += row.int64("cost")
        }
        return byClient.map { StatusPageData.ClientSpend(client: $0.key, days: days, costMicros: $0.value) }
            .sorted { ($0.total, $1.client) > ($1.total, $0.client) }
            .prefix(Self.spendClientLimit).map { $0 }
    }
}
