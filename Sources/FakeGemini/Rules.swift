extension FakeGemini {
    /// How an SSE event is terminated on the wire: `data: <json>` followed by a blank line.
    public enum SSEFraming: Sendable, Equatable {
        /// `data: ...\r\n\r\n` (what Google has been reported to send)
        case crlf
        /// `data: ...\n\n`
        case lf

        var terminator: String {
            switch self {
            case .crlf: return "\r\n\r\n"
            case .lf: return "\n\n"
            }
        }
    }

    /// What the fake answers to a request a ``Rule`` matched.
    public indirect enum Reply: Sendable {
        /// The default, realistic answer for the endpoint (what the fake answers when no rule matches).
        case ok
        /// Replays a real error body from `Fixtures/` by name without `.json`, e.g. `"429-per-minute"`,
        /// with the status taken from the name's prefix and `content-type: application/json`.
        /// `arrayWrapped` answers `[<body>]`, as Google does for non-SSE streamGenerateContent and the
        /// OpenAI-compatible endpoint.
        case fixture(String, arrayWrapped: Bool = false)
        /// Any status and body, e.g. a relay's HTML 502 page.
        case status(Int, body: String, contentType: String = "application/json; charset=UTF-8")
        /// `200 text/event-stream`, each event written as `data: <event>` + blank line and flushed on
        /// its own, `interval` apart. `failAfter: n` writes n events and then aborts the connection
        /// without ending the chunked body. `framing: nil` uses ``Settings/sseFraming``. With a `gate`,
        /// each event first waits for a permit from it (see ``StreamGate``).
        case sse(
            events: [String],
            interval: Duration = .milliseconds(10),
            failAfter: Int? = nil,
            framing: SSEFraming? = nil,
            gate: StreamGate? = nil
        )
        /// `200 application/json` whose body is a JSON array streamed element by element (non-SSE
        /// streamGenerateContent): `[` + e0, then `,\r\n` + e1 ..., then `]`, each piece flushed on its own.
        case jsonStream(
            elements: [String],
            interval: Duration = .milliseconds(10),
            failAfter: Int? = nil,
            gate: StreamGate? = nil
        )
        /// Waits (before sending anything), then answers `then`.
        case delay(Duration, then: Reply)
        /// Adds response headers to `then` (not applied to `.closeConnection`).
        case headers([(String, String)], then: Reply)
        /// Closes the TCP connection without answering (after the request was read and recorded).
        case closeConnection
    }

    /// A response rule. Every criterion that is set must match; `nil` matches anything.
    /// Rules are tried in order; the first matching one that has uses left answers.
    public struct Rule: Sendable {
        /// The API key the request carried (x-goog-api-key, `?key=` or Bearer), exactly.
        public var key: String?
        /// A substring of the request path (query excluded), e.g. `":streamGenerateContent"`.
        public var path: String?
        /// The model: `MODEL` in `/models/MODEL:method`, or the `model` field (minus `models/`) of an
        /// OpenAI-compatible request body.
        public var model: String?
        /// The Gemini method after the colon, e.g. `"generateContent"`, `"streamGenerateContent"`,
        /// `"countTokens"`; exact match.
        public var method: String?
        /// The HTTP method, e.g. `"POST"` (case-insensitive).
        public var httpMethod: String?
        /// A substring of the request body (as UTF-8).
        public var bodyContains: String?
        /// The rule answers only the first `times` matching requests, then falls through.
        public var times: Int?
        /// The answer.
        public var reply: Reply

        public init(
            key: String? = nil,
            path: String? = nil,
            model: String? = nil,
            method: String? = nil,
            httpMethod: String? = nil,
            bodyContains: String? = nil,
            times: Int? = nil,
            reply: Reply
        ) {
            self.key = key
            self.path = path
            self.model = model
            self.method = method
            self.httpMethod = httpMethod
            self.bodyContains = bodyContains
            self.times = times
            self.reply = reply
        }

        func matches(_ request: RequestFacts) -> Bool {
            if let key, request.key != key { return false }
            if let path, !request.path.contains(path) { return false }
            if let model, request.model != model { return false }
            if let method, request.rpcMethod != method { return false }
            if let httpMethod, request.httpMethod.uppercased() != httpMethod.uppercased() { return false }
            if let bodyContains, !request.bodyText.contains(bodyContains) { return false }
            return true
        }
    }

    /// Knobs for the default answers. Change them through ``FakeGemini/settings``.
    public struct Settings: Sendable {
        /// Events in a default `:streamGenerateContent?alt=sse` answer (and elements in the JSON-array
        /// stream, and content chunks in an OpenAI streaming answer).
        public var streamEventCount: Int = 3
        /// Time between two streamed events of a default answer.
        public var streamInterval: Duration = .milliseconds(10)
        /// SSE framing of default answers and of `.sse(framing: nil)`.
        public var sseFraming: SSEFraming = .crlf
        /// usageMetadata of default answers. For streams, the candidates count grows by
        /// `candidatesTokenCount` per event (a running total, as Google sends it).
        public var promptTokenCount: Int = 11
        public var candidatesTokenCount: Int = 7
        public var thoughtsTokenCount: Int = 5
        /// `cachedContentTokenCount` (part of the prompt's count), sent when above 0.
        public var cachedContentTokenCount: Int = 0
        /// Prompt tokens of modality `AUDIO` (part of the prompt's count): an entry of their own in
        /// `promptTokensDetails` when above 0.
        public var audioPromptTokenCount: Int = 0
        /// Length of default embedding vectors.
        public var embeddingDimensions: Int = 8
        /// Models that `GET /models` lists and `GET /models/{m}` finds (any model name is accepted by
        /// the generate/count/embed methods).
        public var models: [String] = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-embedding-001"]
        /// Answer 403 (unregistered caller) when a request carries no key, as Google does.
        public var requireKey: Bool = true
        /// Answer 401 (UNAUTHENTICATED) when a native (non-OpenAI) request carries an `Authorization`
        /// header, as Google does: it takes the header for an OAuth token.
        public var rejectAuthorizationOnNativePaths: Bool = true
        /// Record requests (for ``FakeGemini/received()``) and sent events (for
        /// ``FakeGemini/eventLog()``). Benchmarks may turn it off.
        public var recording: Bool = true

        public init() {}
    }
}

extension FakeGemini.Reply {
    /// Google's per-minute 429 (`Fixtures/429-per-minute.json`) asking for `seconds` instead of its
    /// 26 s. A test that must still find the key cooling later asks for far longer than any busy
    /// machine could take to get there; 26 s has run out under load before the test looked.
    public static func perMinuteThrottle(retryDelay seconds: Int) -> Self {
        let body = String(decoding: FakeGemini.fixtureBody("429-per-minute") ?? [], as: UTF8.self)
        let asked = body.replacingOccurrences(of: #""retryDelay":"26s""#, with: #""retryDelay":"\#(seconds)s""#)
        precondition(asked != body, "Fixtures/429-per-minute.json no longer asks for 26s")
        return .status(429, body: asked)
    }
}
