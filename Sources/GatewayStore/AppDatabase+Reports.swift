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

extension AppDatabase {
    /// Requests, errors and tokens per client (or model) per UTC day, like the
    /// `usage_by_client_day`/`usage_by_model_day` views but for any range: whole days come from
    /// `daily_usage`, the parts of days the range cuts from the raw rows. `perDay: false` gives one
    /// row per client (or model) for the whole range.
    public func usageReport(by dimension: UsageDimension, range: ReportRange, filter: ReportFilter = .init(), perDay: Bool = true) throws -> ReportTable {
        try read { db in
            let plan = try Self.plan(range, db)
            var source = SourceBuilder()
            let columns = UsageColumn.allCases
            if let days = plan.days {
                var sql = "SELECT day, client, model, \(columns.map(\.name).joined(separator: ", ")) FROM daily_usage WHERE day BETWEEN ? AND ?"
                var arguments: [any DatabaseValueConvertible] = [days.first, days.last]
                Self.addFilter(filter, to: &sql, &arguments)
                source.add(sql, arguments)
            }
            let rawSums = columns.map { "SUM(\($0.factsColumn)) AS \($0.name)" }
            for window in plan.windows {
                var sql = "SELECT day, client, model, \(rawSums.joined(separator: ", ")) FROM request_facts WHERE started_at >= ? AND started_at < ?"
                var arguments: [any DatabaseValueConvertible] = [window.start, window.end]
                Self.addFilter(filter, to: &sql, &arguments)
                sql += " GROUP BY day, client, model"
                source.add(sql, arguments)
            }
            let group = (perDay ? ["day"] : []) + [dimension.rawValue]
            let noRow = (["NULL AS day", "NULL AS client", "NULL AS model"] + columns.map { "0 AS \($0.name)" }).joined(separator: ", ")
            let measures = UsageColumn.reportMeasures
            let sql = """
                WITH source AS (\(source.sql(empty: "SELECT \(noRow) WHERE 0")))
                SELECT \(group.joined(separator: ", ")), \(measures.map(\.selected).joined(separator: ", "))
                FROM source
                GROUP BY \(group.joined(separator: ", "))
                ORDER BY \(group.joined(separator: ", "))
                """
            let table = group + measures.filter(\.inTable).map(\.name)
            var report = try ReportTable.fetch(db, sql: sql, arguments: source.arguments, tableColumns: table)
            report.widenedDays = plan.widenedDays
            return report
        }
    }

    /// Per key (fingerprint, tail, project, state; never the key) over the range: the requests
    /// its final try served and every try made with it, as in `usage_by_key_day`. Only keys used
    /// in the range are listed, the busiest first.
    public func keyReport(range: ReportRange) throws -> ReportTable {
        try read { db in
            let plan = try Self.plan(range, db)
            var source = SourceBuilder()
            if let days = plan.days {
                source.add("""
                    SELECT key_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                           key_failures, upstream_failures, total_tokens
                    FROM daily_key_usage WHERE day BETWEEN ? AND ?
                    """, [days.first, days.last])
            }
            for window in plan.windows {
                source.add("""
                    SELECT key_id, requests, successful, errors, 0, 0, 0, 0, 0, total_tokens
                    FROM request_facts WHERE started_at >= ? AND started_at < ? AND key_id IS NOT NULL
                    """, [window.start, window.end])
                source.add("""
                    SELECT key_id, 0, 0, 0, attempts, successful_attempts, throttled_attempts, key_failures,
                           upstream_failures, 0
                    FROM attempt_facts WHERE started_at >= ? AND started_at < ? AND key_id IS NOT NULL
                    """, [window.start, window.end])
            }
            // Summed first, then named: one lookup of `keys` per key, not per daily row.
            let sql = """
                WITH source (key_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                             key_failures, upstream_failures, total_tokens) AS (\(source.sql(empty: "SELECT 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 WHERE 0"))),
                totals AS (
                    SELECT key_id, SUM(requests) AS requests, SUM(successful) AS successful, SUM(errors) AS errors,
                           SUM(attempts) AS attempts, SUM(successful_attempts) AS successful_attempts,
                           SUM(throttled_attempts) AS throttled_attempts, SUM(key_failures) AS key_failures,
                           SUM(upstream_failures) AS upstream_failures, SUM(total_tokens) AS total_tokens
                    FROM source GROUP BY key_id
                )
                SELECT t.key_id, k.fingerprint, k.tail, k.project, k.state, t.requests, t.successful, t.errors,
                       t.attempts, t.successful_attempts, t.throttled_attempts, t.key_failures, t.upstream_failures,
                       t.total_tokens
                FROM totals t
                LEFT JOIN keys k ON k.id = t.key_id
                ORDER BY t.requests DESC, t.attempts DESC, t.key_id
                """
            var report = try ReportTable.fetch(db, sql: sql, arguments: source.arguments, tableColumns: [
                "fingerprint", "tail", "project", "state", "requests", "errors", "attempts", "throttled_attempts",
                "key_failures", "upstream_failures", "total_tokens",
            ])
            report.widenedDays = plan.widenedDays
            return report
        }
    }

    /// Per upstream over the range: its requests and tries, failure rate and latency, as in
    /// `usage_by_upstream_day`. p50/p95 come from the latency histogram (the upper bound of the
    /// bucket holding the percentile, at most 28% above the exact value).
    public func upstreamReport(range: ReportRange, model: String? = nil) throws -> ReportTable {
        try read { db in
            let plan = try Self.plan(range, db)
            var source = SourceBuilder()
            var histogram = SourceBuilder()
            let filter = ReportFilter(model: model)
            if let days = plan.days {
                var sql = """
                    SELECT upstream_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                           key_failures, upstream_failures, timed_attempts, latency_ms_sum, latency_ms_max
                    FROM daily_upstream_usage WHERE day BETWEEN ? AND ?
                    """
                var arguments: [any DatabaseValueConvertible] = [days.first, days.last]
                Self.addFilter(filter, to: &sql, &arguments)
                source.add(sql, arguments)
                sql = "SELECT upstream_id, bucket_ms, attempts FROM daily_upstream_latency WHERE day BETWEEN ? AND ?"
                arguments = [days.first, days.last]
                Self.addFilter(filter, to: &sql, &arguments)
                histogram.add(sql, arguments)
            }
            for window in plan.windows {
                var sql = """
                    SELECT upstream_id, requests, successful, errors, 0, 0, 0, 0, 0, 0, 0, NULL
                    FROM request_facts WHERE started_at >= ? AND started_at < ? AND upstream_id IS NOT NULL
                    """
                var arguments: [any DatabaseValueConvertible] = [window.start, window.end]
                Self.addFilter(filter, to: &sql, &arguments)
                source.add(sql, arguments)
                sql = """
                    SELECT upstream_id, 0, 0, 0, attempts, successful_attempts, throttled_attempts, key_failures,
                           upstream_failures, timed_attempts, latency_ms, CASE WHEN timed_attempts THEN latency_ms END
                    FROM attempt_facts WHERE started_at >= ? AND started_at < ? AND upstream_id IS NOT NULL
                    """
                arguments = [window.start, window.end]
                Self.addFilter(filter, to: &sql, &arguments)
                source.add(sql, arguments)
                sql = """
                    SELECT upstream_id, latency_bucket_ms, 1 FROM attempt_facts
                    WHERE started_at >= ? AND started_at < ? AND upstream_id IS NOT NULL AND latency_bucket_ms IS NOT NULL
                    """
                arguments = [window.start, window.end]
                Self.addFilter(filter, to: &sql, &arguments)
                histogram.add(sql, arguments)
            }
            let sql = """
                WITH source (upstream_id, requests, successful, errors, attempts, successful_attempts, throttled_attempts,
                             key_failures, upstream_failures, timed_attempts, latency_ms_sum, latency_ms_max)
                     AS (\(source.sql(empty: "SELECT 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL WHERE 0"))),
                histogram (upstream_id, bucket_ms, attempts) AS (\(histogram.sql(empty: "SELECT 0, 0, 0 WHERE 0"))),
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
                    SELECT upstream_id, SUM(requests) AS requests, SUM(successful) AS successful, SUM(errors) AS errors,
                           SUM(attempts) AS attempts, SUM(successful_attempts) AS successful_attempts,
                           SUM(throttled_attempts) AS throttled_attempts, SUM(key_failures) AS key_failures,
                           SUM(upstream_failures) AS upstream_failures, SUM(timed_attempts) AS timed_attempts,
                           SUM(latency_ms_sum) AS latency_ms_sum, MAX(latency_ms_max) AS latency_ms_max
                    FROM source GROUP BY upstream_id
                )
                SELECT t.upstream_id, u.base_url, u.state, t.requests, t.successful, t.errors, t.attempts,
                       t.successful_attempts, t.throttled_attempts, t.key_failures, t.upstream_failures,
                       round(1.0 * t.upstream_failures / NULLIF(t.attempts, 0), 4) AS failure_rate,
                       round(t.latency_ms_sum / NULLIF(t.timed_attempts, 0), 1) AS avg_latency_ms,
                       round(t.latency_ms_max, 1) AS max_latency_ms,
                       p.p50 AS p50_latency_ms_approx, p.p95 AS p95_latency_ms_approx
                FROM totals t
                LEFT JOIN upstreams u ON u.id = t.upstream_id
                LEFT JOIN percentiles p ON p.upstream_id = t.upstream_id
                ORDER BY t.upstream_id
                """
            var report = try ReportTable.fetch(db, sql: sql, arguments: source.arguments + histogram.arguments, tableColumns: [
                "base_url", "state", "requests", "errors", "attempts", "upstream_failures", "failure_rate",
                "avg_latency_ms", "p50_latency_ms_approx", "p95_latency_ms_approx", "max_latency_ms",
            ])
            report.widenedDays = plan.widenedDays
            return report
        }
    }

    /// Every upstream and key now (the `health` view): upstreams first, and within each kind
    /// what is not usable first. `problemsOnly` leaves out what is usable.
    public func healthReport(problemsOnly: Bool = false) throws -> ReportTable {
        try read { db in
            try ReportTable.fetch(db, sql: """
                SELECT kind, id, name, tail, project, state, condition, substr(cooling_until, 1, 19) AS cooling_until,
                       why, substr(since, 1, 19) AS since, substr(last_used_at, 1, 19) AS last_used_at
                FROM health
                \(problemsOnly ? "WHERE condition <> 'usable'" : "")
                ORDER BY kind = 'key', condition = 'usable', id
                """, arguments: [], tableColumns: [
                    "kind", "name", "tail", "project", "condition", "cooling_until", "why", "since", "last_used_at",
                ])
        }
    }

    // MARK: - Building the queries

    static func plan(_ range: ReportRange, _ db: Database) throws -> ReportPlan {
        let prunedBefore = try Date.fetchOne(db, sql: "SELECT pruned_before FROM log_state")
        return ReportPlan(range, prunedBefore: prunedBefore)
    }

    static func addFilter(_ filter: ReportFilter, to sql: inout String, _ arguments: inout [any DatabaseValueConvertible]) {
        if let client = filter.client {
            sql += " AND client = ?"
            arguments.append(client)
        }
        if let model = filter.model {
            sql += " AND model = ?"
            arguments.append(model)
        }
    }
}

/// The parts of a report's source, joined by `UNION ALL`, with their arguments in order.
struct SourceBuilder {
    private var parts: [String] = []
    private(set) var arguments: StatementArguments = []

    mutating func add(_ sql: String, _ values: [any DatabaseValueConvertible]) {
        parts.append(sql)
        arguments += StatementArguments(values)
    }

    /// The union, or `empty` (a query with the same columns and no row) when there is no part.
    func sql(empty: String) -> String {
        parts.isEmpty ? empty : parts.joined(separator: "\nUNION ALL\n")
    }
}
