import Foundation
import GRDB

// MARK: - Reports over a time range

/// What a usage report groups by.
public enum UsageDimension: String, Sendable, CaseIterable {
    case client
    case model
}

/// Narrows a report to one client and/or one model (exact names; `-` matches none).
public struct ReportFilter: Sendable, Equatable {
    public var client: String?
    public var model: String?

    public init(client: String? = nil, model: String? = nil) {
        self.client = client
        self.model = model
    }
}

/// A report, as the `report` command asks for it: built once (``query(_:prunedBefore:)``) in
/// either store's dialect, and read by either store (``ReportStore/report(_:)``).
public enum ReportSpec: Sendable, Equatable {
    case usage(UsageDimension, ReportRange, ReportFilter = .init(), perDay: Bool = true)
    case keys(ReportRange)
    case upstreams(ReportRange, model: String? = nil)
    case health(problemsOnly: Bool = false)
    case spend(SpendDimension, ReportRange, perDay: Bool = true)

    /// Where the cut days' raw rows are gone: retention's mark, read before the report's query.
    package static let prunedBeforeSQL = "SELECT pruned_before FROM log_state"

    /// The query, the columns a terminal table shows and the days shown whole. `prunedBefore`:
    /// `log_state.pruned_before`, read in the same transaction.
    package func query(_ dialect: SQLDialect, prunedBefore: Date?) -> ReportQuery {
        var query = StoreQuery(dialect)
        switch self {
        case .usage(let dimension, let range, let filter, let perDay):
            let plan = ReportPlan(range, prunedBefore: prunedBefore)
            let columns = Self.usage(&query, by: dimension, plan: plan, filter: filter, perDay: perDay)
            return ReportQuery(query: query, tableColumns: columns, widenedDays: plan.widenedDays)
        case .keys(let range):
            let plan = ReportPlan(range, prunedBefore: prunedBefore)
            let columns = Self.keys(&query, plan: plan)
            return ReportQuery(query: query, tableColumns: columns, widenedDays: plan.widenedDays)
        case .upstreams(let range, let model):
            let plan = ReportPlan(range, prunedBefore: prunedBefore)
            let columns = Self.upstreams(&query, plan: plan, model: model)
            return ReportQuery(query: query, tableColumns: columns, widenedDays: plan.widenedDays)
        case .health(let problemsOnly):
            let columns = Self.health(&query, problemsOnly: problemsOnly)
            return ReportQuery(query: query, tableColumns: columns, widenedDays: [])
        case .spend(let dimension, let range, let perDay):
            let plan = ReportPlan(range, prunedBefore: prunedBefore)
            let columns = Self.spend(&query, by: dimension, plan: plan, perDay: perDay)
            return ReportQuery(query: query, tableColumns: columns, widenedDays: plan.widenedDays)
        }
    }

    /// Requests, errors and tokens per client (or model) per UTC day, like the
    /// `usage_by_client_day`/`usage_by_model_day` views but for any range: whole days come from
    /// `daily_usage`, the parts of days the range cuts from the raw rows. `perDay: false` gives one
    /// row per client (or model) for the whole range.
    static func usage(_ q: inout StoreQuery, by dimension: UsageDimension, plan: ReportPlan, filter: ReportFilter, perDay: Bool) -> [String] {
        var source = SourceBuilder()
        let columns = UsageColumn.allCases
        if let days = plan.days {
            var sql = "SELECT day, client, model, \(columns.map(\.name).joined(separator: ", ")) FROM daily_usage WHERE day BETWEEN \(q.bind(.day(days.first))) AND \(q.bind(.day(days.last)))"
            addFilter(filter, to: &sql, &q)
            source.add(sql)
        }
        let rawSums = columns.map { "SUM(\($0.factsColumn)) AS \($0.name)" }
        for window in plan.windows {
            var sql = "SELECT day, client, model, \(rawSums.joined(separator: ", ")) FROM request_facts WHERE started_at >= \(q.bind(.time(window.start))) AND started_at < \(q.bind(.time(window.end)))"
            addFilter(filter, to: &sql, &q)
            sql += " GROUP BY day, client, model"
            source.add(sql)
        }
        let group = (perDay ? ["day"] : []) + [dimension.rawValue]
        let noRow = (["NULL AS day", "NULL AS client", "NULL AS model"] + columns.map { "0 AS \($0.name)" }).joined(separator: ", ")
        let measures = UsageColumn.reportMeasures
        q.sql = """
            WITH source AS (\(source.sql(empty: "SELECT \(noRow) WHERE 1 = 0")))
            SELECT \(group.joined(separator: ", ")), \(measures.map { $0.selected(q.dialect) }.joined(separator: ", "))
            FROM source
            GROUP BY \(group.joined(separator: ", "))
            ORDER BY \(((perDay ? ["day"] : []) + [q.dialect.bytewise(dimension.rawValue)]).joined(separator: ", "))
            """
        return group + measures.filter(\.inTable).map(\.name)
    }

    /// Per key (fingerprint, tail, project, state; never the key) over the range: the requests
    /// its final try served and every try made with it, as in `usage_by_key_day`. Only keys used
    /// in the range are listed, the busiest first.
    static func keys(_ q: inout StoreQuery, plan: ReportPlan) -> [String] {
        var source = SourceBuilder()
        if let days = plan.days {
            source.add("""
                SELECT key_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                       key_failures, upstream_failures, total_tokens
                FROM daily_key_usage WHERE day BETWEEN \(q.bind(.day(days.first))) AND \(q.bind(.day(days.last)))
                """)
        }
        for window in plan.windows {
            let (start, end) = (q.bind(.time(window.start)), q.bind(.time(window.end)))
            source.add("""
                SELECT key_id, requests, successful, errors, 0, 0, 0, 0, 0, total_tokens
                FROM request_facts WHERE started_at >= \(start) AND started_at < \(end) AND key_id IS NOT NULL
                """)
            source.add("""
                SELECT key_id, 0, 0, 0, attempts, successful_attempts, throttled_attempts, key_failures,
                       upstream_failures, 0
                FROM attempt_facts WHERE started_at >= \(start) AND started_at < \(end) AND key_id IS NOT NULL
                """)
        }
        let d = q.dialect
        let sums = ["requests", "successful", "errors", "attempts", "successful_attempts", "throttled_attempts",
                    "key_failures", "upstream_failures", "total_tokens"].map { "\(d.int("SUM(\($0))")) AS \($0)" }
        // Summed first, then named: one lookup of `keys` per key, not per daily row.
        q.sql = """
            WITH source (key_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                         key_failures, upstream_failures, total_tokens) AS (\(source.sql(empty: "SELECT 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 WHERE 1 = 0"))),
            totals AS (
                SELECT key_id, \(sums.joined(separator: ", "))
                FROM source GROUP BY key_id
            )
            SELECT t.key_id, k.fingerprint, k.tail, k.project, k.state, t.requests, t.successful, t.errors,
                   t.attempts, t.successful_attempts, t.throttled_attempts, t.key_failures, t.upstream_failures,
                   t.total_tokens
            FROM totals t
            LEFT JOIN keys k ON k.id = t.key_id
            ORDER BY t.requests DESC, t.attempts DESC, t.key_id
            """
        return [
            "fingerprint", "tail", "project", "state", "requests", "errors", "attempts", "throttled_attempts",
            "key_failures", "upstream_failures", "total_tokens",
        ]
    }

    /// Per upstream over the range: its requests and tries, failure rate and latency, as in
    /// `usage_by_upstream_day`. p50/p95 come from the latency histogram (the upper bound of the
    /// bucket holding the percentile, at most 28% above the exact value).
    static func upstreams(_ q: inout StoreQuery, plan: ReportPlan, model: String?) -> [String] {
        var source = SourceBuilder()
        var histogram = SourceBuilder()
        let filter = ReportFilter(model: model)
        if let days = plan.days {
            let (first, last) = (q.bind(.day(days.first)), q.bind(.day(days.last)))
            var sql = """
                SELECT upstream_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                       key_failures, upstream_failures, timed_attempts, latency_ms_sum, latency_ms_max
                FROM daily_upstream_usage WHERE day BETWEEN \(first) AND \(last)
                """
            addFilter(filter, to: &sql, &q)
            source.add(sql)
            sql = "SELECT upstream_id, bucket_ms, attempts FROM daily_upstream_latency WHERE day BETWEEN \(first) AND \(last)"
            addFilter(filter, to: &sql, &q)
            histogram.add(sql)
        }
        for window in plan.windows {
            let (start, end) = (q.bind(.time(window.start)), q.bind(.time(window.end)))
            var sql = """
                SELECT upstream_id, requests, successful, errors, 0, 0, 0, 0, 0, 0, 0, NULL
                FROM request_facts WHERE started_at >= \(start) AND started_at < \(end) AND upstream_id IS NOT NULL
                """
            addFilter(filter, to: &sql, &q)
            source.add(sql)
            sql = """
                SELECT upstream_id, 0, 0, 0, attempts, successful_attempts, throttled_attempts, key_failures,
                       upstream_failures, timed_attempts, latency_ms, CASE WHEN timed_attempts = 1 THEN latency_ms END
                FROM attempt_facts WHERE started_at >= \(start) AND started_at < \(end) AND upstream_id IS NOT NULL
                """
            addFilter(filter, to: &sql, &q)
            source.add(sql)
            sql = """
                SELECT upstream_id, latency_bucket_ms, 1 FROM attempt_facts
                WHERE started_at >= \(start) AND started_at < \(end) AND upstream_id IS NOT NULL AND latency_bucket_ms IS NOT NULL
                """
            addFilter(filter, to: &sql, &q)
            histogram.add(sql)
        }
        let d = q.dialect
        let sums = ["requests", "successful", "errors", "attempts", "successful_attempts", "throttled_attempts",
                    "key_failures", "upstream_failures", "timed_attempts"].map { "\(d.int("SUM(\($0))")) AS \($0)" }
        q.sql = """
            WITH source (upstream_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                         key_failures, upstream_failures, timed_attempts, latency_ms_sum, latency_ms_max)
                 AS (\(source.sql(empty: "SELECT 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL WHERE 1 = 0"))),
            histogram (upstream_id, bucket_ms, attempts) AS (\(histogram.sql(empty: "SELECT 0, 0, 0 WHERE 1 = 0"))),
            running AS (
                SELECT upstream_id, bucket_ms,
                       SUM(SUM(attempts)) OVER (PARTITION BY upstream_id ORDER BY bucket_ms) AS running,
                       SUM(SUM(attempts)) OVER (PARTITION BY upstream_id) AS total
                FROM histogram GROUP BY upstream_id, bucket_ms
            ),
            percentiles AS (
                SELECT upstream_id,
                       MIN(CASE WHEN running >= 0.50 * total THEN bucket_ms END) AS p50,
                       MIN(CASE WHEN running >= 0.95 * total THEN bucket_ms END) AS p95
                FROM running GROUP BY upstream_id
            ),
            totals AS (
                SELECT upstream_id, \(sums.joined(separator: ", ")),
                       SUM(latency_ms_sum) AS latency_ms_sum, MAX(latency_ms_max) AS latency_ms_max
                FROM source GROUP BY upstream_id
            )
            SELECT t.upstream_id, u.base_url, u.state, t.requests, t.successful, t.errors, t.attempts,
                   t.successful_attempts, t.throttled_attempts, t.key_failures, t.upstream_failures,
                   \(d.round("1.0 * t.upstream_failures / NULLIF(t.attempts, 0)", 4)) AS failure_rate,
                   \(d.round("t.latency_ms_sum / NULLIF(t.timed_attempts, 0)", 1)) AS avg_latency_ms,
                   \(d.round("t.latency_ms_max", 1)) AS max_latency_ms,
                   p.p50 AS p50_latency_ms_approx, p.p95 AS p95_latency_ms_approx
            FROM totals t
            LEFT JOIN upstreams u ON u.id = t.upstream_id
            LEFT JOIN percentiles p ON p.upstream_id = t.upstream_id
            ORDER BY t.upstream_id
            """
        return [
            "base_url", "state", "requests", "errors", "attempts", "upstream_failures", "failure_rate",
            "avg_latency_ms", "p50_latency_ms_approx", "p95_latency_ms_approx", "max_latency_ms",
        ]
    }

    /// Every upstream and key now (the `health` view): upstreams first, and within each kind
    /// what is not usable first. `problemsOnly` leaves out what is usable.
    static func health(_ q: inout StoreQuery, problemsOnly: Bool) -> [String] {
        let d = q.dialect
        q.sql = """
            SELECT kind, id, name, tail, project, state, condition, \(d.second("cooling_until")) AS cooling_until,
                   why, \(d.second("since")) AS since, \(d.second("last_used_at")) AS last_used_at
            FROM health
            \(problemsOnly ? "WHERE condition <> 'usable'" : "")
            ORDER BY kind = 'key', condition = 'usable', id
            """
        return ["kind", "name", "tail", "project", "condition", "cooling_until", "why", "since", "last_used_at"]
    }

    static func addFilter(_ filter: ReportFilter, to sql: inout String, _ q: inout StoreQuery) {
        if let client = filter.client {
            sql += " AND client = \(q.bind(.text(client)))"
        }
        if let model = filter.model {
            sql += " AND model = \(q.bind(.text(model)))"
        }
    }
}

/// A report's query with what the command shows of it.
package struct ReportQuery: Sendable {
    package var query: StoreQuery
    package var tableColumns: [String]
    package var widenedDays: [String]

    /// The report from the query's answer.
    package func report(_ answer: ReportTable) -> ReportTable {
        var report = answer
        report.tableColumns = tableColumns
        report.widenedDays = widenedDays
        return report
    }
}

extension AppDatabase {
    /// A report (``ReportSpec``), read in one read transaction.
    public func report(_ spec: ReportSpec) throws -> ReportTable {
        try read { db in
            let pruned = try db.table(StoreQuery(.sqlite, sql: ReportSpec.prunedBeforeSQL)).storeRows.first?.date("pruned_before")
            let built = spec.query(.sqlite, prunedBefore: pruned)
            return built.report(try db.table(built.query))
        }
    }

    public func usageReport(by dimension: UsageDimension, range: ReportRange, filter: ReportFilter = .init(), perDay: Bool = true) throws -> ReportTable {
        try report(.usage(dimension, range, filter, perDay: perDay))
    }

    public func keyReport(range: ReportRange) throws -> ReportTable {
        try report(.keys(range))
    }

    public func upstreamReport(range: ReportRange, model: String? = nil) throws -> ReportTable {
        try report(.upstreams(range, model: model))
    }

    public func healthReport(problemsOnly: Bool = false) throws -> ReportTable {
        try report(.health(problemsOnly: problemsOnly))
    }
}

/// The parts of a report's source, joined by `UNION ALL` (their values are bound in the query).
struct SourceBuilder {
    private var parts: [String] = []

    mutating func add(_ sql: String) {
        parts.append(sql)
    }

    /// The union, or `empty` (a query with the same columns and no row) when there is no part.
    func sql(empty: String) -> String {
        parts.isEmpty ? empty : parts.joined(separator: "\nUNION ALL\n")
    }
}
