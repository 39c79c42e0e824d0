import Foundation

// MARK: - What a client (gateway token) may do

/// One limit of a client, named as `clients add/set` names its option: the raw value is the
/// option (`--rpm`), the `error_reason` of a request it refused, and the `limit` label of
/// `gemini_gateway_client_limit_refusals_total`.
public enum ClientLimit: String, Sendable, Hashable, CaseIterable, Codable {
    case rpm, rpd, tpm, tpd
    case dailyBudget = "daily-budget"
    case monthlyBudget = "monthly-budget"
    case maxConcurrent = "max-concurrent"
    case models
    case expires

    /// How the refusal reads in the client's error message.
    public var phrase: String {
        switch self {
        case .rpm: "requests per minute"
        case .rpd: "requests per day (UTC)"
        case .tpm: "tokens per minute"
        case .tpd: "tokens per day (UTC)"
        case .dailyBudget: "daily budget (UTC day)"
        case .monthlyBudget: "monthly budget (UTC month)"
        case .maxConcurrent: "concurrent requests"
        case .models: "allowed models"
        case .expires: "expiry"
        }
    }
}

/// A client's limits; nil: no such limit. Money is in micro-dollars (1 USD = 1,000,000).
public struct ClientLimits: Sendable, Equatable, Codable {
    public var rpm: Int?
    public var rpd: Int?
    public var tpm: Int?
    public var tpd: Int?
    public var dailyBudgetMicros: Int64?
    public var monthlyBudgetMicros: Int64?
    public var maxConcurrent: Int?
    /// Allowed model names or globs (`*` any run of characters, `?` one); nil: every model.
    public var models: [String]?
    public var expiresAt: Date?

    public init(
        rpm: Int? = nil, rpd: Int? = nil, tpm: Int? = nil, tpd: Int? = nil,
        dailyBudgetMicros: Int64? = nil, monthlyBudgetMicros: Int64? = nil, maxConcurrent: Int? = nil,
        models: [String]? = nil, expiresAt: Date? = nil
    ) {
        self.rpm = rpm
        self.rpd = rpd
        self.tpm = tpm
        self.tpd = tpd
        self.dailyBudgetMicros = dailyBudgetMicros
        self.monthlyBudgetMicros = monthlyBudgetMicros
        self.maxConcurrent = maxConcurrent
        self.models = models
        self.expiresAt = expiresAt
    }

    /// No limit at all: the request path skips the client.
    public var isEmpty: Bool { self == ClientLimits() }

    /// Whether `model` may be used: always when no list is set, and for a request that names no
    /// model (a models list); else when a name or glob of the list matches it (with or without
    /// a `models/` prefix).
    public func allows(model: String?) -> Bool {
        guard let models, let model, model != ModelName.unknown else { return true }
        let name = model.hasPrefix("models/") ? String(model.dropFirst("models/".count)) : model
        return models.contains { Self.glob($0, matches: name) }
    }

    /// `*` matches any run of characters, `?` one; anything else itself.
    public static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(text.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == t[ti] {
                pi += 1
                ti += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}

// MARK: - Money

/// Dollars written as a decimal (`5`, `0.30`, `12.345678`) <-> micro-dollars, exactly: no floating
/// point between what an operator typed and what is stored.
public enum Micros {
    /// `text` in dollars as micro-dollars; nil when it is not a plain non-negative decimal with at
    /// most 6 decimals, or too large.
    public static func parse(dollars text: String) -> Int64? {
        var text = Substring(text.trimmingCharacters(in: .whitespaces))
        if text.hasPrefix("$") { text = text.dropFirst() }
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty || parts.count == 2,
              whole.allSatisfy(\.isASCIIDigit), whole.count <= 12 else { return nil }
        var fraction = parts.count == 2 ? parts[1] : ""
        guard fraction.allSatisfy(\.isASCIIDigit), fraction.count <= 6, !(parts.count == 2 && fraction.isEmpty) else {
            return nil
        }
        fraction += String(repeating: "0", count: 6 - fraction.count)
        return (Int64(whole) ?? 0) * 1_000_000 + (Int64(fraction) ?? 0)
    }

    /// Micro-dollars as dollars, with as many decimals as it takes (at least 2): `5.00`, `0.000123`.
    public static func dollars(_ micros: Int64) -> String {
        let sign = micros < 0 ? "-" : ""
        let value = micros.magnitude
        var fraction = String(value % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.count > 2, fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(sign)\(value / 1_000_000).\(fraction)"
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
