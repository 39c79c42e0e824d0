// MARK: - The usage measures, once

/// The measures of `daily_usage` (migration 0002), in its column order: what a usage report adds
/// up per client, model and day. The one list of them in Swift: the daily fold
/// (``DailyTable/all``, ``DailyTotals``) and the usage report's queries
/// (``AppDatabase/usageReport(by:range:filter:perDay:)``) are built from it, and give what the
/// views `pending_daily_usage`, `usage_by_client_day` and `usage_by_model_day` give for the same
/// rows (`LogBindingTests`, `UsageReportQueryTests`).
///
/// A new measure is a migration that adds the column to `daily_usage`, to `request_facts` and to
/// those views, plus a case here; the compiler then asks for its value in
/// ``DailyTotals/UsageSums``.
enum UsageColumn: String, CaseIterable, Sendable {
    case requests, successful, errors
    case clientErrors = "client_errors"
    case throttled
    case noCapacity = "no_capacity"
    case upstreamErrors = "upstream_errors"
    case cancelled, truncated, streamed
    case upstreamAttempts = "upstream_attempts"
    case usageMissing = "usage_missing"
    case usageTruncated = "usage_truncated"
    case promptTokens = "prompt_tokens"
    case cachedTokens = "cached_tokens"
    case candidatesTokens = "candidates_tokens"
    case thoughtsTokens = "thoughts_tokens"
    case toolUseTokens = "tool_use_tokens"
    case totalTokens = "total_tokens"
    case requestBytes = "request_bytes"
    case responseBytes = "response_bytes"
    /// Every request's latency, added up (REAL).
    case latencyMsSum = "latency_ms_sum"
    /// The times to first byte that were measured, added up (REAL).
    case ttfbMsSum = "ttfb_ms_sum"
    /// How many requests have a time to first byte.
    case ttfbRequests = "ttfb_requests"
    /// Requests refused by the client's own limits (migration 0007).
    case clientLimited = "client_limited"
    /// Requests with tokens of a model the price table does not know (their cost counts 0).
    case unpricedRequests = "unpriced_requests"
    /// What the requests cost, micro-dollars (free-tier keys: 0).
    case costMicros = "cost_micros"
    /// The same at list price (free-tier keys included).
    case listCostMicros = "list_cost_micros"

    /// The column's name in `daily_usage`.
    var name: String { rawValue }

    /// The `request_facts` column whose sum it is.
    var factsColumn: String {
        switch self {
        case .latencyMsSum: "latency_ms"
        case .ttfbMsSum: "ttfb_ms"
        default: rawValue
        }
    }

    /// What a usage report (and the `usage_by_client_day` view) shows in its place, in order,
    /// over a source with the columns of `daily_usage`: the sum itself, or, for the latency and
    /// time-to-first-byte sums, the averages they make.
    var measures: [UsageMeasure] {
        switch self {
        case .errors:
            [.sum(self, inTable: true),
             UsageMeasure(name: "error_rate", inTable: false) { $0.round("1.0 * SUM(errors) / NULLIF(SUM(requests), 0)", 4) }]
        case .latencyMsSum:
            [UsageMeasure(name: "avg_latency_ms", inTable: true) { $0.round("SUM(latency_ms_sum) / NULLIF(SUM(requests), 0)", 1) }]
        case .ttfbMsSum:
            []
        case .ttfbRequests:
            [UsageMeasure(name: "avg_ttfb_ms", inTable: false) { $0.round("SUM(ttfb_ms_sum) / NULLIF(SUM(ttfb_requests), 0)", 1) }]
        case .requests, .successful, .clientErrors, .throttled, .upstreamErrors, .cancelled, .truncated,
             .promptTokens, .cachedTokens, .candidatesTokens, .thoughtsTokens, .totalTokens:
            [.sum(self, inTable: true)]
        case .noCapacity, .streamed, .upstreamAttempts, .usageMissing, .usageTruncated, .toolUseTokens,
             .requestBytes, .responseBytes, .clientLimited, .unpricedRequests:
            [.sum(self, inTable: false)]
        case .costMicros:
            [UsageMeasure(name: "cost_usd", inTable: false) { $0.real("SUM(cost_micros)") + " / 1000000.0" }]
        case .listCostMicros:
            [UsageMeasure(name: "list_cost_usd", inTable: false) { $0.real("SUM(list_cost_micros)") + " / 1000000.0" }]
        }
    }

    /// The columns of a usage report after its grouping columns, in order.
    static let reportMeasures: [UsageMeasure] = allCases.flatMap(\.measures)
}

/// A column of a usage report: its name, the SQL that computes it (in either store's dialect), and
/// whether the terminal table shows it (JSON and CSV show every column).
struct UsageMeasure: Sendable {
    let name: String
    let inTable: Bool
    let sql: @Sendable (SQLDialect) -> String

    init(name: String, inTable: Bool, sql: @escaping @Sendable (SQLDialect) -> String) {
        self.name = name
        self.inTable = inTable
        self.sql = sql
    }

    static func sum(_ column: UsageColumn, inTable: Bool) -> UsageMeasure {
        UsageMeasure(name: column.name, inTable: inTable) { $0.int("SUM(\(column.name))") }
    }

    /// `sql AS name`.
    func selected(_ dialect: SQLDialect) -> String { "\(sql(dialect)) AS \(name)" }
}
