import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import Metrics
import Prometheus
import Synchronization

/// The gateway's Prometheus metrics, in a registry of its own: never the global
/// `MetricsSystem` (tests run many gateways in one process), always an explicit factory.
///
/// The request path reaches it twice per request, through ``RequestRecorder``: when the request
/// arrives (the in-flight gauges) and with the finished log row, whose counters and histograms
/// are looked up in dictionaries under one lock and made on first use. What describes state
/// (keys, upstreams, the log writer's queue) is read when `/metrics` is scraped
/// (`GatewayMetrics+Scrape.swift`).
///
/// Label values stay few: `endpoint` is the route template (``GeminiRoute/Endpoint``), `model`
/// one of the first ``modelLabelLimit`` model names seen (later ones are `other`, a request
/// without a model is `none`), `status` the numeric code, `outcome` and `verdict` the fixed words
/// of the request log. Key fingerprints appear only in the per-key gauges an operator asked for.
public final class GatewayMetrics: Sendable {
    /// Distinct model names that get their own `model` label value.
    public static let modelLabelLimit = 50
    /// Longer model names (clients can send anything) are counted as `other`.
    static let longestModelLabel = 128

    /// Where every metric of this gateway lives; `/metrics` renders it.
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let series: Mutex<Series>
    private let inFlightRequests: Meter
    private let inFlightStreams: Meter

    // Read at scrape time (see GatewayMetrics+Scrape.swift).
    let pool: KeyPool
    let logWriter: RequestLogWriter
    let storedKeyCounts: (@Sendable () async throws -> StatusPageData.KeyCounts)?
    /// Whether the database file is still at its path (``DatabaseWatcher``); nil: not watched.
    let databaseHealthy: (@Sendable () -> Bool)?
    /// Requests waiting for a key to come back now; nil: no waiting room.
    let waiting: (@Sendable () -> Int)?
    let perKey: Bool
    let fixed: FixedSeries
    let scrape = Mutex(ScrapeState())
    /// `gemini_gateway_client_limit_refusals_total` by limit and client (clients are the
    /// operator's: few), made on first use.
    private let clientLimitRefusals = Mutex<[String: Prometheus.Counter]>([:])

    /// Metrics for one gateway. `storedKeyCounts` reads the keys that are not in the pool
    /// (disabled, deleted) from the database; it runs on every scrape.
    public init(
        configuration: GatewayConfiguration,
        pool: KeyPool,
        logWriter: RequestLogWriter,
        storedKeyCounts: (@Sendable () async throws -> StatusPageData.KeyCounts)? = nil,
        databaseHealthy: (@Sendable () -> Bool)? = nil,
        waiting: (@Sendable () -> Int)? = nil
    ) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            Name.upstreamLatency: Self.latencyBuckets,
            Name.timeToFirstByte: Self.latencyBuckets,
        ]
        self.registry = registry
        self.factory = factory
        self.series = Mutex(Series(factory: factory))
        self.inFlightRequests = Meter(label: Name.inFlightRequests, factory: factory)
        self.inFlightStreams = Meter(label: Name.inFlightStreams, factory: factory)
        self.pool = pool
        self.logWriter = logWriter
        self.storedKeyCounts = storedKeyCounts
        self.databaseHealthy = databaseHealthy
        self.waiting = waiting
        self.perKey = configuration.metricsPerKey
        self.fixed = FixedSeries(registry: registry)
        series.withLock { $0.makeZeroSeries() }
    }

    /// Seconds: an upstream answers a small call in tens of milliseconds, a thinking model's
    /// non-streamed answer in minutes.
    static let latencyBuckets: [Duration] = [
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(20), .seconds(40),
        .seconds(80), .seconds(160), .seconds(320),
    ]

    /// Metric names.
    enum Name {
        static let requests = "gemini_gateway_requests_total"
        static let attempts = "gemini_gateway_attempts_total"
        static let retries = "gemini_gateway_retries_total"
        static let upstreamLatency = "gemini_gateway_upstream_latency_seconds"
        static let timeToFirstByte = "gemini_gateway_time_to_first_byte_seconds"
        static let tokens = "gemini_gateway_tokens_total"
        static let inFlightRequests = "gemini_gateway_in_flight_requests"
        static let inFlightStreams = "gemini_gateway_in_flight_streams"
    }

    // MARK: - The request path

    /// A request arrived (its recorder was made).
    func requestStarted(isStream: Bool) {
        inFlightRequests.increment()
        if isStream { inFlightStreams.increment() }
    }

    /// A client connection was closed for a timeout.
    func clientConnectionClosed(_ expiry: ClientTimeouts.Expiry) {
        fixed.clientConnectionsClosed[expiry]?.increment()
    }

    /// A proxied request was refused: `--max-in-flight` requests were in flight.
    func requestOverloaded() {
        fixed.overloadedRequests.increment()
    }

    /// A request was refused by one of its client's own limits (`client_limit`).
    func clientLimitRefused(client: String, limit: ClientLimit) {
        let counter = clientLimitRefusals.withLock { counters in
            let key = "\(limit.rawValue)\u{0}\(client)"
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: Family.clientLimitRefusals.descriptor, labels: [("client", client), ("limit", limit.rawValue)])
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// A request's wait for a key ran out (it answers 429).
    func waitExpired() {
        fixed.queueExpired.increment()
    }

    /// A request would have waited for a key, but `--max-queued` requests were waiting already.
    func waitRefused() {
        fixed.queueFull.increment()
    }

    /// A request in flight turned out to be a stream, or not (OpenAI-compatible calls say so in
    /// their body).
    func streamChanged(isStream: Bool) {
        if isStream { inFlightStreams.increment() } else { inFlightStreams.decrement() }
    }

    /// A request is done: `entry` is its complete log row; `countedAsStream` is what the
    /// in-flight streams gauge holds for it.
    func requestFinished(_ entry: RequestLogEntry, countedAsStream: Bool) {
        // The in-flight gauges go down last: a scrape that sees none in flight sees every
        // finished request's counters and histograms.
        defer {
            inFlightRequests.decrement()
            if countedAsStream { inFlightStreams.decrement() }
        }
        // Under the lock only what needs it (the series looked up, made on first use, and the
        // counters, which are atomic); the histograms (each with a lock of its own) and the
        // token counters are touched after it: both loops take this lock on every request.
        let (endpoint, model) = series.withLock { series in
            let endpoint = series.endpoint(entry.endpoint)
            let model = series.model(entry.model, admit: entry.outcome != .unauthorized)
            series.requests(endpoint: entry.endpoint, model: model.label, status: entry.status, outcome: entry.outcome)
                .increment()
            for attempt in entry.attempts {
                endpoint.attempts(attempt.verdict).increment()
            }
            return (endpoint, model)
        }
        for attempt in entry.attempts {
            if let latency = attempt.latencyMs { endpoint.latency.recordNanoseconds(Self.nanoseconds(latency)) }
        }
        if entry.attempts.count > 1 { endpoint.retries.increment(by: entry.attempts.count - 1) }
        if let ttfb = entry.ttfbMs { endpoint.timeToFirstByte.recordNanoseconds(Self.nanoseconds(ttfb)) }
        model.add(entry)
    }

    static func nanoseconds(_ milliseconds: Double) -> Int64 {
        Int64((max(milliseconds, 0) * 1_000_000).rounded())
    }
}

// MARK: - The series made on first use

extension GatewayMetrics {
    /// Every labelled counter and histogram the request path has touched, by its label values.
    private struct Series {
        let factory: PrometheusMetricsFactory
        var endpoints: [String: EndpointSeries] = [:]
        var models: [String: ModelSeries] = [:]
        let noModel: ModelSeries
        let otherModels: ModelSeries
        var requests: [RequestKey: Metrics.Counter] = [:]

        init(factory: PrometheusMetricsFactory) {
            self.factory = factory
            noModel = ModelSeries(label: "none", factory: factory)
            otherModels = ModelSeries(label: "other", factory: factory)
        }

        /// Every family from the start, at zero, so that a fresh gateway's dashboards and alerts
        /// read 0 rather than no data: per endpoint its latency and time-to-first-byte
        /// histograms, its retries, its successful attempts and its successful requests (model
        /// `none`); the token counters of `none` and `other` are made with the series.
        mutating func makeZeroSeries() {
            for endpoint in GeminiRoute.Endpoint.allCases {
                _ = self.endpoint(endpoint.rawValue).attempts(Verdict.success.label)
                _ = requests(endpoint: endpoint.rawValue, model: noModel.label, status: 200, outcome: .success)
            }
        }

        mutating func endpoint(_ name: String) -> EndpointSeries {
            if let series = endpoints[name] { return series }
            let series = EndpointSeries(endpoint: name, factory: factory)
            endpoints[name] = series
            return series
        }

        /// The model's series: its own for the first ``GatewayMetrics/modelLabelLimit`` names
        /// (`admit` false, for a client that did not authenticate, takes no new place), else `other`.
        mutating func model(_ name: String?, admit: Bool) -> ModelSeries {
            guard let name, !name.isEmpty, name != noModel.label else { return noModel }
            if let series = models[name] { return series }
            guard admit, models.count < GatewayMetrics.modelLabelLimit,
                  name.utf8.count <= GatewayMetrics.longestModelLabel, name != otherModels.label else { return otherModels }
            let series = ModelSeries(label: name, factory: factory)
            models[name] = series
            return series
        }

        mutating func requests(endpoint: String, model: String, status: Int, outcome: RequestOutcome) -> Metrics.Counter {
            let key = RequestKey(endpoint: endpoint, model: model, status: status, outcome: outcome)
            if let counter = requests[key] { return counter }
            let counter = Metrics.Counter(
                label: Name.requests,
                dimensions: [("endpoint", endpoint), ("model", model), ("status", String(status)), ("outcome", outcome.rawValue)],
                factory: factory)
            requests[key] = counter
            return counter
        }
    }

    private struct RequestKey: Hashable {
        var endpoint: String
        var model: String
        var status: Int
        var outcome: RequestOutcome
    }

    /// The series labelled by endpoint only. Its attempt counters are made under the metrics'
    /// lock; the rest is set once and safe to use from any thread.
    private final class EndpointSeries: @unchecked Sendable {
        let endpoint: String
        let factory: PrometheusMetricsFactory
        let latency: Metrics.Timer
        let timeToFirstByte: Metrics.Timer
        let retries: Metrics.Counter
        private var attemptsByVerdict: [String: Metrics.Counter] = [:]

        init(endpoint: String, factory: PrometheusMetricsFactory) {
            self.endpoint = endpoint
            self.factory = factory
            latency = Metrics.Timer(label: Name.upstreamLatency, dimensions: [("endpoint", endpoint)], factory: factory)
            timeToFirstByte = Metrics.Timer(label: Name.timeToFirstByte, dimensions: [("endpoint", endpoint)], factory: factory)
            retries = Metrics.Counter(label: Name.retries, dimensions: [("endpoint", endpoint)], factory: factory)
        }

        func attempts(_ verdict: String) -> Metrics.Counter {
            if let counter = attemptsByVerdict[verdict] { return counter }
            let counter = Metrics.Counter(
                label: Name.attempts, dimensions: [("endpoint", endpoint), ("verdict", verdict)], factory: factory)
            attemptsByVerdict[verdict] = counter
            return counter
        }
    }

    /// The token counters of one `model` label value, one per kind of `usageMetadata` count.
    private final class ModelSeries: Sendable {
        let label: String
        let prompt: Metrics.Counter
        let cached: Metrics.Counter
        let candidates: Metrics.Counter
        let thoughts: Metrics.Counter
        let toolUse: Metrics.Counter

        init(label: String, factory: PrometheusMetricsFactory) {
            self.label = label
            func counter(_ kind: String) -> Metrics.Counter {
                Metrics.Counter(label: Name.tokens, dimensions: [("model", label), ("kind", kind)], factory: factory)
            }
            prompt = counter("prompt")
            cached = counter("cached")
            candidates = counter("candidates")
            thoughts = counter("thoughts")
            toolUse = counter("tool_use")
        }

        func add(_ entry: RequestLogEntry) {
            Self.add(entry.promptTokens, to: prompt)
            Self.add(entry.cachedTokens, to: cached)
            Self.add(entry.candidatesTokens, to: candidates)
            Self.add(entry.thoughtsTokens, to: thoughts)
            Self.add(entry.toolUseTokens, to: toolUse)
        }

        private static func add(_ count: Int, to counter: Metrics.Counter) {
            if count > 0 { counter.increment(by: count) }
        }
    }
}
