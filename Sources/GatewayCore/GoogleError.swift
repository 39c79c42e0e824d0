import Foundation

// MARK: - GoogleError

/// A Google API error envelope, `{"error":{"code","message","status","details":[...]}}`, as sent by
/// the Gemini API (also wrapped in an array, `[{"error":{...}}]`, by non-SSE
/// `streamGenerateContent` and the OpenAI-compatible endpoint).
///
/// Only the parts the gateway acts on are kept: the first `ErrorInfo`, every `QuotaFailure`
/// violation and the `RetryInfo` delay. ``parse(_:)`` never traps; it returns nil for anything
/// that is not such an envelope (HTML, empty bodies, other JSON, a relay's own error format).
/// The envelope is read and written with Codable (`JSONDecoder`, `JSONEncoder`): the gateway's
/// own errors are encoded from this type (``encodedEnvelope()``). Error answers are rare and
/// small, so no fast path is kept here (the measured JSON fast paths are the usage scanner's).
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
    /// An envelope is a JSON object (or an array whose first element with an `error` member is
    /// one) with an `error` object carrying an integer `code` and a string `message`
    /// (``init(from:)``). A relay's OpenAI-style `{"error":{"message":..,"type":..}}` therefore
    /// does not count.
    public static func parse(_ body: some Collection<UInt8>) -> GoogleError? {
        guard !body.isEmpty, body.count <= maximumEnvelopeSize else { return nil }
        // Cheap rejection of HTML and text before handing bytes to the JSON decoder.
        guard let first = body.first(where: { !JSONBytes.isWhitespace($0) }) else { return nil }
        let decoder = JSONDecoder()
        switch first {
        case JSONBytes.openBrace:
            return (try? decoder.decode(Envelope.self, from: Data(body)))?.error
        case JSONBytes.openBracket:
            let elements = try? decoder.decode([ArrayElement].self, from: Data(body))
            return elements?.first(where: \.hasError)?.error
        default:
            return nil
        }
    }

    /// Parses a protobuf JSON `Duration` ("26s", "37.82626638s", "0.5s") into seconds.
    public static func parseDuration(_ text: String) -> Double? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasSuffix("s") else { return nil }
        guard let value = Double(trimmed.dropLast()), value.isFinite, value >= 0 else { return nil }
        return value
    }

    /// Seconds as a protobuf JSON `Duration` ("26s", "0.5s"): what ``parseDuration(_:)`` reads back.
    static func formatDuration(_ seconds: Double) -> String {
        seconds == seconds.rounded() && abs(seconds) < 1e15 ? "\(Int64(seconds))s" : "\(seconds)s"
    }
}

// MARK: - The envelope, read and written with Codable

extension GoogleError: Codable {
    /// `{"error":{...}}`: the whole body of a Google error answer, and of the gateway's own.
    public struct Envelope: Codable, Sendable, Hashable {
        public var error: GoogleError

        public init(error: GoogleError) {
            self.error = error
        }

        enum CodingKeys: String, CodingKey {
            case error
        }
    }

    /// The envelope as JSON bytes: `{"error":{"code":..,"details":[..],"message":"..","status":".."}}`,
    /// keys sorted, `details` only when there are some (the gateway's own errors have none).
    public func encodedEnvelope() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Strings, integers and finite doubles only: encoding cannot fail.
        return (try? encoder.encode(Envelope(error: self))) ?? Data()
    }

    private enum CodingKeys: String, CodingKey {
        case code, message, status, details
    }

    /// The `error` object. Strict where the verdict depends on it (an integer `code`, not a
    /// boolean, also as a numeric string; a string `message`), lenient everywhere else: a
    /// `status` that is not a string is absent, and a detail that is not an object, of an
    /// unknown `@type` or of an unexpected shape is skipped.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let code = container.lenientInteger(forKey: .code) else {
            throw DecodingError.dataCorruptedError(forKey: .code, in: container, debugDescription: "no integer code")
        }
        self.init(
            code: code,
            message: try container.decode(String.self, forKey: .message),
            status: container.lenient(String.self, forKey: .status)
        )
        for detail in container.lenient([Detail].self, forKey: .details) ?? [] {
            switch detail {
            case .errorInfo(let info) where errorInfo == nil: errorInfo = info
            case .quotaFailure(let violations): quotaViolations += violations
            case .retryInfo(let delay) where retryDelay == nil: retryDelay = Self.parseDuration(delay)
            case .errorInfo, .retryInfo, .other: break
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(code, forKey: .code)
        try container.encode(message, forKey: .message)
        try container.encodeIfPresent(status, forKey: .status)
        var details: [Detail] = []
        if let errorInfo { details.append(.errorInfo(errorInfo)) }
        if !quotaViolations.isEmpty { details.append(.quotaFailure(quotaViolations)) }
        if let retryDelay { details.append(.retryInfo(Self.formatDuration(retryDelay))) }
        if !details.isEmpty { try container.encode(details, forKey: .details) }
    }

    /// One element of an array-wrapped body: whether it has an `error` member, and the error
    /// if that member is one. Never fails (the elements before the error may be anything).
    private struct ArrayElement: Decodable {
        var hasError = false
        var error: GoogleError?

        init(from decoder: any Decoder) {
            guard let container = try? decoder.container(keyedBy: Envelope.CodingKeys.self) else { return }
            hasError = container.contains(.error)
            error = try? container.decode(GoogleError.self, forKey: .error)
        }
    }

    /// One `details[]` entry, by its `@type`.
    private enum Detail: Codable {
        case errorInfo(ErrorInfo)
        case quotaFailure([QuotaViolation])
        /// `RetryInfo.retryDelay` as sent.
        case retryInfo(String)
        /// Anything else (`Help`, `BadRequest`, a detail that is not an object, ...).
        case other

        private enum CodingKeys: String, CodingKey {
            case type = "@type"
            case reason, domain, metadata, violations, retryDelay
        }

        private static let typePrefix = "type.googleapis.com/google.rpc."

        init(from decoder: any Decoder) {
            guard let container = try? decoder.container(keyedBy: CodingKeys.self),
                  let type = container.lenient(String.self, forKey: .type)
            else {
                self = .other
                return
            }
            if type.hasSuffix("google.rpc.ErrorInfo"), let reason = container.lenient(String.self, forKey: .reason) {
                let metadata = container.lenient([String: StringIfAny].self, forKey: .metadata) ?? [:]
                self = .errorInfo(ErrorInfo(
                    reason: reason, domain: container.lenient(String.self, forKey: .domain),
                    metadata: metadata.compactMapValues(\.value)
                ))
            } else if type.hasSuffix("google.rpc.QuotaFailure") {
                let violations = container.lenient([Lenient<QuotaViolation>].self, forKey: .violations) ?? []
                self = .quotaFailure(violations.compactMap(\.value))
            } else if type.hasSuffix("google.rpc.RetryInfo"), let delay = container.lenient(String.self, forKey: .retryDelay) {
                self = .retryInfo(delay)
            } else {
                self = .other
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .errorInfo(let info):
                try container.encode(Self.typePrefix + "ErrorInfo", forKey: .type)
                try container.encode(info.reason, forKey: .reason)
                try container.encodeIfPresent(info.domain, forKey: .domain)
                if !info.metadata.isEmpty { try container.encode(info.metadata, forKey: .metadata) }
            case .quotaFailure(let violations):
                try container.encode(Self.typePrefix + "QuotaFailure", forKey: .type)
                try container.encode(violations, forKey: .violations)
            case .retryInfo(let delay):
                try container.encode(Self.typePrefix + "RetryInfo", forKey: .type)
                try container.encode(delay, forKey: .retryDelay)
            case .other:
                break
            }
        }
    }
}

extension GoogleError.QuotaViolation: Codable {
    private enum CodingKeys: String, CodingKey {
        case quotaId, quotaMetric, quotaDimensions, quotaValue
    }

    private enum DimensionKeys: String, CodingKey {
        case model
    }

    /// One `violations[]` object; a member of another type than expected is absent
    /// (`quotaValue`, a string on the wire, is also read from an integer).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let dimensions = try? container.nestedContainer(keyedBy: DimensionKeys.self, forKey: .quotaDimensions)
        self.init(
            quotaID: container.lenient(String.self, forKey: .quotaId),
            quotaMetric: container.lenient(String.self, forKey: .quotaMetric),
            model: dimensions?.lenient(String.self, forKey: .model),
            quotaValue: container.lenient(String.self, forKey: .quotaValue)
                ?? container.lenient(Int.self, forKey: .quotaValue).map(String.init)
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(quotaID, forKey: .quotaId)
        try container.encodeIfPresent(quotaMetric, forKey: .quotaMetric)
        if let model {
            var dimensions = container.nestedContainer(keyedBy: DimensionKeys.self, forKey: .quotaDimensions)
            try dimensions.encode(model, forKey: .model)
        }
        try container.encodeIfPresent(quotaValue, forKey: .quotaValue)
    }
}

// MARK: - Lenient decoding

/// A value decoded if it has the expected shape, else nil (an array's odd element is skipped,
/// not fatal to the array).
private struct Lenient<Value: Decodable>: Decodable {
    var value: Value?

    init(from decoder: any Decoder) {
        value = try? Value(from: decoder)
    }
}

/// A string member, or nil for a member of another type (`metadata` values).
private typealias StringIfAny = Lenient<String>

extension KeyedDecodingContainer {
    /// The member decoded as `type`; nil when absent, null, or of another type.
    fileprivate func lenient<T: Decodable>(_ type: T.Type, forKey key: Key) -> T? {
        (try? decodeIfPresent(type, forKey: key)) ?? nil
    }

    /// An integer member: a JSON integer (or an integral number below 1e9 written with a
    /// fraction or an exponent) or a numeric string, never a boolean.
    fileprivate func lenientInteger(forKey key: Key) -> Int? {
        if let number = lenient(Int.self, forKey: key) { return number }
        if let number = lenient(Double.self, forKey: key), number.isFinite, number.rounded() == number, abs(number) < 1e9 {
            return Int(number)
        }
        return lenient(String.self, forKey: key).flatMap { Int($0) }
    }
}
