import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
@testable import GatewayServer
import GatewayStore
import GRDB
import Logging
import NIOCore
import TestSupport
import Testing

/// `/metrics`: who may read it, and that the figures it shows are the traffic's.
@Suite struct MetricsTests {
    let a = testKey("a"), b = testKey("b"), c = testKey("c")
    static let adminToken = "admin-token-for-metrics-tests-0123456789"

    // MARK: Access

    @Test func metricsAreOffWithoutAnAdminToken() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let answer = try await gateway.scrape(authorization: nil)
            #expect(answer.status == 403)
            #expect(try await gateway.scrape(authorization: "Bearer " + gateway.token).status == 403)
        }
    }

    @Test func onlyTheAdminTokenOpensMetrics() async throws {
        try await withGateway(keys: [a], configure: { $0.adminToken = Self.adminToken }) { gateway, _ in
            for authorization in [nil, "Bearer wrong-token", "Basic " + Self.base64("ops:wrong-token"), "Bearer " + gateway.token] {
                let answer = try await gateway.scrape(authorization: authorization)
                #expect(answer.status == 401, "\(authorization.map { String($0.prefix(8)) } ?? "none")")
                #expect(answer.header("www-authenticate")?.hasPrefix("Basic realm=") == true)
            }
            // The client's token in the headers clients use for the proxy does not open it either.
            let asClient = try await gateway.send(gateway.request("/metrics", method: .GET))
            #expect(asClient.status == 401)
            let withKeyParameter = try await gateway.send(gateway.request("/metrics?key=\(gateway.token)", method: .GET))
            #expect(withKeyParameter.status == 401)

            for authorization in ["Bearer " + Self.adminToken, "Basic " + Self.base64("prometheus:" + Self.adminToken)] {
                let answer = try await gateway.scrape(authorization: authorization)
                #expect(answer.status == 200)
                #expect(answer.header("content-type") == "text/plain; version=0.0.4; charset=utf-8")
                #expect(answer.text.contains("gemini_gateway_keys{state=\"usable\"} 1"))
            }
        }
    }

    @Test func publicMetricsNeedNoToken() async throws {
        try await withGateway(keys: [a], configure: { $0.metricsPublic = true }) { gateway, _ in
            let answer = try await gateway.scrape(authorization: nil)
            #expect(answer.status == 200)
            #expect(try Exposition(answer.text).value("gemini_gateway_in_flight_requests") == 0)
        }
    }

    /// A fresh gateway exports every family at zero: `rate(...)` and alerts read 0, not "no data".
    @Test func aFreshGatewayExportsEveryFamilyAtZero() async throws {
        try await withGateway(keys: [a], configure: { $0.metricsPublic = true }) { gateway, _ in
            let answer = try await gateway.scrape(authorization: nil)
            #expect(answer.status == 200)
            let exposition = try Exposition(answer.text)
            for family in [
                "gemini_gateway_requests_total", "gemini_gateway_attempts_total", "gemini_gateway_retries_total",
                "gemini_gateway_tokens_total", "gemini_gateway_in_flight_requests", "gemini_gateway_in_flight_streams",
            ] {
                #expect(answer.text.contains("# TYPE \(family) "), "\(family) missing")
                #expect(exposition.value(family) == 0, "\(family)")
            }
            for family in ["gemini_gateway_upstream_latency_seconds", "gemini_gateway_time_to_first_byte_seconds"] {
                #expect(answer.text.contains("# TYPE \(family) histogram"), "\(family) missing")
                #expect(exposition.value(family + "_count") == 0, "\(family)")
            }
        }
    }

    // MARK: Figures

    @Test func countersShowTheTraffic() async throws {
        try await withGateway(keys: [a, b], configure: { $0.adminToken = Self.adminToken }) { gateway, fakes in
            fakes[0].setRules([
                .init(model: "gemini-m", times: 1, reply: .fixture("429-per-minute")),
                .init(model: "gemini-bad", reply: .fixture("400-malformed-request")),
            ])
            for _ in 0..<3 { #expect(try await gateway.generate().status == 200) }
            #expect(try await gateway.generate(model: "gemini-m").status == 200)
            #expect(try await gateway.generate(model: "gemini-bad").status == 400)
            let stream = try await gateway.send(gateway.request("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"))
            #expect(stream.status == 200)

            let metrics = try await gateway.settledMetrics()
            func requests(_ endpoint: String, _ model: String, _ status: String, _ outcome: String) -> Double? {
                metrics.value("gemini_gateway_requests_total", ["endpoint": endpoint, "model": model, "status": status, "outcome": outcome])
            }
            #expect(requests("generateContent", "gemini-2.5-flash", "200", "success") == 3)
            #expect(requests("generateContent", "gemini-m", "200", "success") == 1)
            #expect(requests("generateContent", "gemini-bad", "400", "client_error") == 1)
            #expect(requests("streamGenerateContent", "gemini-2.5-flash", "200", "success") == 1)
            #expect(metrics.sum("gemini_gateway_requests_total") == 6)

            #expect(metrics.value("gemini_gateway_attempts_total", ["endpoint": "generateContent", "verdict": "success"]) == 4)
            #expect(metrics.value("gemini_gateway_attempts_total", ["endpoint": "generateContent", "verdict": "throttled"]) == 1)
            #expect(metrics.value("gemini_gateway_attempts_total", ["endpoint": "generateContent", "verdict": "client_error"]) == 1)
            #expect(metrics.value("gemini_gateway_attempts_total", ["endpoint": "streamGenerateContent", "verdict": "success"]) == 1)
            #expect(metrics.value("gemini_gateway_retries_total", ["endpoint": "generateContent"]) == 1)
            #expect(metrics.sum("gemini_gateway_retries_total") == 1)

            // One latency per attempt, one time to first byte per request.
            #expect(metrics.value("gemini_gateway_upstream_latency_seconds_count", ["endpoint": "generateContent"]) == 6)
            #expect(metrics.value("gemini_gateway_upstream_latency_seconds_count", ["endpoint": "streamGenerateContent"]) == 1)
            #expect(metrics.value("gemini_gateway_upstream_latency_seconds_bucket", ["endpoint": "generateContent", "le": "+Inf"]) == 6)
            #expect(metrics.value("gemini_gateway_time_to_first_byte_seconds_count", ["endpoint": "generateContent"]) == 5)
            #expect(metrics.value("gemini_gateway_time_to_first_byte_seconds_count", ["endpoint": "streamGenerateContent"]) == 1)
            #expect((metrics.value("gemini_gateway_upstream_latency_seconds_sum", ["endpoint": "generateContent"]) ?? 0) > 0)

            // Tokens by model are what the fake answered (a stream's last event holds the totals),
            // and what the request log holds.
            let s = FakeGemini.Settings()
            func tokens(_ model: String, _ kind: String) -> Double? {
                metrics.value("gemini_gateway_tokens_total", ["model": model, "kind": kind])
            }
            #expect(tokens("gemini-2.5-flash", "prompt") == Double(4 * s.promptTokenCount))
            #expect(tokens("gemini-2.5-flash", "candidates") == Double(3 * s.candidatesTokenCount + s.streamEventCount * s.candidatesTokenCount))
            #expect(tokens("gemini-2.5-flash", "thoughts") == Double(4 * s.thoughtsTokenCount))
            #expect(tokens("gemini-m", "prompt") == Double(s.promptTokenCount))
            #expect(tokens("gemini-bad", "prompt") == 0)
            let rows = try await gateway.requestRows(count: 6)
            for model in ["gemini-2.5-flash", "gemini-m", "gemini-bad"] {
                let mine = rows.filter { $0["model"] == model }
                for (kind, column) in [("prompt", "prompt_tokens"), ("cached", "cached_tokens"), ("candidates", "candidates_tokens"),
                                       ("thoughts", "thoughts_tokens"), ("tool_use", "tool_use_tokens")] {
                    let logged = mine.reduce(0) { $0 + ($1[column] as Int) }
                    #expect(tokens(model, kind) == Double(logged), "\(model) \(kind)")
                }
            }

            // The throttled key cools for gemini-m; the other stays usable.
            #expect(metrics.value("gemini_gateway_keys", ["state": "usable"]) == 1)
            #expect(metrics.value("gemini_gateway_keys", ["state": "cooling"]) == 1)
            #expect(metrics.value("gemini_gateway_keys", ["state": "deleted"]) == 0)
            #expect(metrics.value("gemini_gateway_upstream_healthy", ["base_url": fakes[0].baseURL]) == 1)
            #expect(metrics.value("gemini_gateway_in_flight_requests") == 0)
            #expect(metrics.value("gemini_gateway_in_flight_streams") == 0)
            #expect(metrics.value("gemini_gateway_log_dropped_rows_total") == 0)
            #expect(metrics.value("gemini_gateway_log_queue_depth") != nil)

            // No secret, no per-key series unless asked.
            let text = try await gateway.scrape(authorization: "Bearer " + Self.adminToken).text
            for secret in [a, b, gateway.token, Self.adminToken] { #expect(!text.contains(secret)) }
            #expect(!text.contains("fingerprint"))
        }
    }

    @Test func inFlightGaugesCountOpenStreams() async throws {
        try await withGateway(keys: [a], configure: { $0.metricsPublic = true }) { gateway, fakes in
            let gate = FakeGemini.StreamGate(permits: 1)
            let events = (1...3).map { #"{"candidates":[{"content":{"parts":[{"text":"chunk \#($0)"}]}}]}"# }
            fakes[0].setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, gate: gate))])
            let response = try await testClient.execute(
                gateway.request("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"), timeout: .seconds(120))
            #expect(response.status.code == 200)
            let open = try await gateway.settledMetrics(until: { $0.value("gemini_gateway_in_flight_streams") == 1 })
            #expect(open.value("gemini_gateway_in_flight_requests") == 1)
            #expect(open.value("gemini_gateway_in_flight_streams") == 1)
            gate.open()
            _ = try await response.body.collect(upTo: 1 << 20)
            let done = try await gateway.settledMetrics()
            #expect(done.value("gemini_gateway_in_flight_requests") == 0)
            #expect(done.value("gemini_gateway_in_flight_streams") == 0)
        }
    }

    @Test func keysGaugesFollowDeletionsAndTheDatabase() async throws {
        try await withGateway(keys: [a, b, c], configure: { $0.metricsPublic = true }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, reply: .fixture("403-key-leaked"))])
            try gateway.database.setKeyState(c, to: .disabled)
            // Once the reload has taken c out of the pool, two requests try a (least recently used).
            try await gateway.waitForReload()
            #expect(gateway.gateway.pool.snapshot().activeKeys == 2)
            for _ in 0..<2 { #expect(try await gateway.generate().status == 200) }
            let metrics = try await gateway.settledMetrics(until: {
                $0.value("gemini_gateway_keys", ["state": "deleted"]) == 1 && $0.value("gemini_gateway_keys", ["state": "usable"]) == 1
            })
            #expect(metrics.value("gemini_gateway_keys", ["state": "usable"]) == 1)
            #expect(metrics.value("gemini_gateway_keys", ["state": "cooling"]) == 0)
            #expect(metrics.value("gemini_gateway_keys", ["state": "disabled"]) == 1)
            #expect(metrics.value("gemini_gateway_keys", ["state": "deleted"]) == 1)
            #expect(metrics.value("gemini_gateway_attempts_total", ["endpoint": "generateContent", "verdict": "key_dead"]) == 1)
        }
    }

    @Test func perKeyGaugesOnlyWhenAsked() async throws {
        try await withGateway(keys: [a, b], configure: {
            $0.metricsPublic = true
            $0.metricsPerKey = true
        }) { gateway, fakes in
            fakes[0].setRules([.init(key: a, reply: .perMinuteThrottle(retryDelay: 600))])
            let before = Date()
            // Two requests: one of them tries a (least recently used).
            for _ in 0..<2 { #expect(try await gateway.generate(model: "gemini-m").status == 200) }
            let metrics = try await gateway.settledMetrics()
            let fingerprintA = try gateway.database.findKey(a).fingerprint
            let fingerprintB = try gateway.database.findKey(b).fingerprint
            #expect(try gateway.database.listKeys().map(\.fingerprint).sorted() == [fingerprintA, fingerprintB].sorted())
            #expect(metrics.value("gemini_gateway_key_state", ["fingerprint": fingerprintA, "state": "cooling"]) == 1)
            #expect(metrics.value("gemini_gateway_key_state", ["fingerprint": fingerprintA, "state": "usable"]) == 0)
            #expect(metrics.value("gemini_gateway_key_state", ["fingerprint": fingerprintB, "state": "usable"]) == 1)
            #expect(metrics.sum("gemini_gateway_key_state") == 2)
            let until = try #require(metrics.value("gemini_gateway_key_cooling_until_seconds", ["fingerprint": fingerprintA]))
            #expect(until >= before.timeIntervalSince1970 + 600 - 1 && until <= Date().timeIntervalSince1970 + 600 + 1)
            #expect(metrics.value("gemini_gateway_key_cooling_until_seconds", ["fingerprint": fingerprintB]) == 0)

            let text = try await gateway.scrape(authorization: nil).text
            for secret in [a, b, gateway.token] { #expect(!text.contains(secret)) }
            #expect(!text.contains(String(a.dropLast(4))))
        }
    }

    @Test func modelLabelsAreCapped() async throws {
        try await withGateway(keys: [a], configure: { $0.metricsPublic = true }) { gateway, _ in
            // A caller without a valid token takes no model label.
            for index in 0..<3 {
                let answer = try await gateway.send(gateway.request("/v1beta/models/junk-\(index):generateContent", token: .some("wrong")))
                #expect(answer.status == 401)
            }
            for index in 0..<60 {
                #expect(try await gateway.generate(model: String(format: "model-%02d", index)).status == 200)
            }
            let metrics = try await gateway.settledMetrics()
            let models = Set(metrics.samples.filter { $0.name == "gemini_gateway_requests_total" }.compactMap { $0.labels["model"] })
            // The first 50 names, and the two fixed values: `other`, and `none` (requests without a model).
            #expect(models.subtracting(["none"]).count <= GatewayMetrics.modelLabelLimit + 1)
            #expect(models.contains("other"))
            #expect(models.contains("model-49"))
            #expect(!models.contains("model-50"))
            #expect(!models.contains { $0.hasPrefix("junk") })
            #expect(metrics.value("gemini_gateway_requests_total", ["model": "other", "outcome": "success"]) == 10)
            #expect(metrics.value("gemini_gateway_requests_total", ["model": "other", "outcome": "unauthorized"]) == 3)
            #expect(metrics.value("gemini_gateway_tokens_total", ["model": "other", "kind": "prompt"]) == Double(10 * FakeGemini.Settings().promptTokenCount))
            let tokenModels = Set(metrics.samples.filter { $0.name == "gemini_gateway_tokens_total" }.compactMap { $0.labels["model"] })
            #expect(tokenModels.count <= GatewayMetrics.modelLabelLimit + 2, "50 models, other and none")
        }
    }

    @Test func upstreamLabelsCarryNoCredentials() {
        #expect(GatewayMetrics.displayURL("https://user:secret@relay.example.com:8443/gemini?token=abc#x") == "https://relay.example.com:8443/gemini")
        #expect(GatewayMetrics.displayURL("http://127.0.0.1:9000") == "http://127.0.0.1:9000")
        #expect(GatewayMetrics.displayURL("not a url") == "unparsable")
    }

    // MARK: Cost

    /// Not an assertion: prints what recording one finished request costs (the request path's
    /// share of the metrics). Debug builds are several times slower than release.
    @Test func recordingCost() async throws {
        let directory = NSTemporaryDirectory() + "gateway-metrics-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try AppDatabase.open(path: directory + "/gateway.db")
        let logger = Logger(label: "metrics-cost") { _ in SwiftLogNoOpLogHandler() }
        let metrics = GatewayMetrics(
            configuration: GatewayConfiguration(), pool: KeyPool(policy: CooldownPolicy()),
            logWriter: RequestLogWriter(database: database, capacity: 16, logger: logger))
        var entry = RequestLogEntry(requestId: "r", startedAt: Date(), method: "POST", endpoint: "generateContent")
        entry.model = "gemini-2.5-flash"
        entry.status = 200
        entry.outcome = .success
        entry.ttfbMs = 120
        entry.promptTokens = 11
        entry.candidatesTokens = 7
        entry.thoughtsTokens = 5
        entry.attempts = [
            AttemptRow(attempt: 1, startedAt: Date(), keyId: 1, upstreamId: 1, status: 429, verdict: "throttled", latencyMs: 40),
            AttemptRow(attempt: 2, startedAt: Date(), keyId: 2, upstreamId: 1, status: 200, verdict: "success", latencyMs: 110),
        ]
        let calls = 100_000
        let elapsed = try await onOwnThread { [entry] in
            ContinuousClock().measure {
                for _ in 0..<calls {
                    metrics.requestStarted(isStream: false)
                    metrics.requestFinished(entry, countedAsStream: false)
                }
            }
        }
        let nanoseconds = elapsed / .nanoseconds(1)
        print("metrics cost: \(Int(nanoseconds / Double(calls))) ns per request (2 attempts, 3 token kinds), \(calls) requests")
        let exposition = String(decoding: metrics.registry.emitToBuffer(), as: UTF8.self)
        #expect(try Exposition(exposition).value("gemini_gateway_requests_total") == Double(calls))
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
}

// MARK: - Scraping

extension GatewayHarness {
    /// `GET /metrics` with this `Authorization` header (nothing else).
    func scrape(authorization: String?) async throws -> Answer {
        let request = self.request("/metrics", method: .GET, token: .some(nil), headers: authorization.map { [("authorization", $0)] } ?? [])
        return try await send(request)
    }

    /// Scrapes (with the admin token, or openly) until `until` holds, by default until no
    /// request is in flight any more (a response can reach the client just before its row is done).
    func settledMetrics(
        until: (Exposition) -> Bool = { $0.value("gemini_gateway_in_flight_requests") == 0 },
        timeout: Double = patience
    ) async throws -> Exposition {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let answer = try await scrape(authorization: "Bearer " + MetricsTests.adminToken)
            #expect(answer.status == 200, "\(answer.text)")
            let metrics = try Exposition(answer.text)
            if until(metrics) || Date() > deadline { return metrics }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// Prometheus' text format, parsed: one sample per line that is not a comment.
struct Exposition: Sendable {
    struct Sample: Sendable {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    struct Malformed: Error, CustomStringConvertible {
        let line: String
        var description: String { "not a sample: \(line)" }
    }

    let samples: [Sample]

    init(_ text: String) throws {
        var samples: [Sample] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw Malformed(line: String(line))
            }
            let series = line[..<space]
            guard let brace = series.firstIndex(of: "{") else {
                samples.append(Sample(name: String(series), labels: [:], value: value))
                continue
            }
            guard series.hasSuffix("}") else { throw Malformed(line: String(line)) }
            samples.append(Sample(
                name: String(series[..<brace]),
                labels: try Self.labels(series[series.index(after: brace)..<series.index(before: series.endIndex)]),
                value: value))
        }
        self.samples = samples
    }

    /// `a="x",b="y\"z"` into a dictionary, undoing the format's escapes.
    static func labels(_ text: Substring) throws -> [String: String] {
        var labels: [String: String] = [:]
        var rest = text[...]
        while !rest.isEmpty {
            guard let equals = rest.firstIndex(of: "="), rest[rest.index(after: equals)] == "\"" else { throw Malformed(line: String(text)) }
            let name = String(rest[..<equals])
            var value = ""
            var index = rest.index(equals, offsetBy: 2)
            while index < rest.endIndex, rest[index] != "\"" {
                if rest[index] == "\\" {
                    index = rest.index(after: index)
                    value.append(rest[index] == "n" ? "\n" : rest[index])
                } else {
                    value.append(rest[index])
                }
                index = rest.index(after: index)
            }
            guard index < rest.endIndex else { throw Malformed(line: String(text)) }
            labels[name] = value
            rest = rest[rest.index(after: index)...]
            if rest.first == "," { rest = rest.dropFirst() }
        }
        return labels
    }

    /// The sum of the samples named `name` whose labels include `labels`; nil when there is none.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
        return matching.isEmpty ? nil : matching.reduce(0) { $0 + $1.value }
    }

    /// The sum of every sample named `name` (0 when there is none).
    func sum(_ name: String) -> Double { value(name) ?? 0 }
}
