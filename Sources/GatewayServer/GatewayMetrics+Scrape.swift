import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import NIOCore
import NIOHTTP1
import Prometheus
import Synchronization

// MARK: - /metrics

extension GatewayMetrics {
    /// Prometheus' text exposition format.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `GET /metrics`: open when the operator made it public, else behind the admin token.
    func answer(to head: HTTPRequestHead, admin: AdminAuthenticator) async -> LocalAnswer {
        if !admin.metricsPublic {
            let decision = admin.check(head.headers)
            guard decision == .allowed else { return AdminAuthenticator.refusal(decision) }
        }
        let text = await exposition()
        return LocalAnswer(.ok, contentType: Self.contentType, body: ByteBuffer(bytes: text))
    }

    /// Every metric in the text format, with the state gauges read now.
    public func exposition(now: Date = Date()) async -> [UInt8] {
        let databaseHealthy = databaseHealthy?()
        // While the store is known to fail, the disabled and deleted counts keep their last values:
        // a read would wait out the store's deadline (10 s for PostgreSQL) on every scrape.
        let stored: StatusPageData.KeyCounts? =
            if let storedKeyCounts, databaseHealthy != false { try? await storedKeyCounts() } else { nil }
        let snapshot = pool.snapshot(now: now)
        let upstreams = pool.upstreamStates(now: now)
        let keys = perKey ? pool.keyStates(now: now) : []
        let queueDepth = logWriter.queueDepth
        let droppedRows = logWriter.droppedRows
        let waiting = waiting?() ?? 0
        scrape.withLock { state in
            fixed.keys(.usable).set(Double(snapshot.activeKeys - snapshot.coolingKeys))
            fixed.keys(.cooling).set(Double(snapshot.coolingKeys))
            if let stored {
                fixed.keys(.disabled).set(Double(stored.disabled))
                fixed.keys(.deleted).set(Double(stored.deleted))
            }
            fixed.logQueueDepth.set(Double(queueDepth))
            fixed.queued.set(Double(waiting))
            if let databaseHealthy { fixed.databaseOK.set(databaseHealthy ? 1.0 : 0.0) }
            if droppedRows > state.droppedRows {
                fixed.logDroppedRows.increment(by: Int64(droppedRows - state.droppedRows))
                state.droppedRows = droppedRows
            }
            sync(&state.upstreams, family: .upstreamHealthy, items: upstreams.map {
                (id: $0.id, labels: [("upstream_id", String($0.id)), ("base_url", Self.displayURL($0.baseURL))],
                 value: $0.coolingUntil == nil ? 1 : 0)
            })
            guard perKey else { return }
            sync(&state.keyStates, family: .keyState, items: keys.flatMap { key in
                let current: KeyStateLabel = key.unusable ? .unusable : key.coolingUntil == nil ? .usable : .cooling
                return KeyStateLabel.allCases.map { label in
                    (id: "\(key.fingerprint) \(label.rawValue)", labels: [("fingerprint", key.fingerprint), ("state", label.rawValue)],
                     value: label == current ? 1.0 : 0.0)
                }
            })
            sync(&state.keyCoolingUntil, family: .keyCoolingUntil, items: keys.map {
                (id: $0.fingerprint, labels: [("fingerprint", $0.fingerprint)], value: $0.coolingUntil?.timeIntervalSince1970 ?? 0)
            })
        }
        return registry.emitToBuffer()
    }

    /// Keeps one gauge per item: sets its value, makes the gauges of new items, unregisters
    /// those of items that are gone (a deleted key, a removed upstream) or whose labels changed.
    /// The first of several items with the same id wins.
    private func sync<ID: Hashable>(
        _ gauges: inout [ID: LabelledGauge], family: Family,
        items: [(id: ID, labels: [(String, String)], value: Double)]
    ) {
        var seen = Set<ID>()
        for item in items where seen.insert(item.id).inserted {
            if let existing = gauges[item.id], !existing.labels.elementsEqual(item.labels, by: ==) {
                registry.unregisterGauge(existing.gauge)
                gauges[item.id] = nil
            }
            let gauge = gauges[item.id]?.gauge ?? registry.makeGauge(descriptor: family.descriptor, labels: item.labels)
            gauges[item.id] = LabelledGauge(labels: item.labels, gauge: gauge)
            gauge.set(item.value)
        }
        for (id, entry) in gauges where !seen.contains(id) {
            registry.unregisterGauge(entry.gauge)
            gauges[id] = nil
        }
    }

    /// An upstream's base URL as a label: without user, password, query or fragment.
    static func displayURL(_ baseURL: String) -> String {
        guard var components = URLComponents(string: baseURL), components.host != nil else { return "unparsable" }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "unparsable"
    }
}

// MARK: - State read at scrape time

extension GatewayMetrics {
    enum KeyStateLabel: String, CaseIterable {
        /// No cooldown in force.
        case usable
        /// Cooling for some models.
        case cooling
        /// Cooling for every model.
        case unusable
    }

    enum KeysLabel: String, CaseIterable {
        case usable, cooling, disabled, deleted
    }

    /// A metric family made with the registry directly, which (unlike the factory) gives it a
    /// HELP line.
    struct Family {
        let name: String
        let help: String

        /// The name whole (no unit suffix added) and the help line, as the registry takes them.
        var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }

        static let keys = Family(
            name: "gemini_gateway_keys",
            help: "Keys by state: usable (no cooldown), cooling (cooling for some model), disabled, deleted.")
        static let upstreamHealthy = Family(
            name: "gemini_gateway_upstream_healthy",
            help: "1 when the upstream is not cooling, 0 while it cools after failures.")
        static let logQueueDepth = Family(
            name: "gemini_gateway_log_queue_depth", help: "Request rows waiting for the log writer.")
        static let logDroppedRows = Family(
            name: "gemini_gateway_log_dropped_rows_total",
            help: "Request rows dropped because the log writer's buffer was full.")
        static let databaseOK = Family(
            name: "gemini_gateway_database_ok",
            help: "1 while the database file is at its path; 0 once it was deleted or replaced while serving (see /readyz).")
        static let keyState = Family(
            name: "gemini_gateway_key_state",
            help: "1 for the key's current state: usable, cooling (some models) or unusable (every model).")
        static let clientConnectionsClosed = Family(
            name: "gemini_gateway_client_connections_closed_total",
            help: "Client connections the gateway closed for a timeout (reason: request_head_timeout, request_body_timeout, keep_alive_timeout).")
        static let overloadedRequests = Family(
            name: "gemini_gateway_overloaded_requests_total",
            help: "Proxied requests answered 503 at once because --max-in-flight requests were in flight.")
        static let clientLimitRefusals = Family(
            name: "gemini_gateway_client_limit_refusals_total",
            help: "Requests refused by one of their client's own limits (limit: rpm, rpd, tpm, tpd, daily-budget, monthly-budget, max-concurrent, models, expires).")
        static let queued = Family(
            name: "gemini_gateway_queued_requests",
            help: "Requests waiting for a key to come back (every key cooling for their model), now.")
        static let queueExpired = Family(
            name: "gemini_gateway_queue_expired_total",
            help: "Requests whose wait for a key ran out (--max-queue-wait, or the retry budget): answered 429.")
        static let queueFull = Family(
            name: "gemini_gateway_queue_full_total",
            help: "Requests answered 429 at once instead of waiting, because --max-queued requests were waiting.")
        static let keyCoolingUntil = Family(
            name: "gemini_gateway_key_cooling_until_seconds",
            help: "Unix time when the key's last cooldown in force ends; 0 when it is not cooling.")
    }

    /// The unlabelled state series and the `keys` gauges, made with the registry.
    struct FixedSeries: Sendable {
        let keysByState: [KeysLabel: Prometheus.Gauge]
        let logQueueDepth: Prometheus.Gauge
        let logDroppedRows: Prometheus.Counter
        let clientConnectionsClosed: [ClientTimeouts.Expiry: Prometheus.Counter]
        let overloadedRequests: Prometheus.Counter
        let databaseOK: Prometheus.Gauge
        let queued: Prometheus.Gauge
        let queueExpired: Prometheus.Counter
        let queueFull: Prometheus.Counter

        init(registry: PrometheusCollectorRegistry) {
            var keys: [KeysLabel: Prometheus.Gauge] = [:]
            for label in KeysLabel.allCases {
                keys[label] = registry.makeGauge(descriptor: Family.keys.descriptor, labels: [("state", label.rawValue)])
            }
            keysByState = keys
            logQueueDepth = registry.makeGauge(descriptor: Family.logQueueDepth.descriptor)
            logDroppedRows = registry.makeCounter(descriptor: Family.logDroppedRows.descriptor)
            var closed: [ClientTimeouts.Expiry: Prometheus.Counter] = [:]
            for expiry in ClientTimeouts.Expiry.allCases {
                closed[expiry] = registry.makeCounter(
                    descriptor: Family.clientConnectionsClosed.descriptor, labels: [("reason", expiry.rawValue)])
            }
            clientConnectionsClosed = closed
            overloadedRequests = registry.makeCounter(descriptor: Family.overloadedRequests.descriptor)
            databaseOK = registry.makeGauge(descriptor: Family.databaseOK.descriptor)
            queued = registry.makeGauge(descriptor: Family.queued.descriptor)
            queueExpired = registry.makeCounter(descriptor: Family.queueExpired.descriptor)
            queueFull = registry.makeCounter(descriptor: Family.queueFull.descriptor)
        }

        func keys(_ state: KeysLabel) -> Prometheus.Gauge { keysByState[state]! }
    }

    struct LabelledGauge {
        var labels: [(String, String)]
        var gauge: Prometheus.Gauge
    }

    /// The gauges whose label sets follow the pool, and what the log writer had dropped.
    struct ScrapeState {
        var upstreams: [Int64: LabelledGauge] = [:]
        var keyStates: [String: LabelledGauge] = [:]
        var keyCoolingUntil: [String: LabelledGauge] = [:]
        var droppedRows = 0
    }
}
