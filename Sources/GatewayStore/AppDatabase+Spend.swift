import Foundation
import GRDB

// MARK: - Spend: what the requests cost (`gemini-gateway report spend`)

/// What a spend report groups by.
public enum SpendDimension: String, Sendable, CaseIterable {
    case client, model, key, project, day
}

extension AppDatabase {
    public func spendReport(by dimension: SpendDimension, range: ReportRange, perDay: Bool = true) throws -> ReportTable {
        try report(.spend(dimension, range, perDay: perDay))
    }
}

extension ReportSpec {
    /// What the requests of the range cost, per client, model, key, project label or UTC day
    /// (per day as well, unless `perDay` is false): `cost_usd` what was charged (free-tier keys
    /// count 0), `list_cost_usd` the same at list price, `saved_usd` the difference (the free
    /// tier's worth), the exact micro-dollars beside them, and `unpriced_requests`: requests with
    /// tokens of a model the price table does not know (counted at 0: add its price). Whole days
    /// from the daily totals, the parts of days the range cuts from the raw rows.
    static func spend(_ q: inout StoreQuery, by dimension: SpendDimension, plan: ReportPlan, perDay: Bool) -> [String] {
        var source = SourceBuilder()
        let byKey = dimension == .key || dimension == .project
        // (day, name, requests, tokens, unpriced, cost, list)
        if byKey {
            if let days = plan.days {
                source.add("""
                    SELECT day, key_id AS name, requests, total_tokens, 0, cost_micros, list_cost_micros
                    FROM daily_key_usage WHERE day BETWEEN \(q.bind(.day(days.first))) AND \(q.bind(.day(days.last)))
                    """)
            }
            for window in plan.windows {
                source.add("""
                    SELECT day, key_id, requests, total_tokens, unpriced_requests, cost_micros, list_cost_micros
                    FROM request_facts WHERE started_at >= \(q.bind(.time(window.start))) AND started_at < \(q.bind(.time(window.end))) AND key_id IS NOT NULL
                    """)
            }
        } else {
            let name = dimension == .day ? "'all'" : dimension.rawValue
            if let days = plan.days {
                source.add("""
                    SELECT day, \(name), requests - client_limited, total_tokens, unpriced_requests, cost_micros, list_cost_micros
                    FROM daily_usage WHERE day BETWEEN \(q.bind(.day(days.first))) AND \(q.bind(.day(days.last)))
                    """)
            }
            for window in plan.windows {
                source.add("""
                    SELECT day, \(name), requests - client_limited, total_tokens, unpriced_requests, cost_micros, list_cost_micros
                    FROM request_facts WHERE started_at >= \(q.bind(.time(window.start))) AND started_at < \(q.bind(.time(window.end)))
                    """)
            }
        }
        let d = q.dialect
        let label: String, join: String, name: [String], tieBreak: String
        switch dimension {
        case .key:
            label = "k.fingerprint AS fingerprint, k.tail AS tail, k.project AS project, CASE WHEN k.free_tier THEN 'yes' ELSE '-' END AS free_tier"
            join = "LEFT JOIN keys k ON k.id = s.name"
            // The key's columns too: PostgreSQL wants every selected column grouped (one value per key).
            name = ["s.name", "k.fingerprint", "k.tail", "k.project", "k.free_tier"]
            tieBreak = "s.name"
        case .project:
            label = "COALESCE(k.project, '-') AS project"
            join = "LEFT JOIN keys k ON k.id = s.name"
            name = ["COALESCE(k.project, '-')"]
            tieBreak = d.bytewise("COALESCE(k.project, '-')")
        case .day:
            label = ""
            join = ""
            name = []
            tieBreak = ""
        case .client, .model:
            label = "s.name AS \(dimension.rawValue)"
            join = ""
            name = ["s.name"]
            tieBreak = d.bytewise("s.name")
        }
        let labelColumns: [String] = switch dimension {
        case .key: ["fingerprint", "tail", "project", "free_tier"]
        case .project: ["project"]
        case .day: []
        case .client: ["client"]
        case .model: ["model"]
        }
        let groupBy: [String] = (dimension == .day ? ["s.day"] : (perDay ? ["s.day"] : []) + name)
        let selected: [String] = (dimension == .day || perDay ? ["s.day AS day"] : []) + (label.isEmpty ? [] : [label])
        // Equal spends are ordered by name: both stores then list them alike.
        let order = (dimension == .day || perDay ? ["s.day"] : []) + ["SUM(s.cost) DESC", "SUM(s.list) DESC"] + (tieBreak.isEmpty ? [] : [tieBreak])
        // An empty source's name is 0 for keys: PostgreSQL joins it to keys.id by type.
        q.sql = """
            WITH s (day, name, requests, total_tokens, unpriced, cost, list) AS (\(source.sql(empty: "SELECT NULL, \(byKey ? "0" : "NULL"), 0, 0, 0, 0, 0 WHERE 1 = 0")))
            SELECT \(selected.joined(separator: ", ")),
                   \(d.int("SUM(s.requests)")) AS requests, \(d.int("SUM(s.total_tokens)")) AS total_tokens,
                   \(d.int("SUM(s.unpriced)")) AS unpriced_requests,
                   \(d.real("SUM(s.cost)")) / 1000000.0 AS cost_usd, \(d.real("SUM(s.list)")) / 1000000.0 AS list_cost_usd,
                   \(d.real("SUM(s.list) - SUM(s.cost)")) / 1000000.0 AS saved_usd,
                   \(d.int("SUM(s.cost)")) AS cost_micros, \(d.int("SUM(s.list)")) AS list_cost_micros
            FROM s \(join)
            GROUP BY \(groupBy.joined(separator: ", "))
            ORDER BY \(order.joined(separator: ", "))
            """
        return (dimension == .day || perDay ? ["day"] : []) + labelColumns
            + ["requests", "total_tokens", "unpriced_requests", "cost_usd", "list_cost_usd", "saved_usd"]
    }
}
