import Foundation
import GRDB

// MARK: - Spend: what the requests cost (`gemini-gateway report spend`)

/// What a spend report groups by.
public enum SpendDimension: String, Sendable, CaseIterable {
    case client, model, key, project, day
}

extension AppDatabase {
    /// What the requests of the range cost, per client, model, key, project label or UTC day
    /// (per day as well, unless `perDay` is false): `cost_usd` what was charged (free-tier keys
    /// count 0), `list_cost_usd` the same at list price, `saved_usd` the difference (the free
    /// tier's worth), the exact micro-dollars beside them, and `unpriced_requests`: requests with
    /// tokens of a model the price table does not know (counted at 0: add its price). Whole days
    /// from the daily totals, the parts of days the range cuts from the raw rows.
    public func spendReport(by dimension: SpendDimension, range: ReportRange, perDay: Bool = true) throws -> ReportTable {
        try read { db in
            let plan = try Self.plan(range, db)
            var source = SourceBuilder()
            let byKey = dimension == .key || dimension == .project
            // (day, name, requests, tokens, unpriced, cost, list)
            if byKey {
                if let days = plan.days {
                    source.add("""
                        SELECT day, key_id AS name, requests, total_tokens, 0, cost_micros, list_cost_micros
                        FROM daily_key_usage WHERE day BETWEEN ? AND ?
                        """, [days.first, days.last])
                }
                for window in plan.windows {
                    source.add("""
                        SELECT day, key_id, requests, total_tokens, unpriced_requests, cost_micros, list_cost_micros
                        FROM request_facts WHERE started_at >= ? AND started_at < ? AND key_id IS NOT NULL
                        """, [window.start, window.end])
                }
            } else {
                let name = dimension == .day ? "'all'" : dimension.rawValue
                if let days = plan.days {
                    source.add("""
                        SELECT day, \(name), requests - client_limited, total_tokens, unpriced_requests, cost_micros, list_cost_micros
                        FROM daily_usage WHERE day BETWEEN ? AND ?
                        """, [days.first, days.last])
                }
                for window in plan.windows {
                    source.add("""
                        SELECT day, \(name), requests - client_limited, total_tokens, unpriced_requests, cost_micros, list_cost_micros
                        FROM request_facts WHERE started_at >= ? AND started_at < ?
                        """, [window.start, window.end])
                }
            }
            let label: String, join: String
            switch dimension {
            case .key:
                label = "k.fingerprint AS fingerprint, k.tail AS tail, k.project AS project, CASE WHEN k.free_tier THEN 'yes' ELSE '-' END AS free_tier"
                join = "LEFT JOIN keys k ON k.id = s.name"
            case .project:
                label = "COALESCE(k.project, '-') AS project"
                join = "LEFT JOIN keys k ON k.id = s.name"
            case .day:
                label = ""
                join = ""
            case .client, .model:
                label = "s.name AS \(dimension.rawValue)"
                join = ""
            }
            let labelColumns: [String] = switch dimension {
            case .key: ["fingerprint", "tail", "project", "free_tier"]
            case .project: ["project"]
            case .day: []
            case .client: ["client"]
            case .model: ["model"]
            }
            let groupBy: [String] = (dimension == .day ? ["s.day"] : (perDay ? ["s.day"] : []) + (dimension == .project ? ["COALESCE(k.project, '-')"] : ["s.name"]))
            let selected: [String] = (dimension == .day || perDay ? ["s.day AS day"] : []) + (label.isEmpty ? [] : [label])
            let sql = """
                WITH s (day, name, requests, total_tokens, unpriced, cost, list) AS (\(source.sql(empty: "SELECT NULL, NULL, 0, 0, 0, 0, 0 WHERE 0")))
                SELECT \(selected.joined(separator: ", ")),
                       SUM(s.requests) AS requests, SUM(s.total_tokens) AS total_tokens,
                       SUM(s.unpriced) AS unpriced_requests,
                       SUM(s.cost) / 1000000.0 AS cost_usd, SUM(s.list) / 1000000.0 AS list_cost_usd,
                       (SUM(s.list) - SUM(s.cost)) / 1000000.0 AS saved_usd,
                       SUM(s.cost) AS cost_micros, SUM(s.list) AS list_cost_micros
                FROM s \(join)
                GROUP BY \(groupBy.joined(separator: ", "))
                ORDER BY \(dimension == .day || perDay ? "s.day, " : "")SUM(s.cost) DESC, SUM(s.list) DESC
                """
            let table: [String] = (dimension == .day || perDay ? ["day"] : []) + labelColumns
                + ["requests", "total_tokens", "unpriced_requests", "cost_usd", "list_cost_usd", "saved_usd"]
            var report = try ReportTable.fetch(db, sql: sql, arguments: source.arguments, tableColumns: table)
            report.widenedDays = plan.widenedDays
            return report
        }
    }
}
