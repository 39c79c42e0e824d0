import Foundation

// MARK: - GoogleError

/// A Google API error envelope, `{"error":{"code","message","status","details":[...]}}`, as sent by
/// the Gemini API (also wrapped in an array, `[{"error":{...}}]`, by non-SSE
/// `streamGenerateContent` and the OpenAI-compatible endpoint).
///
/// Only the parts the gateway acts on are kept: the first `ErrorInfo`, every `QuotaFailure`
/// violation and the `RetryInfo` delay. ``parse(_:)`` never traps; it returns nil for anything
/// that is not such an envelope (HTML, empty bodies, other JSON, a relay's own error format).
public struct GoogleError: Sendable, Hashable {
    // MARK: Details

    /// `type.googleapis.com/google.rpc.ErrorInfo`.
    public struct ErrorInfo: Sendable, Hashable {
        /// The machine-readable reason, e.g. `API_KEY_INVALID`, `SERVICE_DISABLED`.
        public var reason: String
        /// The domain, usually `googleapis.com`.
        public var domain: String?
        /// String metadata (`service`, `consumer`, `activationUrl`, ...). Non-string values are dropped.
        public var metadata: [String: String]

        /// An `ErrorInfo` detail.
        public init(reason: String, domain: String? = nil, metadata: [String: String] = [:]) {
            self.reason = reason
            self.domain = domain
            self.metadata = metadata
        }
    }

    /// One `violations[]` entry of `type.googleapis.com/google.rpc.QuotaFailure`.
    public struct QuotaViolation: Sendable, Hashable {
        /// E.g. `GenerateRequestsPerDayPerProjectPerModel-FreeTier`.
        public var quotaID: String?
        /// E.g. `generativelanguage.googleapis.com/generate_content_free_tier_requests`.
        public var quotaMetric: String?
        /// `quotaDimensions.model`, e.g. `gemini-2.5-flash`.
        public var model: String?
        /// The limit, as the string Google sends (`"20"`, `"0"`).
        public var quotaValue: String?

        /// A quota violation.
        public init(quotaID: String? = nil, quotaMetric: String? = nil, model: String? = nil, quotaValue: String? = nil) {
            self.quotaID = quotaID
            self.quotaMetric = quotaMetric
            self.model = model
            self.quotaValue = quotaValue
        }
    }

    // MARK: Properties

    /// `error.code`, the HTTP status Google meant (not necessarily the status a relay sent).
    public var code: Int
    /// `error.message`; empty when absent.
    public var message: String
    /// `error.status`, the canonical code name (`RESOURCE_EXHAUSTED`, `INVALID_ARGUMENT`, ...).
    public var status: String?
    /// The first `ErrorInfo` detail.
    public var errorInfo: ErrorInfo?
    /// Every violation of every `QuotaFailure` detail, in order.
    public var quotaViolations: [QuotaViolation]
    /// `RetryInfo.retryDelay` in seconds (`"26s"` -> 26, `"37.82626638s"` -> 37.82626638).
    public var retryDelay: Double?

    /// An envelope built by hand (tests, the gateway's own errors).
    public init(
        code: Int,
        message: String,
        status: String? = nil,
        errorInfo: ErrorInfo? = nil,
        quotaViolations: [QuotaViolation] = [],
        retryDelay: Double? = nil
    ) {
        self.code = code
        self.message = message
        self.status = status
        self.errorInfo = errorInfo
        self.quotaViolations = quotaViolations
        self.retryDelay = retryDelay
    }

    /// The delay hinted in the message ("Please retry in 37.82626638s.", "... in 583.9ms."), in
    /// seconds. Google puts it there too, sometimes more precisely than in `RetryInfo`.
    public var messageRetryDelay: Double? {
        guard let range = message.range(of: "retry in ", options: .caseInsensitive) else { return nil }
        let tail = message[range.upperBound...]
        let number = tail.prefix { $0.isNumber || $0 == "." }
        guard !number.isEmpty, let value = Double(number), value.isFinite, value >= 0 else { return nil }
        let unit = tail.dropFirst(number.count)
        if unit.hasPrefix("ms") { return value / 1000 }
        if unit.hasPrefix("s") { return value }
        return nil
    }

    // MARK: Parsing

    /// Bodies larger than this are never treated as an error envelope (Google's are a few KB).
    public static let maximumEnvelopeSize = 1 << 20

    /// Parses an upstream body; nil when it is not a Google error envelope.
    ///
    /// An envelope is a JSON object (or an array whose first element is one) with an `error`
    /// object carrying an integer `code` and a string `message`. A relay's OpenAI-style
    /// `{"error":{"message":..,"type":..}}` therefore does not count.
    public static func parse(_ body: some Collection<UInt8>) -> GoogleError? {
        guard !body.isEmpty, body.count <= maximumEnvelopeSize else { return nil }
        // Cheap rejection of HTML and text before handing bytes to the JSON parser.
        guard let first = body.first(where: { !JSONBytes.isWhitespace($0) }),
              first == JSONBytes.openBrace || first == JSONBytes.openBracket
        else { return nil }
        guard let root = try? JSONSerialization.jsonObject(with: Data(body), options: []) else { return nil }

        let container: [String: Any]?
        if let object = root as? [String: Any] {
            container = object
        } else if let array = root as? [Any] {
            container = array.lazy.compactMap { $0 as? [String: Any] }.first { $0["error"] != nil }
        } else {
            container = nil
        }
        guard let error = container?["error"] as? [String: Any],
              let code = integer(error["code"]),
              let message = error["message"] as? String
        else { return nil }

        var result = GoogleError(code: code, message: message, status: error["status"] as? String)
        for case let detail as [String: Any] in (error["details"] as? [Any]) ?? [] {
            result.absorb(detail: detail)
        }
        return result
    }

    /// Parses a protobuf JSON `Duration` ("26s", "37.82626638s", "0.5s") into seconds.
    public static func parseDuration(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasSuffix("s") else { return nil }
        guard let value = Double(trimmed.dropLast()), value.isFinite, value >= 0 else { return nil }
        return value
    }

    // MARK: Helpers

    private mutating func absorb(detail: [String: Any]) {
        guard let type = detail["@type"] as? String else { return }
        if type.hasSuffix("google.rpc.ErrorInfo") {
            guard errorInfo == nil, let reason = detail["reason"] as? String else { return }
            var metadata: [String: String] = [:]
            for (name, value) in (detail["metadata"] as? [String: Any]) ?? [:] {
                if let value = value as? String { metadata[name] = value }
            }
            errorInfo = ErrorInfo(reason: reason, domain: detail["domain"] as? String, metadata: metadata)
        } else if type.hasSuffix("google.rpc.QuotaFailure") {
            for case let violation as [String: Any] in (detail["violations"] as? [Any]) ?? [] {
                let dimensions = violation["quotaDimensions"] as? [String: Any]
                quotaViolations.append(QuotaViolation(
                    quotaID: violation["quotaId"] as? String,
                    quotaMetric: violation["quotaMetric"] as? String,
                    model: dimensions?["model"] as? String,
                    quotaValue: Self.string(violation["quotaValue"])
                ))
            }
        } else if type.hasSuffix("google.rpc.RetryInfo") {
            if retryDelay == nil, let delay = detail["retryDelay"] as? String {
                retryDelay = Self.parseDuration(delay)
            }
        }
    }

    /// An integer from a JSON number (not a boolean) or a numeric string.
    private static func integer(_ value: Any?) -> Int? {
        if JSONBytes.isBoolean(value) { return nil }
        if let number = value as? Int { return number }
        if let number = value as? Double, number.isFinite, number.rounded() == number, abs(number) < 1e9 {
            return Int(number)
        }
        if let text = value as? String { return Int(text) }
        return nil
    }

    /// A string from a JSON string or number (`quotaValue` is a string on the wire, be lenient).
    private static func string(_ value: Any?) -> String? {
        if let text = value as? String { return text }
        if JSONBytes.isBoolean(value) { return nil }
        if let number = value as? Int { return String(number) }
        return nil
    }
}
