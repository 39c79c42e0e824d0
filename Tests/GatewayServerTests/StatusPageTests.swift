import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
@testable import GatewayServer
@testable import GatewayStore
import GRDB
import TestSupport
import Testing

/// Issue 6: the status page. Who may open it (plain HTTP), what it shows after known traffic
/// (figures, a cooling key, a disabled upstream, escaped hostile strings, no whole secret), and
/// that it renders in a real headless Chromium (Debian's `chromium`, installed by scripts/test).
@Suite struct StatusPageTests {
    let a = testKey("a"), b = testKey("b"), c = testKey("c"), d = testKey("d")
    static let adminToken = "gw-admin-" + UUID().uuidString
    static let pro = "gemini-2.5-pro"
    static let flash = "gemini-2.5-flash"
    /// A model name a client made up, percent-encoded in the path; the gateway logs it decoded.
    static let hostileModel = "<script>alert(1)"
    static let hostilePath = "/v1beta/models/%3Cscript%3Ealert(1):generateContent"

    /// `GATEWAY_CHROMIUM` (scripts/test sets it), else `chromium` on PATH.
    static let chromium: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["GATEWAY_CHROMIUM"], !path.isEmpty { return path }
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let path = "\(directory)/chromium"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static func withAdminToken(_ configuration: inout GatewayConfiguration) {
        configuration.adminToken = adminToken
    }

    func get(_ gateway: GatewayHarness, _ path: String = "/status", authorization: String? = nil) async throws -> Answer {
        var request = gateway.request(path, method: .GET, token: .some(nil), body: nil)
        if let authorization { request.headers.add(name: "authorization", value: authorization) }
        return try await gateway.send(request)
    }

    static func basic(_ user: String, _ password: String) -> String {
        "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
    }

    // MARK: - Access

    @Test func offWithoutAnAdminToken() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let answer = try await get(gateway, authorization: "Bearer \(gateway.token)")
            #expect(answer.status == 403)
            #expect(answer.text.contains("--admin-token"))
        }
    }

    @Test func onlyTheAdminTokenOpensIt() async throws {
        try await withGateway(keys: [a], configure: Self.withAdminToken) { gateway, _ in
            let refused: [(String, String?)] = [
                ("no credentials", nil),
                ("a wrong Bearer token", "Bearer gw-admin-wrong"),
                ("a client token as Bearer", "Bearer \(gateway.token)"),
                ("the static proxy key as Bearer", "Bearer gw-static-token-for-restarts"),
                ("a client token as Basic password", Self.basic("admin", gateway.token)),
                ("the admin token as Basic user name", Self.basic(Self.adminToken, "")),
                ("an unknown scheme", "Token \(Self.adminToken)"),
            ]
            for (what, authorization) in refused {
                let answer = try await get(gateway, authorization: authorization)
                #expect(answer.status == 401, "\(what)")
                #expect(answer.header("www-authenticate")?.hasPrefix("Basic realm=") == true, "\(what): a browser must prompt")
                #expect(!answer.text.contains("<html"), "\(what)")
            }
            // The client's ways of passing a token do not open it either.
            let asClient = try await gateway.send(gateway.request("/status?key=\(Self.adminToken)", method: .GET, token: .some(Self.adminToken), body: nil))
            #expect(asClient.status == 401)

            for authorization in ["Bearer \(Self.adminToken)", Self.basic("admin", Self.adminToken), Self.basic("", Self.adminToken)] {
                let answer = try await get(gateway, authorization: authorization)
                #expect(answer.status == 200)
                #expect(answer.header("content-type") == "text/html; charset=utf-8")
                #expect(answer.header("cache-control") == "no-store")
                #expect(answer.header("content-security-policy")?.contains("default-src 'none'") == true)
                #expect(answer.text.hasPrefix("<!DOCTYPE html>"))
                #expect(answer.text.contains(#"<meta http-equiv="refresh" content="10">"#))
            }
            // Only GET.
            var post = gateway.request("/status", method: .POST, token: .some(nil))
            post.headers.add(name: "authorization", value: "Bearer \(Self.adminToken)")
            #expect(try await gateway.send(post).status == 405)
            // And the admin token is no client token.
            #expect(try await gateway.send(gateway.request("/v1beta/models/\(Self.flash):generateContent", token: .some(Self.adminToken))).status == 401)
        }
    }

    // MARK: - What it shows

    /// What `sendTraffic` leaves: figures for the page, computed from the logged rows.
    struct Traffic {
        var requests = 0
        var errors = 0
        var tokens = 0
        /// Per model: requests, errors, tokens.
        var models: [String: (requests: Int, errors: Int, tokens: Int)] = [:]
        var upstreamURL = ""
        var disabledUpstreamID: Int64 = 0
        var hostileUpstreamID: Int64 = 0
    }

    /// Keys a, b, c active (c in project `team-x`), d deleted with a hostile reason; key a cooling
    /// for gemini-2.5-pro after a per-minute 429; a second upstream disabled, a third (hostile URL
    /// with credentials) disabled too; flash requests with one client error; a hostile model name.
    func sendTraffic(_ gateway: GatewayHarness, _ fake: FakeGemini) async throws -> Traffic {
        var traffic = Traffic()
        let disabledURL = "http://127.0.0.1:\(try closedPort())"
        _ = try gateway.database.addUpstream(disabledURL)
        try gateway.database.setUpstreamState(disabledURL, to: .disabled)
        try gateway.database.setKeyState(d, to: .deleted, reason: #"<i>leaked</i> & "gone""#)
        let now = Date()
        traffic.hostileUpstreamID = try gateway.database.write { db in
            try db.execute(sql: """
                INSERT INTO upstreams (base_url, state, created_at, updated_at) VALUES (?, 'disabled', ?, ?)
                """, arguments: [#"https://relay-user:relay-pa55word@relay.example/<b>"x"&y"#, now, now])
            return db.lastInsertedRowID
        }
        traffic.disabledUpstreamID = try gateway.database.read { db in
            try Int64.fetchOne(db, sql: "SELECT id FROM upstreams WHERE base_url = ?", arguments: [disabledURL])!
        }
        traffic.upstreamURL = fake.baseURL
        #expect(try await gateway.eventually { _ in gateway.gateway.pool.snapshot().activeKeys == 3 })

        fake.setRules([
            .init(bodyContains: "BAD-REQUEST", reply: .fixture("400-malformed-request")),
            .init(key: a, model: Self.pro, times: 1, reply: .perMinuteThrottle(retryDelay: 600)),  // outlasts a slow browser start
        ])
        var sent = 0
        for _ in 0..<3 {
            #expect(try await gateway.generate(model: Self.flash).status == 200)
        }
        sent += 3
        let bad = gateway.request("/v1beta/models/\(Self.flash):generateContent", body: #"{"contents":[{"parts":[{"text":"BAD-REQUEST"}]}]}"#)
        #expect(try await gateway.send(bad).status == 400)
        sent += 1
        // Three pro requests: the least recently used key goes first, so key a is tried in one
        // of them, throttled for gemini-2.5-pro, and the request fails over.
        for _ in 0..<3 {
            #expect(try await gateway.generate(model: Self.pro).status == 200)
        }
        sent += 3
        #expect(try await gateway.send(gateway.request(Self.hostilePath)).status == 200)
        sent += 1

        let rows = try await gateway.requestRows(count: sent)
        try #require(rows.count == sent)
        #expect(try await gateway.eventually { db in
            try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM key_cooldowns") } == 1
        }, "key a's cooldown written behind")
        for row in rows {
            let model: String = row["model"] ?? "-"
            let error = (row["outcome"] as String) == "success" ? 0 : 1
            let tokens: Int = row["total_tokens"]
            traffic.requests += 1
            traffic.errors += error
            traffic.tokens += tokens
            let old = traffic.models[model] ?? (0, 0, 0)
            traffic.models[model] = (old.requests + 1, old.errors + error, old.tokens + tokens)
        }
        return traffic
    }

    /// The text of each cell of the table row with this id.
    static func cells(_ html: String, row id: String) -> [String]? {
        guard let start = html.range(of: #"<tr id="\#(id)">"#) else { return nil }
        guard let end = html[start.upperBound...].range(of: "</tr>") else { return nil }
        let row = String(html[start.upperBound..<end.lowerBound])
        return row.components(separatedBy: "</td>").dropLast().map { cell in
            cell.replacingOccurrences(of: #"<[^>]*>"#, with: "", options: .regularExpression)
        }
    }

    static func tile(_ html: String, _ id: String) -> String? {
        guard let start = html.range(of: #"<dd id="\#(id)">"#), let end = html[start.upperBound...].range(of: "</dd>") else { return nil }
        return String(html[start.upperBound..<end.lowerBound])
    }

    /// Every check on the page's markup, shared by the plain HTTP test and the browser's DOM.
    func checkPage(_ html: String, _ traffic: Traffic, _ gateway: GatewayHarness, browser: Bool = false) throws {
        let where_ = browser ? "chromium DOM" : "HTTP"
        #expect(Self.tile(html, "requests") == String(traffic.requests), "\(where_)")
        #expect(Self.tile(html, "errors") == String(traffic.errors), "\(where_)")
        #expect(Self.tile(html, "tokens") == String(traffic.tokens), "\(where_)")
        #expect(Self.tile(html, "keys-active") == "3", "\(where_)")
        #expect(Self.tile(html, "keys-cooling") == "1", "\(where_)")
        #expect(Self.tile(html, "keys-deleted") == "1", "\(where_)")
        #expect(Self.tile(html, "keys-disabled") == "0", "\(where_)")
        #expect(Self.tile(html, "upstreams-healthy") == "1 / 1", "\(where_)")
        #expect(Self.tile(html, "log-dropped") == "0", "\(where_)")
        #expect(Self.tile(html, "log-queue") == "0", "\(where_)")

        // Per model: name, requests, errors, error rate, tokens.
        for (index, expected) in traffic.models.sorted(by: { ($0.value.requests, $1.key) > ($1.value.requests, $0.key) }).enumerated() {
            let cells = try #require(Self.cells(html, row: "model-\(index + 1)"), "\(where_): model row \(index + 1)")
            let name = expected.key.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
            #expect(cells.count == 5)
            #expect(cells.first == name, "\(where_)")
            #expect(cells.dropFirst().first == String(expected.value.requests), "\(where_): \(expected.key)")
            #expect(cells.dropFirst(2).first == String(expected.value.errors), "\(where_): \(expected.key)")
            #expect(cells.last == String(expected.value.tokens), "\(where_): \(expected.key)")
        }
        #expect(traffic.models[Self.flash]?.requests == 4 && traffic.models[Self.flash]?.errors == 1)
        #expect(traffic.models[Self.pro]?.requests == 3)
        #expect(traffic.models[Self.hostileModel]?.requests == 1)

        // Key a cools for gemini-2.5-pro, with its end time; d is deleted, its reason escaped.
        let cooling = try #require(Self.cells(html, row: "key-\(Secret.fingerprint(a))"), "\(where_): key a listed")
        #expect(cooling[1] == "…" + Secret.tail(a))
        #expect(cooling[3] == "cooling", "\(where_)")
        #expect(cooling[4].hasPrefix("\(Self.pro) until 20"), "\(where_): \(cooling[4])")
        #expect(cooling[4].contains("(in "), "\(where_): \(cooling[4])")
        let teamKey = try #require(Self.cells(html, row: "key-\(Secret.fingerprint(c))"))
        #expect(teamKey[2] == "team-x")
        #expect(teamKey[3] == "usable")
        let deleted = try #require(Self.cells(html, row: "key-\(Secret.fingerprint(d))"))
        #expect(deleted[3] == "deleted")
        #expect(deleted[7].hasPrefix("&lt;i&gt;leaked&lt;/i&gt; &amp; &quot;gone&quot; at 20") || deleted[7].hasPrefix(#"&lt;i&gt;leaked&lt;/i&gt; &amp; "gone" at 20"#), "\(where_): \(deleted[7])")

        // Upstreams: the fake usable, the disabled one disabled, the hostile one without credentials.
        let fake = try #require(Self.cells(html, row: "upstream-1"))
        #expect(fake[1] == traffic.upstreamURL)
        #expect(fake[2] == "enabled")
        #expect(Int(fake[6]) ?? 0 >= traffic.requests - 1, "\(where_): tries in the last hour")
        let disabled = try #require(Self.cells(html, row: "upstream-\(traffic.disabledUpstreamID)"))
        #expect(disabled[2] == "disabled", "\(where_)")
        let hostile = try #require(Self.cells(html, row: "upstream-\(traffic.hostileUpstreamID)"))
        #expect(hostile[1] == "https://relay.example/&lt;b&gt;&quot;x&quot;&amp;y" || hostile[1] == #"https://relay.example/&lt;b&gt;"x"&amp;y"#, "\(where_): \(hostile[1])")
        #expect(hostile[2] == "disabled")

        // The charts are there, with one bar group per minute that had requests.
        #expect(html.components(separatedBy: "<svg").count - 1 == 4, "\(where_): two column charts, the tokens per model and one client's spend")
        #expect(html.contains("Spend per client, last 30 days"), "\(where_)")
        #expect(html.contains("tokens</title>"))

        // Nothing hostile is live markup, no secret is anywhere.
        #expect(!html.lowercased().contains("<script"), "\(where_)")
        #expect(!html.contains("<i>leaked"), "\(where_)")
        #expect(!html.contains("relay-pa55word") && !html.contains("relay-user"), "\(where_)")
        // (Booleans first, so that a failure never prints the page with a secret in it.)
        for key in [a, b, c, d] {
            let shown = html.contains(key)
            #expect(!shown, "\(where_): whole key \(Secret.redacted(key)) on the page")
        }
        for secret in [Self.adminToken, gateway.token, "gw-static-token-for-restarts"] {
            let shown = html.contains(secret)
            #expect(!shown, "\(where_): whole token \(Secret.redacted(secret)) on the page")
        }
    }

    @Test func showsTheTrafficKeysAndUpstreams() async throws {
        try await withGateway(keys: [a, b, "\(c) team-x", d], configure: Self.withAdminToken) { gateway, fakes in
            let traffic = try await sendTraffic(gateway, fakes[0])
            let answer = try await get(gateway, authorization: "Bearer \(Self.adminToken)")
            #expect(answer.status == 200)
            try checkPage(answer.text, traffic, gateway)
            let logged = gateway.logs.all.contains { $0.contains(Self.adminToken) }
            #expect(!logged, "admin token in a log line")
        }
    }

    // MARK: - In a real browser

    @Test(.enabled(if: StatusPageTests.chromium != nil || StatusPageTests.inCI, "needs chromium (GATEWAY_CHROMIUM or on PATH)"))
    func rendersInHeadlessChromium() async throws {
        let chromium = try #require(Self.chromium, "CI=true but no chromium: scripts/test installs Debian's chromium")
        try await withGateway(keys: [a, b, "\(c) team-x", d], timeout: 180, configure: Self.withAdminToken) { gateway, fakes in
            let traffic = try await sendTraffic(gateway, fakes[0])
            let scratch = NSTemporaryDirectory() + "status-chromium-" + UUID().uuidString
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: scratch) }
            // Basic credentials in the URL: Chromium answers the page's 401 challenge with them
            // on a top-level navigation (it only refuses them for subresources).
            let url = "http://admin:\(Self.adminToken)@127.0.0.1:\(gateway.port)/status"
            let common = [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                "--user-data-dir=\(scratch)/profile", "--window-size=1200,1600",
            ]
            func run(_ extra: [String]) async throws -> ProcessResult {
                let result = try await runProcess(
                    chromium, common + extra + [url], environment: ProcessInfo.processInfo.environment,
                    directory: scratch, timeout: 90
                )
                #expect(result.exitCode == 0, "\(result.transcript.replacingOccurrences(of: Self.adminToken, with: "ADMIN-TOKEN"))")
                return result
            }

            let dom = try await run(["--dump-dom"]).stdout
            #expect(dom.contains("<h1>gemini-gateway</h1>"), "the page, not the 401 answer: \(dom.prefix(300))")
            try checkPage(dom, traffic, gateway, browser: true)

            let screenshot = scratch + "/status.png"
            _ = try await run(["--screenshot=\(screenshot)", "--hide-scrollbars"])
            let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), "a PNG")
            // IHDR: width and height, big-endian, at bytes 16..<24.
            let size = png.count >= 24 ? (png[16..<20].reduce(0) { $0 << 8 | Int($1) }, png[20..<24].reduce(0) { $0 << 8 | Int($1) }) : (0, 0)
            #expect(size == (1200, 1600), "screenshot size \(size)")
            #expect(png.count > 40_000, "a page with text and charts, not a blank one: \(png.count) bytes")
            if let keep = ProcessInfo.processInfo.environment["GATEWAY_STATUS_SCREENSHOT"] {
                try? FileManager.default.removeItem(atPath: keep)
                try FileManager.default.copyItem(atPath: screenshot, toPath: keep)
            }
        }
    }

    // MARK: - Rendering alone

    @Test func rendersAnEmptyGatewayAndEscapesEveryString() throws {
        let now = Date(timeIntervalSince1970: 1_790_000_000)
        var data = StatusPageData(now: now, windowStart: now.addingTimeInterval(-3_540), bucketSeconds: 60)
        data.buckets = Array(repeating: .init(), count: 60)
        let empty = StatusPage.render(data, log: .init(queueDepth: 0, droppedRows: 0))
        #expect(empty.contains("No requests in the last hour."))
        #expect(empty.contains("No upstream"))
        #expect(empty.contains("No key"))

        data.buckets[59] = .init(requests: 1_234_567, errors: 89, tokens: 42)
        data.total = data.buckets[59]
        data.models = [.init(model: #"</code><script>x</script>"'&"#, traffic: data.total)]
        data.keys = [.init(
            id: 1, fingerprint: "0123456789ab", tail: "<b>", project: "p\"q", state: .active,
            cooldowns: [.init(model: "<m>", until: now.addingTimeInterval(90), reason: "<r>", quotaId: nil, project: "p\"q")],
            lastUsedAt: nil, lastThrottledAt: nil, since: nil, deletedReason: nil
        )]
        data.upstreams = [.init(
            record: .init(
                id: 1, baseUrl: "http://u:p@h.example:8080/x?<y>", state: .active, cooldownUntil: now.addingTimeInterval(3_700),
                failureStreak: 2, lastFailureAt: now, lastFailureReason: "<connect refused>", lastUsedAt: nil,
                createdAt: now, updatedAt: now
            ),
            attempts: 3, failures: 2
        )]
        let html = StatusPage.render(data, log: .init(queueDepth: 5, droppedRows: 7))
        #expect(!html.contains("<script"))
        #expect(html.contains("&lt;/code&gt;&lt;script&gt;x&lt;/script&gt;&quot;&#39;&amp;"))
        #expect(html.contains("<code>&lt;m&gt;</code> until 2026-09-21 "))
        #expect(html.contains("(in 1 min 30 s): &lt;r&gt;"))
        #expect(html.contains("via project p&quot;q"))
        #expect(html.contains("<code>http://h.example:8080/x?&lt;y&gt;</code>"))
        #expect(html.contains("(in 1 h 01 min)"))
        #expect(html.contains("&lt;connect refused&gt; at "))
        #expect(Self.tile(html, "requests") == "1,234,567")
        #expect(Self.tile(html, "log-queue") == "5")
        #expect(Self.tile(html, "log-dropped") == "7")
        #expect(Self.tile(html, "upstreams-healthy") == "0 / 1")
        #expect(html.contains("1,234,567 requests, 89 errors</title>"))
    }

    @Test func formats() {
        #expect(StatusFormat.count(0) == "0")
        #expect(StatusFormat.count(999) == "999")
        #expect(StatusFormat.count(1_000) == "1,000")
        #expect(StatusFormat.count(-12_345) == "-12,345")
        #expect(StatusFormat.withoutUserInfo("https://a:b@host/p@q") == "https://host/p@q")
        #expect(StatusFormat.withoutUserInfo("https://host/p@q") == "https://host/p@q")
        #expect(StatusFormat.withoutUserInfo("not a url") == "not a url")
        #expect(StatusChart.niceCeiling(0) == 1)
        #expect(StatusChart.niceCeiling(3) == 5)
        #expect(StatusChart.niceCeiling(11) == 20)
        #expect(StatusChart.niceCeiling(500) == 500)
        #expect(StatusChart.niceCeiling(501) == 1_000)
        #expect(HTMLText.escape(#"<a href="x">'&'</a>"#) == "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;")
    }
}
