import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import TestSupport
import Testing

/// Issue 4: known traffic through the real gateway (non-stream, SSE stream, errors, failovers, a
/// cancelled stream, countTokens, embeddings, two clients and an unauthenticated caller), then
/// every request row, every attempt row, every usage view and every report checked against it.
@Suite struct UsageReportTests {
    let a = testKey("a"), b = testKey("b"), c = testKey("c")
    static let flash = "/v1beta/models/gemini-2.5-flash"

    // MARK: - The traffic

    /// What one request must leave in the log. Tokens follow the fake's defaults: prompt 11,
    /// candidates 7 per answer (a running total in streams: 7 per event), thoughts 5.
    struct Expected {
        var client: String
        var model: String
        var status: Int
        var outcome: String
        var usage: String
        var streamed = false
        /// The verdicts of its upstream tries, in order.
        var verdicts: [String]
        var prompt = 0, candidates = 0, thoughts = 0

        var total: Int { prompt + candidates + thoughts }
        var successful: Bool { outcome == "success" }
    }

    static func event(_ index: Int) -> String {
        let candidates = 7 * (index + 1)
        return #"{"candidates":[{"content":{"parts":[{"text":"part \#(index)"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":11,"candidatesTokenCount":\#(candidates),"totalTokenCount":\#(16 + candidates),"thoughtsTokenCount":5},"modelVersion":"gemini-2.5-flash"}"#
    }

    /// Sends the twelve requests one after the other (each row written before the next starts,
    /// so rows are in this order) and returns what each must have logged.
    func sendKnownTraffic(_ gateway: GatewayHarness, _ fake: FakeGemini) async throws -> [Expected] {
        fake.setRules([
            .init(bodyContains: "BAD-REQUEST", reply: .fixture("400-malformed-request")),
            .init(bodyContains: "HANG-UP", reply: .sse(events: (0..<200).map(Self.event), interval: .milliseconds(30))),
            .init(model: "gemini-2.5-pro", times: 1, reply: .fixture("429-per-minute")),
            .init(model: "gemini-2.5-flash-lite", times: 1, reply: .fixture("503-overloaded")),
            .init(model: "gemini-2.0-flash", times: 1, reply: .status(502, body: "<html><body>502 Bad Gateway</body></html>", contentType: "text/html")),
        ])
        var expected: [Expected] = []
        func check(_ status: Int, _ answer: Answer, _ what: Expected) async throws {
            #expect(answer.status == status, "\(what.model) \(what.outcome): \(answer.text)")
            expected.append(what)
            _ = try await gateway.requestRows(count: expected.count)
        }
        let ok = Expected(client: "tests", model: "gemini-2.5-flash", status: 200, outcome: "success", usage: "complete",
                          verdicts: ["success"], prompt: 11, candidates: 7, thoughts: 5)

        // 1. A plain generateContent.
        try await check(200, gateway.send(gateway.request("\(Self.flash):generateContent")), ok)
        // 2. An SSE stream of 3 events: the last running total counts (candidates 21).
        var stream = ok
        stream.streamed = true
        stream.candidates = 21
        try await check(200, gateway.send(gateway.request("\(Self.flash):streamGenerateContent?alt=sse")), stream)
        // 3. A malformed request: the upstream's 400 goes back, no key is blamed.
        try await check(400, gateway.send(gateway.request("\(Self.flash):generateContent", body: #"{"contents":[{"parts":[{"text":"BAD-REQUEST"}]}]}"#)),
                        Expected(client: "tests", model: "gemini-2.5-flash", status: 400, outcome: "client_error", usage: "none", verdicts: ["client_error"]))
        // 4. A failover: the first key is throttled (per-minute quota), the second answers.
        var failover = ok
        failover.model = "gemini-2.5-pro"
        failover.verdicts = ["throttled", "success"]
        try await check(200, gateway.send(gateway.request("/v1beta/models/gemini-2.5-pro:generateContent")), failover)
        // 5. A stream the client hangs up on after the first event.
        let hangUp = gateway.request("\(Self.flash):streamGenerateContent?alt=sse", body: #"{"contents":[{"parts":[{"text":"HANG-UP"}]}]}"#)
        let reader = Task {
            let response = try await testClient.execute(hangUp, timeout: .seconds(120))
            var iterator = response.body.makeAsyncIterator()
            _ = try await iterator.next()
        }
        _ = try await reader.value
        expected.append(Expected(client: "tests", model: "gemini-2.5-flash", status: 499, outcome: "cancelled", usage: "truncated",
                                 streamed: true, verdicts: ["success"], prompt: 11, candidates: -1, thoughts: 5))
        _ = try await gateway.requestRows(count: expected.count)
        // 6. countTokens and 7. embedContent: logged, without token usage.
        try await check(200, gateway.send(gateway.request("\(Self.flash):countTokens")),
                        Expected(client: "tests", model: "gemini-2.5-flash", status: 200, outcome: "success", usage: "none", verdicts: ["success"]))
        try await check(200, gateway.send(gateway.request("/v1beta/models/gemini-embedding-001:embedContent", body: #"{"content":{"parts":[{"text":"hi"}]}}"#)),
                        Expected(client: "tests", model: "gemini-embedding-001", status: 200, outcome: "success", usage: "none", verdicts: ["success"]))
        // 8. Another client: the static --proxy-key.
        var other = ok
        other.client = "proxy-key"
        try await check(200, gateway.send(gateway.request("\(Self.flash):generateContent", token: .some("gw-static-token-for-restarts"))), other)
        // 9. A wrong token: 401, no try upstream.
        try await check(401, gateway.send(gateway.request("\(Self.flash):generateContent", token: .some("gw-wrong"))),
                        Expected(client: "-", model: "gemini-2.5-flash", status: 401, outcome: "unauthorized", usage: "none", verdicts: []))
        // 10. Google overloaded (503) once: retried on the other key.
        var transient = ok
        transient.model = "gemini-2.5-flash-lite"
        transient.verdicts = ["transient", "success"]
        try await check(200, gateway.send(gateway.request("/v1beta/models/gemini-2.5-flash-lite:generateContent")), transient)
        // 11. A relay answers with its own HTML 502 once: blamed on the upstream, retried.
        var dropped = ok
        dropped.model = "gemini-2.0-flash"
        dropped.verdicts = ["upstream_failure", "success"]
        try await check(200, gateway.send(gateway.request("/v1beta/models/gemini-2.0-flash:generateContent")), dropped)
        // 12. A second upstream where nothing listens: never used yet, so tried first; refused,
        // it cools, and the fake answers.
        _ = try gateway.database.addUpstream("http://127.0.0.1:\(try closedPort())")
        #expect(try await gateway.eventually { _ in gateway.gateway.pool.snapshot().upstreams == 2 })
        var refused = ok
        refused.verdicts = ["upstream_failure", "success"]
        try await check(200, gateway.send(gateway.request("\(Self.flash):generateContent")), refused)
        return expected
    }

    // MARK: - The test

    @Test func everyRowViewAndReportAddsUpToTheTraffic() async throws {
        try await withGateway(keys: [a, b], configure: { $0.policy.upstreamFailureBase = 120 }) { gateway, fakes in
            var expected = try await sendKnownTraffic(gateway, fakes[0])
            let rows = try await gateway.requestRows(count: expected.count)
            try #require(rows.count == expected.count)

            // The cancelled stream's usage is the running total of the last event the gateway
            // read before it noticed: some multiple of 7 candidates.
            let cancelled = rows[4]
            let partial: Int = cancelled["candidates_tokens"]
            #expect(partial >= 7 && partial % 7 == 0, "candidates \(partial)")
            #expect(cancelled["total_tokens"] as Int == 16 + partial)
            expected[4].candidates = partial

            try checkRequestRows(rows, expected, gateway)
            let today = try #require(Set(rows.map { String(($0["started_at"] as String).prefix(10)) }).first)
            guard Set(rows.map { String(($0["started_at"] as String).prefix(10)) }).count == 1 else {
                return  // the traffic straddled midnight UTC: the per-day checks below assume one day
            }
            let latencies = try gateway.database.read { db in
                try [1, 2].map { upstream in
                    try Double.fetchAll(db, sql: "SELECT latency_ms FROM attempts WHERE upstream_id = ? ORDER BY latency_ms", arguments: [upstream])
                }
            }
            let requestLatency = rows.map { $0["latency_ms"] as Double }.reduce(0, +)
            let ttfbs = rows.compactMap { $0["ttfb_ms"] as Double? }

            // The views.
            try checkUsageView(gateway.database, "usage_by_client_day", "client", today: today, expected: expected, rows: rows)
            try checkUsageView(gateway.database, "usage_by_model_day", "model", today: today, expected: expected, rows: rows)
            try checkKeyViewAndReport(gateway.database, today: today, expected: expected)
            try checkUpstreamViewAndReport(gateway.database, today: today, latencies: latencies)

            // The reports give the same numbers whichever way the range is read: whole days from
            // the daily tables, a cut day from the raw rows, or both.
            let now = Date()
            let midnight = Calendar.utc.startOfDay(for: now)
            let ranges = [
                ReportRange(since: midnight, until: midnight.addingTimeInterval(86_400)),
                ReportRange(since: now.addingTimeInterval(-3_600), until: now.addingTimeInterval(60)),
                ReportRange(since: now.addingTimeInterval(-7 * 86_400), until: now.addingTimeInterval(60)),
            ]
            for range in ranges {
                for dimension in UsageDimension.allCases {
                    let report = try gateway.database.usageReport(by: dimension, range: range)
                    let view = try gateway.database.read { db in
                        try ReportTableProbe.rows(db, "SELECT * FROM usage_by_\(dimension.rawValue)_day WHERE day = ? ORDER BY \(dimension.rawValue)", [today])
                    }
                    #expect(report.columns == view.columns, "\(dimension)")
                    #expect(report.rows == view.rows, "\(dimension) over \(range)")
                    #expect(report.widenedDays.isEmpty)
                    // One day: the range totals are the day's numbers without the day column.
                    let totals = try gateway.database.usageReport(by: dimension, range: range, perDay: false)
                    #expect(totals.rows == view.rows.map { Array($0.dropFirst()) })
                }
                let keys = try gateway.database.keyReport(range: range)
                #expect(keys.records.map { $0["requests"]?.integer ?? 0 }.reduce(0, +) == 11)
                try checkUpstreamReport(gateway.database.upstreamReport(range: range), latencies: latencies)
            }

            // Filters.
            let pro = try gateway.database.usageReport(by: .client, range: ranges[0], filter: .init(model: "gemini-2.5-pro"))
            #expect(pro.rows.count == 1)
            #expect(pro.value("client", row: 0) == .text("tests"))
            #expect(pro.value("requests", row: 0) == .integer(1))
            #expect(pro.value("upstream_attempts", row: 0) == .integer(2))
            let proxyKey = try gateway.database.usageReport(by: .model, range: ranges[1], filter: .init(client: "proxy-key"))
            #expect(proxyKey.records.map { $0["model"] } == [.text("gemini-2.5-flash")])
            #expect(proxyKey.value("total_tokens", row: 0) == .integer(23))
            let liteUpstream = try gateway.database.upstreamReport(range: ranges[2], model: "gemini-2.5-flash-lite")
            #expect(liteUpstream.value("attempts", row: 0) == .integer(2))
            #expect(liteUpstream.value("upstream_failures", row: 0) == .integer(1))
            #expect(liteUpstream.value("failure_rate", row: 0) == .real(0.5))

            // Averages over the raw rows.
            let clientsToday = try gateway.database.usageReport(by: .client, range: ranges[0], perDay: false)
            let latencySum = clientsToday.records.map { ($0["avg_latency_ms"]?.real ?? 0) * Double($0["requests"]?.integer ?? 0) }.reduce(0, +)
            #expect(abs(latencySum - requestLatency) <= 0.05 * Double(rows.count) + 1e-6, "averages rounded to 0.1 ms")
            #expect(ttfbs.count == rows.count, "every request has a time to first byte")

            try await checkHealth(gateway)
            for report in try [
                gateway.database.healthReport(), gateway.database.keyReport(range: ranges[2]),
                gateway.database.usageReport(by: .client, range: ranges[2]),
            ] {
                let text = report.rows.flatMap { $0 }.map(\.description).joined(separator: " ")
                for key in [a, b, c] { #expect(!text.contains(key), "a whole key in a report") }
            }
        }
    }

    // MARK: - Rows

    /// Each request row and its attempt rows carry what the issue lists.
    func checkRequestRows(_ rows: [Row], _ expected: [Expected], _ gateway: GatewayHarness) throws {
        for (row, want) in zip(rows, expected) {
            let what = "\(want.model) \(want.outcome)"
            #expect(row["client_name"] as String? ?? "-" == want.client, "\(what)")
            #expect(row["model"] as String? == want.model, "\(what)")
            #expect(row["status"] as Int == want.status, "\(what)")
            #expect(row["outcome"] as String == want.outcome, "\(what)")
            #expect(row["usage_status"] as String == want.usage, "\(what)")
            #expect(row["is_stream"] as Bool == want.streamed, "\(what)")
            #expect(row["prompt_tokens"] as Int == want.prompt, "\(what)")
            #expect(row["cached_tokens"] as Int == 0, "\(what)")
            #expect(row["candidates_tokens"] as Int == want.candidates, "\(what)")
            #expect(row["thoughts_tokens"] as Int == want.thoughts, "\(what)")
            #expect(row["tool_use_tokens"] as Int == 0, "\(what)")
            #expect(row["total_tokens"] as Int == want.total, "\(what)")
            #expect(row["attempt_count"] as Int == want.verdicts.count, "\(what)")
            let latency: Double = row["latency_ms"]
            let ttfb = try #require(row["ttfb_ms"] as Double?, "\(what): no time to first byte")
            #expect(latency > 0 && ttfb > 0 && ttfb <= latency + 0.001, "\(what): ttfb \(ttfb), latency \(latency)")

            let attempts = try gateway.attemptRows(requestID: row["request_id"])
            #expect(attempts.map { $0["verdict"] as String } == want.verdicts, "\(what)")
            for attempt in attempts {
                #expect(attempt["key_id"] as Int64? != nil && attempt["upstream_id"] as Int64? != nil, "\(what)")
                #expect((attempt["latency_ms"] as Double?).map { $0 > 0 } == true, "\(what): attempt latency")
            }
            if let last = attempts.last {
                #expect(row["key_id"] as Int64? == last["key_id"] as Int64?, "\(what): the request names its final key")
                #expect(row["upstream_id"] as Int64? == last["upstream_id"] as Int64?, "\(what)")
            }
            if want.verdicts.first == "throttled" {
                #expect(attempts[0]["key_id"] as Int64? != attempts[1]["key_id"] as Int64?, "\(what): retried on the other key")
            }
            switch want.verdicts.first {
            case "throttled":
                #expect(attempts[0]["status"] as Int? == 429)
                #expect(attempts[0]["google_status"] as String? == "RESOURCE_EXHAUSTED")
                #expect(attempts[0]["reason"] as String? == "RATE_LIMIT_PER_MINUTE")
                #expect(attempts[0]["quota_id"] as String? == "GenerateContentInputTokensPerModelPerMinute-FreeTier")
            case "transient":
                #expect(attempts[0]["status"] as Int? == 503)
                #expect(attempts[0]["google_status"] as String? == "UNAVAILABLE")
                #expect(attempts[0]["reason"] as String? == "UNAVAILABLE")
            case "upstream_failure" where want.model == "gemini-2.0-flash":
                #expect(attempts[0]["status"] as Int? == 502)
                #expect(attempts[0]["google_status"] as String? == nil)
                #expect(attempts[0]["reason"] as String? == "NOT_GOOGLE_ENVELOPE")
            case "upstream_failure":
                #expect(attempts[0]["status"] as Int? == nil, "no answer from a closed port")
                #expect(attempts[0]["reason"] as String? != nil)
                #expect(attempts[0]["upstream_id"] as Int64? != attempts[1]["upstream_id"] as Int64?)
            case "client_error":
                #expect(attempts[0]["status"] as Int? == 400)
                #expect(attempts[0]["google_status"] as String? == "INVALID_ARGUMENT")
            default:
                break
            }
            if want.verdicts.last == "success" {
                #expect(attempts.last?["status"] as Int? == 200, "\(what)")
            }
        }
    }

    // MARK: - Usage views

    /// The expected `usage_by_*_day` row of one group of requests, in the view's column order.
    func usageRow(_ group: [(Expected, Row)]) -> [String: ReportValue] {
        func count(_ predicate: (Expected) -> Bool) -> ReportValue { .integer(Int64(group.filter { predicate($0.0) }.count)) }
        func sum(_ value: (Expected) -> Int) -> ReportValue { .integer(Int64(group.map { value($0.0) }.reduce(0, +))) }
        let requests = group.count
        let errors = group.filter { !$0.0.successful }.count
        let latency = group.map { $0.1["latency_ms"] as Double }.reduce(0, +)
        let ttfb = group.map { $0.1["ttfb_ms"] as Double }.reduce(0, +)
        return [
            "requests": .integer(Int64(requests)), "successful": count(\.successful), "errors": .integer(Int64(errors)),
            "error_rate": .real((Double(errors) / Double(requests) * 10_000).rounded() / 10_000),
            "client_errors": count { ["client_error", "unauthorized", "too_large"].contains($0.outcome) },
            "throttled": count { $0.outcome == "throttled" }, "no_capacity": count { $0.outcome == "no_capacity" },
            "upstream_errors": count { ["upstream_error", "key_error", "gateway_error"].contains($0.outcome) },
            "cancelled": count { $0.outcome == "cancelled" }, "truncated": count { $0.outcome == "truncated" },
            "streamed": count(\.streamed), "upstream_attempts": sum { $0.verdicts.count },
            "usage_missing": count { $0.usage == "missing" }, "usage_truncated": count { $0.usage == "truncated" },
            "prompt_tokens": sum(\.prompt), "cached_tokens": .integer(0), "candidates_tokens": sum(\.candidates),
            "thoughts_tokens": sum(\.thoughts), "tool_use_tokens": .integer(0), "total_tokens": sum(\.total),
            "request_bytes": .integer(group.map { $0.1["request_bytes"] as Int64 }.reduce(0, +)),
            "response_bytes": .integer(group.map { $0.1["response_bytes"] as Int64 }.reduce(0, +)),
            "avg_latency_ms": .real((latency / Double(requests) * 10).rounded() / 10),
            "avg_ttfb_ms": .real((ttfb / Double(requests) * 10).rounded() / 10),
            // Migration 0007: no client of this traffic has limits; the cost is the rows' own.
            "client_limited": count { $0.outcome == "client_limit" },
            "unpriced_requests": .integer(Int64(group.filter { ($0.1["price_status"] as String) == "unpriced" }.count)),
            "cost_usd": .real(Double(group.map { $0.1["cost_micros"] as Int64 }.reduce(0, +)) / 1_000_000),
            "list_cost_usd": .real(Double(group.map { $0.1["list_cost_micros"] as Int64 }.reduce(0, +)) / 1_000_000),
        ]
    }

    func checkUsageView(_ database: AppDatabase, _ view: String, _ dimension: String, today: String, expected: [Expected], rows: [Row]) throws {
        let table = try database.read { db in
            try ReportTableProbe.rows(db, "SELECT * FROM \(view) WHERE day = ? ORDER BY \(dimension)", [today])
        }
        let groups = Dictionary(grouping: zip(expected, rows).map { ($0, $1) }) { dimension == "client" ? $0.0.client : $0.0.model }
        #expect(table.rows.count == groups.count, "\(view): \(table.records.map { $0[dimension] ?? .null })")
        // Literal spot checks of the known traffic, then every column of every row.
        if dimension == "client" {
            let tests = try #require(table.records.first { $0["client"] == .text("tests") })
            #expect(tests["requests"] == .integer(10))
            #expect(tests["successful"] == .integer(8))
            #expect(tests["errors"] == .integer(2))
            #expect(tests["upstream_attempts"] == .integer(14))
            #expect(tests["prompt_tokens"] == .integer(77))
            #expect(tests["total_tokens"] == .integer(Int64(152 + 16 + expected[4].candidates)))
            #expect(table.records.first { $0["client"] == .text("-") }?["client_errors"] == .integer(1))
        } else {
            let flash = try #require(table.records.first { $0["model"] == .text("gemini-2.5-flash") })
            #expect(flash["requests"] == .integer(8))
            #expect(flash["client_errors"] == .integer(2))
            #expect(flash["cancelled"] == .integer(1))
            #expect(flash["streamed"] == .integer(2))
            #expect(table.records.first { $0["model"] == .text("gemini-embedding-001") }?["total_tokens"] == .integer(0))
        }
        for record in table.records {
            guard case .text(let name) = record[dimension], let group = groups[name] else {
                Issue.record("\(view): unexpected \(String(describing: record[dimension]))")
                continue
            }
            let want = usageRow(group)
            for (column, value) in want {
                if case .real(let wanted) = value, let got = record[column]?.real {
                    // Averages are rounded to 0.1 ms; dollars are exact micro-dollar sums.
                    let tolerance = column.hasSuffix("_usd") ? 1e-9 : 0.051
                    #expect(abs(got - wanted) < tolerance, "\(view) \(name) \(column): \(got) != \(wanted)")
                } else {
                    #expect(record[column] == value, "\(view) \(name) \(column)")
                }
            }
            #expect(record.count == want.count + 2, "\(view) has columns the test does not check")
        }
    }

    // MARK: - Keys and upstreams

    func checkKeyViewAndReport(_ database: AppDatabase, today: String, expected: [Expected]) throws {
        // The truth from the raw rows, per key.
        let truth = try database.read { db in
            try ReportTableProbe.rows(db, """
                SELECT k.id AS key_id, k.fingerprint, k.tail, k.project, k.state,
                       (SELECT COUNT(*) FROM requests r WHERE r.key_id = k.id) AS requests,
                       (SELECT COUNT(*) FROM requests r WHERE r.key_id = k.id AND r.outcome = 'success') AS successful,
                       (SELECT COUNT(*) FROM requests r WHERE r.key_id = k.id AND r.outcome <> 'success') AS errors,
                       (SELECT COUNT(*) FROM attempts a WHERE a.key_id = k.id) AS attempts,
                       (SELECT COUNT(*) FROM attempts a WHERE a.key_id = k.id AND a.verdict = 'success') AS successful_attempts,
                       (SELECT COUNT(*) FROM attempts a WHERE a.key_id = k.id AND a.verdict = 'throttled') AS throttled_attempts,
                       0 AS key_failures,
                       (SELECT COUNT(*) FROM attempts a WHERE a.key_id = k.id AND a.verdict IN ('transient', 'upstream_failure')) AS upstream_failures,
                       (SELECT COALESCE(SUM(total_tokens), 0) FROM requests r WHERE r.key_id = k.id) AS total_tokens
                FROM keys k ORDER BY k.id
                """, [])
        }
        let view = try database.read { db in
            try ReportTableProbe.rows(db, """
                SELECT key_id, fingerprint, tail, project, state, requests, successful, errors, attempts, successful_attempts,
                       throttled_attempts, key_failures, upstream_failures, total_tokens
                FROM usage_by_key_day WHERE day = ? ORDER BY key_id
                """, [today])
        }
        #expect(view.rows == truth.rows.filter { ($0[8].integer ?? 0) > 0 })
        // Across keys: the known traffic.
        func total(_ column: String) -> Int64 { view.records.map { $0[column]?.integer ?? 0 }.reduce(0, +) }
        #expect(total("requests") == 11)
        #expect(total("errors") == 2)
        #expect(total("attempts") == 15)
        #expect(total("successful_attempts") == 10)
        #expect(total("throttled_attempts") == 1)
        #expect(total("upstream_failures") == 3)
        #expect(total("total_tokens") == Int64(175 + 16 + expected[4].candidates))

        // The report over today lists the same keys, busiest first.
        let midnight = Calendar.utc.startOfDay(for: Date())
        let report = try database.keyReport(range: ReportRange(since: midnight, until: midnight.addingTimeInterval(86_400)))
        #expect(report.columns == view.columns)
        let sorted = view.rows.sorted { ($0[5].integer!, $0[8].integer!, -$0[0].integer!) > ($1[5].integer!, $1[8].integer!, -$1[0].integer!) }
        #expect(report.rows == sorted)
    }

    func checkUpstreamViewAndReport(_ database: AppDatabase, today: String, latencies: [[Double]]) throws {
        let view = try database.read { db in
            try ReportTableProbe.rows(db, "SELECT * FROM usage_by_upstream_day WHERE day = ? ORDER BY upstream_id", [today])
        }
        #expect(view.columns.first == "day")
        let report = ReportTable(columns: Array(view.columns.dropFirst()), rows: view.rows.map { Array($0.dropFirst()) })
        try checkUpstreamReport(report, latencies: latencies)
    }

    /// The fake (upstream 1) and the closed port (upstream 2): literal counts, latency from the
    /// raw rows.
    func checkUpstreamReport(_ report: ReportTable, latencies: [[Double]]) throws {
        try #require(report.rows.count == 2)
        let fake = report.records[0], refused = report.records[1]
        #expect(fake["upstream_id"] == .integer(1) && refused["upstream_id"] == .integer(2))
        #expect(fake["requests"] == .integer(11))
        #expect(fake["successful"] == .integer(9))
        #expect(fake["errors"] == .integer(2))
        #expect(fake["attempts"] == .integer(14))
        #expect(fake["successful_attempts"] == .integer(10))
        #expect(fake["throttled_attempts"] == .integer(1))
        #expect(fake["key_failures"] == .integer(0))
        #expect(fake["upstream_failures"] == .integer(2))
        #expect(abs((fake["failure_rate"]?.real ?? 0) - 0.1429) < 1e-9)
        #expect(refused["requests"] == .integer(0))
        #expect(refused["attempts"] == .integer(1))
        #expect(refused["successful_attempts"] == .integer(0))
        #expect(refused["upstream_failures"] == .integer(1))
        #expect(refused["failure_rate"]?.real == 1)
        try #require(latencies.map(\.count) == [14, 1])
        for (row, latencies) in zip([fake, refused], latencies) {
            let average = latencies.reduce(0, +) / Double(latencies.count)
            #expect(abs((row["avg_latency_ms"]?.real ?? -1) - average) < 0.051)
            #expect(abs((row["max_latency_ms"]?.real ?? -1) - latencies.last!) < 0.051)
            // Nearest rank (the ceil(p * n)-th fastest), read from the histogram: the upper bound
            // of the bucket holding it.
            let p50 = latencies[Int((0.50 * Double(latencies.count)).rounded(.up)) - 1]
            let p95 = latencies[Int((0.95 * Double(latencies.count)).rounded(.up)) - 1]
            #expect(row["p50_latency_ms_approx"]?.real == Self.bucket(p50), "p50 of \(latencies)")
            #expect(row["p95_latency_ms_approx"]?.real == Self.bucket(p95), "p95 of \(latencies)")
        }
    }

    /// The upper bound of the latency histogram bucket holding `milliseconds` (migration 0002).
    static func bucket(_ milliseconds: Double) -> Double {
        let mantissas: [Double] = [1.0, 1.25, 1.6, 2.0, 2.5, 3.15, 4.0, 5.0, 6.3, 8.0]
        let decades: [Double] = [0.1, 1, 10, 100, 1_000, 10_000, 100_000]
        var bounds: [Double] = []
        for decade in decades {
            for mantissa in mantissas { bounds.append((decade * mantissa * 1000).rounded() / 1000) }
        }
        bounds += [1_000_000, 1e15]
        return bounds.first(where: { $0 >= milliseconds }) ?? .infinity
    }

    // MARK: - Health

    func checkHealth(_ gateway: GatewayHarness) async throws {
        // A third key, deleted by the operator; the throttled key's cooldown and the upstream's
        // are written behind.
        _ = try gateway.database.importKeys(ListFile.parseKeys(Array(c.utf8)))
        try gateway.database.setKeyState(c, to: .deleted, reason: "leaked on a forum")
        #expect(try await gateway.eventually { db in
            try db.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM health WHERE condition = 'cooling'") == 2
            }
        })
        let health = try gateway.database.healthReport()
        let rows = health.records
        // Upstreams first, then keys; within each what is not usable first.
        #expect(rows.map { $0["kind"] } == [.text("upstream"), .text("upstream"), .text("key"), .text("key"), .text("key")])
        #expect(rows.map { $0["condition"] } == [.text("cooling"), .text("usable"), .text("cooling"), .text("deleted"), .text("usable")])
        #expect(rows[0]["id"] == .integer(2))
        #expect(rows[0]["why"]?.description.isEmpty == false)
        #expect(rows[0]["cooling_until"] != .null && rows[0]["since"] != .null)
        #expect(rows[1]["why"] == .null)
        // The throttled key cools for one model, the deleted one says why, the other is usable.
        let why = rows[2]["why"]?.description ?? ""
        #expect(why.hasPrefix("gemini-2.5-pro until ") && why.hasSuffix("(RATE_LIMIT_PER_MINUTE)"), "\(why)")
        #expect(rows[2]["cooling_until"] != .null)
        #expect(rows[3]["why"] == .text("leaked on a forum"))
        #expect(rows[3]["tail"] == .text(String(c.suffix(4))))
        #expect(rows[3]["since"] != .null)
        #expect(rows[4]["why"] == .null)
        // The same things, less the usable ones (compared by what they are: times such as
        // last_used_at are written behind and may have moved since the first report).
        let problems = try gateway.database.healthReport(problemsOnly: true)
        let identity = { (row: [String: ReportValue]) in [row["kind"], row["id"], row["condition"]] }
        #expect(problems.records.map(identity) == [rows[0], rows[2], rows[3]].map(identity))
        let cooldowns = try gateway.database.read { db in
            try ReportTableProbe.rows(db, "SELECT model, reason, quota_id, applies_via FROM key_cooldowns_in_force", [])
        }
        #expect(cooldowns.rows == [[.text("gemini-2.5-pro"), .text("RATE_LIMIT_PER_MINUTE"),
                                    .text("GenerateContentInputTokensPerModelPerMinute-FreeTier"), .text("key")]])
    }
}

// MARK: - Helpers

/// Reads any query into a `ReportTable`, to compare views with reports cell by cell.
enum ReportTableProbe {
    static func rows(_ db: Database, _ sql: String, _ arguments: [any DatabaseValueConvertible]) throws -> ReportTable {
        let statement = try db.makeStatement(sql: sql)
        let rows = try Row.fetchAll(statement, arguments: StatementArguments(arguments)).map { row in
            row.databaseValues.map { (value: DatabaseValue) -> ReportValue in
                switch value.storage {
                case .int64(let number): .integer(number)
                case .double(let number): .real(number)
                case .string(let text): .text(text)
                case .blob(let data): .text(String(decoding: data, as: UTF8.self))
                case .null: .null
                }
            } as [ReportValue]
        }
        return ReportTable(columns: statement.columnNames, rows: rows)
    }
}

extension Calendar {
    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()
}
