import Foundation

// MARK: - OutcomeClassifier

/// Turns an upstream answer (status and body) into a ``Verdict``: the outcome table of DESIGN.md.
///
/// The body is read, not just the status: a 400 is only the key's fault when Google says so
/// (`ErrorInfo.reason = API_KEY_INVALID`), and only a body that is a Google error envelope
/// proves the answer came from Google rather than from a broken relay.
public enum OutcomeClassifier {
    // MARK: Outcome

    /// A verdict together with the parsed envelope it was derived from.
    public struct Outcome: Sendable, Hashable {
        /// What the attempt means for the pool.
        public var verdict: Verdict
        /// The parsed Google envelope, nil for 2xx and for bodies that are not one.
        public var error: GoogleError?

        /// A verdict and its envelope.
        public init(verdict: Verdict, error: GoogleError? = nil) {
            self.verdict = verdict
            self.error = error
        }

        /// Google's canonical status string (`RESOURCE_EXHAUSTED`, ...), for the log line.
        public var googleStatus: String? { error?.status }
    }

    // MARK: HTTP answers

    /// Classifies an HTTP answer; see ``analyze(status:body:)``.
    public static func classify(status: Int, body: [UInt8]) -> Verdict {
        analyze(status: status, body: body).verdict
    }

    /// Classifies an HTTP answer and returns the parsed envelope with the verdict.
    ///
    /// - 2xx: ``Verdict/success`` whatever the body (the body is not parsed).
    /// - A 4xx whose body is not a Google envelope (a relay's or front end's HTML 400/404/414/431):
    ///   ``Verdict/relayRefusal(reason:)`` with `NOT_GOOGLE_4XX`; a 408 or 429 from a relay says
    ///   it is slow or overloaded, not that the request is bad: an upstream failure, as below.
    /// - Any other body that is not a Google envelope: ``Verdict/upstreamFailure(reason:)`` with
    ///   `NOT_GOOGLE_ENVELOPE` (a relay's HTML 502, an empty 500, ...).
    /// - 429: ``Verdict/throttled(_:)``.
    /// - Other 4xx: dead key, unusable key, blocked upstream, else client error.
    /// - 5xx: ``Verdict/transient(reason:)``.
    /// - 1xx/3xx with an envelope: ``Verdict/upstreamFailure(reason:)`` with `UNEXPECTED_STATUS`.
    public static func analyze(status: Int, body: [UInt8]) -> Outcome {
        if (200..<300).contains(status) { return Outcome(verdict: .success) }
        guard let error = GoogleError.parse(body) else {
            if (400..<500).contains(status), status != 408, status != 429 {
                return Outcome(verdict: .relayRefusal(reason: Reason.notGoogle4xx))
            }
            return Outcome(verdict: .upstreamFailure(reason: Reason.notGoogleEnvelope))
        }
        let verdict: Verdict
        switch status {
        case 429: verdict = .throttled(throttle(from: error))
        case 400..<500: verdict = clientSide(status: status, error: error)
        case 500..<600: verdict = .transient(reason: error.status ?? "HTTP_\(status)")
        default: verdict = .upstreamFailure(reason: Reason.unexpectedStatus)
        }
        return Outcome(verdict: verdict, error: error)
    }

    // MARK: Transport failures

    /// A failure to get an HTTP answer at all. The server maps its transport's errors onto these.
    public enum TransportFailure: String, Sendable, Hashable, CaseIterable {
        /// The connection was refused.
        case connectionRefused = "CONNECTION_REFUSED"
        /// The connection was reset or closed early.
        case connectionReset = "CONNECTION_RESET"
        /// Connecting, or waiting for the response head, timed out.
        case timeout = "TIMEOUT"
        /// The TLS handshake failed.
        case tls = "TLS_ERROR"
        /// The host name did not resolve.
        case dns = "DNS_ERROR"
        /// No route to the upstream's host (`EHOSTUNREACH`, `EHOSTDOWN`).
        case hostUnreachable = "HOST_UNREACHABLE"
        /// No route to the upstream's network (`ENETUNREACH`, `ENETDOWN`).
        case networkUnreachable = "NETWORK_UNREACHABLE"
        /// The gateway ran out of something of its own to make the connection with: descriptors
        /// (`EMFILE`, `ENFILE`), socket buffers (`ENOBUFS`), memory (`ENOMEM`) or local ports
        /// (`EADDRNOTAVAIL`). Not the upstream's failure.
        case localResources = "LOCAL_RESOURCES"
        /// The wait was given up because the request was cancelled (its client went away): no
        /// failure of anyone's.
        case cancelled = "CANCELLED"
        /// Any other transport error.
        case other = "TRANSPORT_ERROR"
    }

    /// Every transport failure is the upstream's (``Verdict/upstreamFailure(reason:)``) but a
    /// shortage of the gateway's own resources (``Verdict/localFailure(reason:)``) and a
    /// cancelled wait (``Verdict/cancelled``).
    public static func classify(transport failure: TransportFailure) -> Verdict {
        switch failure {
        case .localResources: .localFailure(reason: failure.rawValue)
        case .cancelled: .cancelled
        case .connectionRefused, .connectionReset, .timeout, .tls, .dns, .hostUnreachable, .networkUnreachable, .other:
            .upstreamFailure(reason: failure.rawValue)
        }
    }

    // MARK: Reasons

    /// The reason strings this classifier produces besides Google's own status names.
    public enum Reason {
        /// The body is not a Google error envelope (a relay or proxy answered).
        public static let notGoogleEnvelope = "NOT_GOOGLE_ENVELOPE"
        /// A 4xx whose body is not a Google error envelope: the request or the relay, unproven.
        public static let notGoogle4xx = "NOT_GOOGLE_4XX"
        /// A 1xx/3xx status with an envelope.
        public static let unexpectedStatus = "UNEXPECTED_STATUS"
        /// The gateway's own code failed during a try with an error that is no transport
        /// failure (a bug): nobody is blamed (``Verdict/localFailure(reason:)``).
        public static let internalError = "INTERNAL_ERROR"
        /// `ErrorInfo.reason = API_KEY_INVALID` ("API key not valid").
        public static let apiKeyInvalid = "API_KEY_INVALID"
        /// `API_KEY_INVALID` whose message says the key expired.
        public static let apiKeyExpired = "API_KEY_EXPIRED"
        /// 403 "Your API key was reported as leaked".
        public static let keyLeaked = "KEY_LEAKED"
        /// 403 `CONSUMER_SUSPENDED`: the key's project is suspended.
        public static let consumerSuspended = "CONSUMER_SUSPENDED"
        /// 403 `API_KEY_SERVICE_BLOCKED`: the key may not call this API.
        public static let apiKeyServiceBlocked = "API_KEY_SERVICE_BLOCKED"
        /// 401 `UNAUTHENTICATED`.
        public static let unauthenticated = "UNAUTHENTICATED"
        /// 403 `SERVICE_DISABLED`: the Generative Language API is off in the key's project.
        public static let serviceDisabled = "SERVICE_DISABLED"
        /// 400 "User location is not supported": the upstream's egress country.
        public static let locationNotSupported = "LOCATION_NOT_SUPPORTED"
    }

    // MARK: 4xx

    private static func clientSide(status: Int, error: GoogleError) -> Verdict {
        let reason = error.errorInfo?.reason
        let message = error.message.lowercased()

        // Dead keys.
        if reason == "API_KEY_INVALID" || message.contains("api key not valid") || message.contains("api key expired") {
            return .keyDead(reason: message.contains("expired") ? Reason.apiKeyExpired : Reason.apiKeyInvalid)
        }
        if message.contains("reported as leaked") {
            return .keyDead(reason: Reason.keyLeaked)
        }
        if reason == "CONSUMER_SUSPENDED" {
            return .keyDead(reason: Reason.consumerSuspended)
        }
        if reason == "API_KEY_SERVICE_BLOCKED" {
            return .keyDead(reason: Reason.apiKeyServiceBlocked)
        }
        if status == 401 || error.status == "UNAUTHENTICATED" {
            return .keyDead(reason: Reason.unauthenticated)
        }

        // Keys that cannot be used from here for now.
        if reason == "SERVICE_DISABLED" {
            return .keyUnusable(reason: Reason.serviceDisabled)
        }
        // Key restrictions (API_KEY_IP_ADDRESS_BLOCKED, API_KEY_HTTP_REFERRER_BLOCKED,
        // API_KEY_ANDROID_APP_BLOCKED, API_KEY_IOS_APP_BLOCKED): the key's configuration, not the
        // client's request, is at fault; it is not dead either (the restriction can be lifted).
        if let reason, reason.hasPrefix("API_KEY_"), reason.hasSuffix("_BLOCKED") {
            return .keyUnusable(reason: reason)
        }

        // The upstream's egress location.
        if message.contains("user location is not supported") {
            return .upstreamBlocked(reason: Reason.locationNotSupported)
        }

        return .clientError(reason: error.status ?? "HTTP_\(status)")
    }

    // MARK: 429

    private static func throttle(from error: GoogleError) -> Throttle {
        let violations = error.quotaViolations
        let retryDelay = error.retryDelay ?? error.messageRetryDelay

        if let zero = violations.first(where: { isZero($0.quotaValue) }) {
            return Throttle(kind: .noQuota, retryDelay: retryDelay, quotaID: zero.quotaID, model: zero.model)
        }
        if messageHasZeroLimit(error.message) {
            let first = violations.first
            return Throttle(kind: .noQuota, retryDelay: retryDelay, quotaID: first?.quotaID, model: first?.model)
        }
        if let daily = violations.first(where: { contains($0.quotaID, "PerDay") }) {
            return Throttle(kind: .perDay, retryDelay: retryDelay, quotaID: daily.quotaID, model: daily.model)
        }
        let chosen = violations.first(where: { contains($0.quotaID, "PerMinute") }) ?? violations.first
        return Throttle(kind: .perMinute, retryDelay: retryDelay, quotaID: chosen?.quotaID, model: chosen?.model)
    }

    private static func contains(_ text: String?, _ needle: String) -> Bool {
        guard let text else { return false }
        return text.range(of: needle, options: .caseInsensitive) != nil
    }

    private static func isZero(_ quotaValue: String?) -> Bool {
        guard let quotaValue, let value = Double(quotaValue.trimmingCharacters(in: .whitespaces)) else { return false }
        return value == 0
    }

    /// True when the message states a zero limit: "limit: 0" not followed by a digit or a decimal
    /// part ("limit: 20" and "limit: 0.5" do not count, "limit: 0, model: x" and "limit: 0." do).
    static func messageHasZeroLimit(_ message: String) -> Bool {
        let bytes = Array(message.utf8)
        let needle = Array("limit:".utf8)
        guard bytes.count > needle.count else { return false }
        var index = 0
        while index + needle.count <= bytes.count {
            if bytes[index..<(index + needle.count)].elementsEqual(needle) {
                var cursor = index + needle.count
                while cursor < bytes.count, bytes[cursor] == UInt8(ascii: " ") { cursor += 1 }
                if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "0") {
                    if !isDigit(at: cursor + 1, in: bytes)
                        && !(cursor + 1 < bytes.count && bytes[cursor + 1] == UInt8(ascii: ".") && isDigit(at: cursor + 2, in: bytes))
                    {
                        return true
                    }
                }
                index = cursor
            } else {
                index += 1
            }
        }
        return false
    }

    private static func isDigit(at index: Int, in bytes: [UInt8]) -> Bool {
        index < bytes.count && bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")
    }
}
