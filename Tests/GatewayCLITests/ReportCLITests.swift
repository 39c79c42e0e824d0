import AsyncHTTPClient
import FakeGemini
import Foundation
import GRDB
import NIOCore
import Testing

/// `gemini-gateway report` as an operator runs it: real traffic through `serve` (a real process
/// in front of the fake upstream), then every report in every format checked against it.
@Suite struct ReportCLITests {
    // MARK: - Traffic

    /// Runs `serve` with two clients and two keys in front of a fake, sends the known traffic,
    /// stops it (SIGTERM flushes the log) and returns the workspace.
    static func workspaceWithTraffic() async throws -> Workspace {
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        fake.setRules([
            .init(bodyContains: "BAD-REQUEST", reply: .fixture("400-malformed-request")),
            .init(model: "gemini-2.5-pro", times: 1, reply: .perMinuteThrottle(retryDelay: 3_600)),  // still cooling at the end
        ])
        ws.write("api_keys.txt", "\(secrets[0])\n\(secrets[1])\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        #expect(try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt").status == 0)
        func token(_ name: String) async throws -> String {
            let result = try await ws.run("clients", "add", name, "--json")
            let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            return try #require(object?["token"] as? String)
        }
        let alice = try await token("alice"), bob = try await token("bob")
        let port = try freePort()
        let serve = try await ServeProcess(["serve", "--host", "127.0.0.1", "--port", "\(port)", "--log-retention-days", "30"], in: ws.path)
        defer { serve.kill() }
        #expect(await serve.waitForStderr(timeout: 120) { $0.contains("Server started") } != nil)

        func send(_ token: String, _ path: String, text: String = "hi") async throws -> Int {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            request.method = .POST
            request.headers.add(name: "x-goog-api-key", value: token)
            request.body = .bytes(ByteBuffer(string: #"{"contents":[{"parts":[{"text":"\#(text)"}]}]}"#))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        let flash = "/v1beta/models/gemini-2.5-flash"
        #expect(try await send(alice, "\(flash):generateContent") == 200)
        #expect(try await send(alice, "\(flash):generateContent") == 200)
        #expect(try await send(alice, "\(flash):streamGenerateContent?alt=sse") == 200)
        #expect(try await send(alice, "/v1beta/models/gemini-2.5-pro:generateContent") == 200)  // after a 429 on the first key
        #expect(try await send(alice, "\(flash):countTokens") == 200)
        #expect(try await send(bob, "\(flash):generateContent") == 200)
        #expect(try await send(bob, "\(flash):generateContent", text: "BAD-REQUEST") == 400)
        serve.terminate()
        #expect(await serve.waitForExit(timeout: 120) == 0)
        await fake.stop()
        if let path = ProcessInfo.processInfo.environment["GATEWAY_REPORT_SAMPLE_DB"] {
            // For the sample output in docs/reports.md: the database this traffic left behind.
            try? FileManager.default.removeItem(atPath: path)
            try FileManager.default.copyItem(atPath: ws.path + "/gateway.db", toPath: path)
        }
        return ws
    }

    // MARK: - Reading the three formats

    /// A report in every format, as rows of column -> text (numbers normalized: `5.0` is `5`),
    /// checked to agree cell by cell: CSV and the table against JSON, whose types decide how a
    /// cell compares (a tail `0001` stays text).
    static func run(_ ws: Workspace, _ arguments: [String]) async throws -> [[String: String]] {
        let json = try await CLI.run(["report"] + arguments + ["--format", "json"], in: ws.path)
        let csv = try await CLI.run(["report"] + arguments + ["--format", "csv"], in: ws.path)
        let table = try await CLI.run(["report"] + arguments, in: ws.path)
        for result in [json, csv, table] {
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(result.stderr.isEmpty, "\(arguments): \(result.stderr)")
            for secret in secrets { #expect(!result.stdout.contains(secret)) }
        }
        // JSON: an array of objects, one a line.
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let rows: [[String: Cell]] = objects.map { $0.mapValues(Cell.init) }

        // CSV: a header with every column, then rows (no field here needs quoting).
        let lines = csv.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        let header = try #require(lines.first).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        #expect(Set(header) == Set(rows.first.map { Array($0.keys) } ?? header))
        #expect(lines.count - 1 == rows.count)
        for (line, row) in zip(lines.dropFirst(), rows) {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            for (name, cell) in zip(header, cells) {
                #expect(row[name]?.matches(cell, null: "") == true, "\(arguments) csv \(name): \(cell) vs \(String(describing: row[name]))")
            }
        }

        // The table: a caption (not for health), a header, aligned rows; its columns are a subset.
        var tableLines = table.stdout.split(separator: "\n").map(String.init)
        if arguments.first != "health" { tableLines.removeFirst() }
        let names = try #require(tableLines.first).components(separatedBy: "  ").filter { !$0.isEmpty }
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased().replacingOccurrences(of: " ", with: "_") }
        #expect(tableLines.count - 1 == rows.count)
        for (line, row) in zip(tableLines.dropFirst(), rows) {
            let cells = line.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            #expect(cells.count == names.count, "\(line)")
            for (name, cell) in zip(names, cells) {
                #expect(row[name]?.matches(cell, null: "-") == true, "\(arguments) table \(name): \(cell) vs \(String(describing: row[name]))")
            }
        }
        return rows.map { $0.mapValues(\.text) }
    }

    /// A JSON value of a report.
    enum Cell: Equatable {
        case number(Double)
        case text(String)
        case null

        init(_ value: Any) {
            if value is NSNull {
                self = .null
            } else if let text = value as? String {
                self = .text(text)
            } else if let number = value as? NSNumber {
                self = .number(number.doubleValue)
            } else {
                self = .text("\(value)")
            }
        }

        /// Whether the text of another format shows this value.
        func matches(_ cell: String, null: String) -> Bool {
            switch self {
            case .number(let number): Double(cell) == number
            case .text(let text): cell == text
            case .null: cell == null
            }
        }

        var text: String {
            switch self {
            case .number(let number): ReportCLITests.number(number)
            case .text(let text): text
            case .null: ""
            }
        }
    }

    /// Numbers compared as numbers: `5`, `5.0` and `5` agree; `0.5` stays `0.5`.
    static func number(_ value: Double) -> String {
        value == value.rounded() ? String(Int64(value)) : String(value)
    }

    // MARK: - The test

    @Test func everyReportInEveryFormatAddsUpToTheTraffic() async throws {
        let ws = try await Self.workspaceWithTraffic()
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        func raw(_ sql: String) throws -> String {
            try queue.read { db in try DatabaseValue.fetchOne(db, sql: sql).map { value in
                if let number = Double.fromDatabaseValue(value) { return Self.number(number) }
                return String.fromDatabaseValue(value) ?? ""
            } ?? "" }
        }

        // Per client per day (the default range: the last 7 days).
        let clients = try await Self.run(ws, ["clients"])
        try #require(clients.count == 2)
        let today = String(try raw("SELECT MIN(started_at) FROM requests").prefix(10))
        let alice = clients[0], bob = clients[1]
        let aliceWants: [String: String] = [
            "day": today, "client": "alice", "requests": "5", "successful": "5", "errors": "0", "error_rate": "0",
            "client_errors": "0", "throttled": "0", "no_capacity": "0", "upstream_errors": "0", "cancelled": "0",
            "truncated": "0", "streamed": "1", "upstream_attempts": "6", "usage_missing": "0", "usage_truncated": "0",
            "prompt_tokens": "44", "cached_tokens": "0", "candidates_tokens": "42", "thoughts_tokens": "20",
            "tool_use_tokens": "0", "total_tokens": "106",
            "request_bytes": try raw("SELECT SUM(request_bytes) FROM requests WHERE client_name = 'alice'"),
            "response_bytes": try raw("SELECT SUM(response_bytes) FROM requests WHERE client_name = 'alice'"),
            "avg_latency_ms": try raw("SELECT round(AVG(latency_ms), 1) FROM requests WHERE client_name = 'alice'"),
            "avg_ttfb_ms": try raw("SELECT round(AVG(ttfb_ms), 1) FROM requests WHERE client_name = 'alice'"),
            "client_limited": "0", "unpriced_requests": "0",
            "cost_usd": try raw("SELECT SUM(cost_micros) / 1e6 FROM requests WHERE client_name = 'alice'"),
            "list_cost_usd": try raw("SELECT SUM(list_cost_micros) / 1e6 FROM requests WHERE client_name = 'alice'"),
        ]
        #expect(alice == aliceWants)
        let bobWants: [String: String] = [
            "day": today, "client": "bob", "requests": "2", "successful": "1", "errors": "1", "error_rate": "0.5",
            "client_errors": "1", "throttled": "0", "no_capacity": "0", "upstream_errors": "0", "cancelled": "0",
            "truncated": "0", "streamed": "0", "upstream_attempts": "2", "usage_missing": "0", "usage_truncated": "0",
            "prompt_tokens": "11", "cached_tokens": "0", "candidates_tokens": "7", "thoughts_tokens": "5",
            "tool_use_tokens": "0", "total_tokens": "23",
            "request_bytes": try raw("SELECT SUM(request_bytes) FROM requests WHERE client_name = 'bob'"),
            "response_bytes": try raw("SELECT SUM(response_bytes) FROM requests WHERE client_name = 'bob'"),
            "avg_latency_ms": try raw("SELECT round(AVG(latency_ms), 1) FROM requests WHERE client_name = 'bob'"),
            "avg_ttfb_ms": try raw("SELECT round(AVG(ttfb_ms), 1) FROM requests WHERE client_name = 'bob'"),
            "client_limited": "0", "unpriced_requests": "0",
            "cost_usd": try raw("SELECT SUM(cost_micros) / 1e6 FROM requests WHERE client_name = 'bob'"),
            "list_cost_usd": try raw("SELECT SUM(list_cost_micros) / 1e6 FROM requests WHERE client_name = 'bob'"),
        ]
        #expect(bob == bobWants)
        #expect(alice["request_bytes"] == "200", "5 bodies of 40 bytes")
        #expect(alice["cost_usd"] != "0", "alice's requests are priced (etc/prices.csv is loaded at start)")

        // --totals over a range given as dates, --client, --model.
        let totals = try await Self.run(ws, ["clients", "--totals", "--since", today, "--until", today])
        #expect(totals.map { $0["client"] } == ["alice", "bob"])
        #expect(totals[0].filter { $0.key != "day" } == aliceWants.filter { $0.key != "day" })
        let onlyBob = try await Self.run(ws, ["clients", "--client", "bob", "--since", "1h"])
        #expect(onlyBob == [bobWants])

        // Per model.
        let models = try await Self.run(ws, ["models", "--totals"])
        #expect(models.map { $0["model"] } == ["gemini-2.5-flash", "gemini-2.5-pro"])
        #expect(models[0]["requests"] == "6" && models[0]["successful"] == "5" && models[0]["client_errors"] == "1")
        #expect(models[0]["upstream_attempts"] == "6" && models[0]["streamed"] == "1")
        #expect(models[0]["prompt_tokens"] == "44" && models[0]["candidates_tokens"] == "42" && models[0]["total_tokens"] == "106")
        #expect(models[1]["requests"] == "1" && models[1]["upstream_attempts"] == "2" && models[1]["total_tokens"] == "23")
        let proForAlice = try await Self.run(ws, ["models", "--client", "alice", "--model", "gemini-2.5-pro"])
        #expect(proForAlice.count == 1 && proForAlice[0]["day"] == today && proForAlice[0]["requests"] == "1")

        // Per key: the busiest first; together the 7 requests and 8 tries.
        let keys = try await Self.run(ws, ["keys"])
        try #require(keys.count == 2)
        func sum(_ rows: [[String: String]], _ column: String) -> Int { rows.compactMap { Int($0[column] ?? "") }.reduce(0, +) }
        #expect(sum(keys, "requests") == 7 && sum(keys, "errors") == 1 && sum(keys, "attempts") == 8)
        #expect(sum(keys, "throttled_attempts") == 1 && sum(keys, "key_failures") == 0 && sum(keys, "total_tokens") == 129)
        #expect(Int(keys[0]["requests"]!)! >= Int(keys[1]["requests"]!)!)
        for key in keys {
            let id = key["key_id"]!
            #expect(key["requests"] == (try raw("SELECT COUNT(*) FROM requests WHERE key_id = \(id)")))
            #expect(key["attempts"] == (try raw("SELECT COUNT(*) FROM attempts WHERE key_id = \(id)")))
            #expect(key["throttled_attempts"] == (try raw("SELECT COUNT(*) FROM attempts WHERE key_id = \(id) AND verdict = 'throttled'")))
            #expect(key["fingerprint"]?.count == 12 && key["tail"]?.count == 4 && key["state"] == "active")
        }

        // Per upstream.
        let upstreams = try await Self.run(ws, ["upstreams", "--since", "24h"])
        try #require(upstreams.count == 1)
        let upstream = upstreams[0]
        #expect(upstream["requests"] == "7" && upstream["successful"] == "6" && upstream["errors"] == "1")
        #expect(upstream["attempts"] == "8" && upstream["successful_attempts"] == "6" && upstream["throttled_attempts"] == "1")
        #expect(upstream["key_failures"] == "0" && upstream["upstream_failures"] == "0" && upstream["failure_rate"] == "0")
        #expect(upstream["avg_latency_ms"] == (try raw("SELECT round(AVG(latency_ms), 1) FROM attempts")))
        #expect(upstream["max_latency_ms"] == (try raw("SELECT round(MAX(latency_ms), 1) FROM attempts")))
        #expect(upstream["p50_latency_ms_approx"] != "" && upstream["p95_latency_ms_approx"] != "")

        // Health now: the throttled key cools for gemini-2.5-pro; the rest is usable.
        let health = try await Self.run(ws, ["health"])
        #expect(health.map { $0["kind"] } == ["upstream", "key", "key"])
        #expect(health.map { $0["condition"] } == ["usable", "cooling", "usable"])
        #expect(health[1]["why"]?.hasPrefix("gemini-2.5-pro until ") == true)
        #expect(health[1]["why"]?.hasSuffix("(RATE_LIMIT_PER_MINUTE)") == true)
        #expect(try await Self.run(ws, ["health", "--problems"]) == [health[1]])
    }

    // MARK: - Argument errors and empty databases

    @Test func badArgumentsAreUsageErrors() async throws {
        let ws = Workspace()
        let cases: [([String], String)] = [
            (["report", "clients", "--since", "3x"], "--since '3x' is neither a date"),
            (["report", "models", "--until", "2026-02-30"], "--until '2026-02-30' is neither a date"),
            (["report", "keys", "--since", "2026-11-02", "--until", "2026-11-01 12:00"], "must be before --until"),
            (["report", "upstreams", "--since=-2h"], "--since '-2h'"),
            (["report", "clients", "--format", "xml"], "xml"),
            (["report", "keys", "--client", "alice"], "--client"),
            (["report", "keys", "--model", "gemini-2.5-pro"], "--model"),
            (["report", "health", "--since", "1d"], "--since"),
            (["report", "frobnicate"], "frobnicate"),
            (["serve", "--log-retention-days", "-1"], "--log-retention-days"),
        ]
        for (arguments, message) in cases {
            let result = try await CLI.run(arguments, in: ws.path)
            #expect(result.status == 64, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
        let fromEnv = try await ws.run("serve", environment: ["GEMINI_GATEWAY_LOG_RETENTION_DAYS": "forever"])
        #expect(fromEnv.status == 64)
        #expect(fromEnv.stderr.contains("GEMINI_GATEWAY_LOG_RETENTION_DAYS"))
        #expect(!FileManager.default.fileExists(atPath: ws.path + "/gateway.db"), "nothing ran")
    }

    @Test func anEmptyDatabaseReportsNothingCleanly() async throws {
        let ws = Workspace()
        let missing = try await ws.run("report", "clients", "--db", "nope.db")
        #expect(missing.status == 66)
        #expect(missing.stderr == "error: no database at 'nope.db' (give --db PATH or set GEMINI_GATEWAY_DB; 'import' or 'serve' creates one)\n")
        #expect(!FileManager.default.fileExists(atPath: ws.path + "/nope.db"))
        ws.createDatabase()
        #expect(try await ws.run("status").status == 0)
        let table = try await ws.run("report", "clients")
        #expect(table.status == 0)
        #expect(table.stdout.hasSuffix("no requests in this range\n"))
        #expect(try await ws.run("report", "keys", "--format", "json").stdout == "[]\n")
        #expect(try await ws.run("report", "upstreams", "--format", "csv").stdout.hasPrefix("upstream_id,base_url,state,requests"))
        #expect(try await ws.run("report", "health", "--json").stdout == "[]\n")
        #expect(try await ws.run("report", "health").stdout == "no keys or upstreams\n")
    }
}
