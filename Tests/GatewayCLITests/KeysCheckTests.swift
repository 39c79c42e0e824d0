import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import Testing

/// `gemini-gateway keys check`: the real binary against a fake Gemini upstream.
@Suite struct KeysCheckTests {
    /// Fake keys, one per case; the last 4 characters name them in the assertions.
    static let keys = (1...7).map { "AIzaSyFAKE-keys-check-key-000000000000\($0)" }
    var keys: [String] { Self.keys }

    /// Seven keys in every state a check must handle, behind a fake upstream that answers per key:
    ///
    /// | key | before | the fake answers | expected |
    /// |---|---|---|---|
    /// | 1 | deleted | 200 | alive |
    /// | 2 | deleted | 400 API_KEY_INVALID | dead |
    /// | 3 | disabled | 429 per minute | throttled |
    /// | 4 | cooling (`*`, own) | 403 SERVICE_DISABLED | unusable |
    /// | 5 | cooling (own, and its project's) | 200 | alive |
    /// | 6 | deleted | 503 overloaded | unknown |
    /// | 7 | active | 200 | not checked unless named or --all |
    func setUp(_ ws: Workspace) async throws -> FakeGemini {
        let fake = try await FakeGemini.start()
        fake.setRules([
            .init(key: keys[1], reply: .fixture("400-api-key-invalid")),
            .init(key: keys[2], reply: .fixture("429-per-minute")),
            .init(key: keys[3], reply: .fixture("403-service-disabled")),
            .init(key: keys[5], reply: .fixture("503-overloaded")),
        ])
        _ = ws.write("api_keys.txt", keys.enumerated().map { $0.offset == 4 ? "\($0.element) proj-b" : $0.element }.joined(separator: "\n"))
        _ = ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        #expect(try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt").status == 0)
        #expect(try await ws.run("keys", "delete", "0001", "--reason", "API_KEY_INVALID").status == 0)
        #expect(try await ws.run("keys", "delete", "0002", "--reason", "API_KEY_INVALID").status == 0)
        #expect(try await ws.run("keys", "disable", "0003").status == 0)
        #expect(try await ws.run("keys", "delete", "0006", "--reason", "API_KEY_INVALID").status == 0)
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        let until = Date().addingTimeInterval(3600)
        try await queue.write { db in
            func id(_ tail: String) throws -> Int64 { try Int64.fetchOne(db, sql: "SELECT id FROM keys WHERE tail = ?", arguments: [tail])! }
            try db.execute(sql: """
                INSERT INTO key_cooldowns (key_id, model, until, reason, quota_id, created_at) VALUES
                    (?, '*', ?, 'SERVICE_DISABLED', NULL, ?), (?, 'gemini-2.5-pro', ?, 'QUOTA_PER_DAY', 'PerDay', ?)
                """, arguments: [try id("0004"), until, Date(), try id("0005"), until, Date()])
            try db.execute(sql: """
                INSERT INTO project_cooldowns (project, model, until, reason, quota_id, created_at)
                VALUES ('proj-b', 'gemini-2.5-flash', ?, 'QUOTA_PER_DAY', 'PerDay', ?)
                """, arguments: [until, Date()])
        }
        return fake
    }

    /// The `keys check --json` rows by the key's last 4 characters.
    func checked(_ result: CLIResult) throws -> (report: [String: Any], byTail: [String: [String: Any]]) {
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.all)")
        let rows = try #require(report["keys"] as? [[String: Any]])
        return (report, Dictionary(uniqueKeysWithValues: rows.map { ($0["tail"] as! String, $0) }))
    }

    func listing(_ ws: Workspace) async throws -> [String: [String: Any]] {
        let list = try await ws.run("keys", "list", "--json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: rows.map { ($0["tail"] as! String, $0) })
    }

    func expectNoSecret(_ results: CLIResult...) {
        for result in results {
            for key in keys { #expect(!result.all.contains(key), "a whole key in the output") }
        }
    }

    // MARK: Reporting

    @Test func eachKindOfKeyIsJudgedAsTheGatewayWouldAndNothingChanges() async throws {
        let ws = Workspace()
        let fake = try await setUp(ws)
        defer { Task { await fake.stop() } }
        let before = try await ws.run("keys", "list", "--json")
        let marker = try await AppDatabase.open(path: ws.path + "/gateway.db").poolMarker()

        let json = try await ws.run("keys", "check", "--json")
        #expect(json.status == 0, "\(json.all)")
        let (report, rows) = try checked(json)
        #expect(report["upstream"] as? String == fake.baseURL, "the first enabled upstream")
        #expect(report["restore"] as? Bool == false)
        #expect(Set(rows.keys) == ["0001", "0002", "0003", "0004", "0005", "0006"], "deleted, disabled and cooling keys only")
        #expect(rows["0001"]?["result"] as? String == "alive")
        #expect(rows["0001"]?["state"] as? String == "deleted")
        #expect(rows["0002"]?["result"] as? String == "dead")
        #expect(rows["0002"]?["reason"] as? String == "API_KEY_INVALID")
        #expect((rows["0002"]?["message"] as? String)?.contains("API key not valid") == true)
        #expect(rows["0002"]?["http_status"] as? Int == 400)
        #expect(rows["0003"]?["result"] as? String == "throttled")
        #expect(rows["0003"]?["state"] as? String == "disabled")
        #expect(rows["0004"]?["result"] as? String == "unusable")
        #expect(rows["0004"]?["reason"] as? String == "SERVICE_DISABLED")
        #expect(rows["0005"]?["result"] as? String == "alive")
        #expect((rows["0005"]?["cooldowns"] as? [Any])?.count == 2, "its own cooldown and its project's")
        #expect(rows["0006"]?["result"] as? String == "unknown", "a 503 is Google's problem, not the key's")
        #expect(rows["0006"]?["reason"] as? String == "UNAVAILABLE")
        #expect(rows.values.allSatisfy { $0["action"] == nil || $0["action"] is NSNull })
        let counts = try #require(report["counts"] as? [String: Int])
        #expect(counts == ["alive": 2, "throttled": 1, "dead": 1, "unusable": 1, "unknown": 1])

        // The probe is the free models-list call, with the key in x-goog-api-key.
        let probes = fake.received()
        #expect(probes.count == 6)
        for probe in probes {
            #expect(probe.method == "GET")
            #expect(probe.path == "/v1beta/models")
            #expect(probe.queryValue("pageSize") == "1")
            #expect(probe.keySource == .header)
        }

        // The table says the same, with the state before and the reason.
        let table = try await ws.run("keys", "check")
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("FINGERPRINT") == true && lines.first?.contains("BEFORE") == true)
        #expect(lines.contains { $0.contains("…0002") && $0.contains("dead") && $0.contains("API_KEY_INVALID") })
        #expect(lines.contains { $0.contains("…0003") && $0.contains("disabled") && $0.contains("throttled") })
        #expect(lines.contains { $0.contains("…0005") && $0.contains("proj-b") && $0.contains("cooling") && $0.contains("alive") })
        #expect(table.stdout.contains("6 keys checked through \(fake.baseURL): 2 alive, 1 throttled, 1 dead, 1 unusable, 1 unknown"))
        #expect(table.stdout.contains("--restore brings back 3 keys"))

        // Named keys (any state), and --all.
        let named = try checked(try await ws.run("keys", "check", "0007", "0002", "--json")).byTail
        #expect(Set(named.keys) == ["0002", "0007"])
        #expect(named["0007"]?["result"] as? String == "alive")
        let all = try await ws.run("keys", "check", "--all", "--concurrency", "2", "--json")
        #expect(try checked(all).byTail.count == 7)

        // Nothing changed in the database.
        let after = try await ws.run("keys", "list", "--json")
        #expect(after.stdout == before.stdout)
        #expect(try await AppDatabase.open(path: ws.path + "/gateway.db").poolMarker() == marker)
        expectNoSecret(json, table, all, before, after)
    }

    // MARK: --restore

    @Test func restoreBringsBackExactlyTheKeysFoundAlive() async throws {
        let ws = Workspace()
        let fake = try await setUp(ws)
        defer { Task { await fake.stop() } }
        let marker = try await AppDatabase.open(path: ws.path + "/gateway.db").poolMarker()

        let result = try await ws.run("keys", "check", "--restore", "--json")
        #expect(result.status == 0, "\(result.all)")
        let rows = try checked(result).byTail
        #expect(rows["0001"]?["action"] as? String == "restored")
        #expect(rows["0003"]?["action"] as? String == "restored", "a throttled key is a valid key")
        #expect(rows["0005"]?["action"] as? String == "cooldowns_cleared_project_cooldowns_kept")
        for tail in ["0002", "0004", "0006"] {
            #expect(rows[tail]?["action"] == nil || rows[tail]?["action"] is NSNull, "\(tail)")
        }

        let keys = try await listing(ws)
        #expect(keys["0001"]?["state"] as? String == "active")
        #expect(keys["0001"]?["deleted_reason"] == nil || keys["0001"]?["deleted_reason"] is NSNull)
        #expect(keys["0002"]?["state"] as? String == "deleted", "a dead key stays deleted")
        #expect(keys["0003"]?["state"] as? String == "active")
        #expect(keys["0004"]?["state"] as? String == "active")
        #expect((keys["0004"]?["cooldowns"] as? [Any])?.count == 1, "an unusable key keeps its cooldown")
        let cooldowns5 = try #require(keys["0005"]?["cooldowns"] as? [[String: Any]])
        #expect(cooldowns5.count == 1 && cooldowns5.first?["project"] as? String == "proj-b", "only the project's cooldown is left")
        #expect(keys["0006"]?["state"] as? String == "deleted", "unknown is not alive")
        #expect(keys["0007"]?["state"] as? String == "active")

        // A running gateway notices: the marker it polls has moved.
        #expect(try await AppDatabase.open(path: ws.path + "/gateway.db").poolMarker() != marker)

        // The table says what was done.
        let again = try await ws.run("keys", "check", "--restore")
        #expect(again.status == 0, "\(again.all)")
        #expect(again.stdout.contains("DONE"))
        #expect(again.stdout.contains("restored 0 keys"))
        expectNoSecret(result, again)
    }

    // MARK: No upstream

    @Test func anUnreachableUpstreamIsAClearErrorAndChangesNothing() async throws {
        let ws = Workspace()
        let fake = try await setUp(ws)
        defer { Task { await fake.stop() } }
        let before = try await ws.run("keys", "list", "--json")
        let port = try freePort()

        let refused = try await ws.run("keys", "check", "--restore", "--upstream", "http://127.0.0.1:\(port)")
        #expect(refused.status == 69)
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr.hasPrefix("error: no answer from upstream http://127.0.0.1:\(port) (CONNECTION_REFUSED"))
        #expect(refused.stderr.contains("nothing changed"))

        // A relay that answers every call with its own HTML page is no better.
        fake.setRules([.init(reply: .status(502, body: "<html>bad gateway</html>", contentType: "text/html"))])
        let relay = try await ws.run("keys", "check", "--restore", "--json")
        #expect(relay.status == 69)
        #expect(relay.stderr.contains("NOT_GOOGLE_ENVELOPE"))
        #expect(relay.stderr.contains("HTTP 502"))

        #expect(try await ws.run("keys", "list", "--json").stdout == before.stdout)
        expectNoSecret(refused, relay)
    }

    // MARK: Bad input

    /// A key whose stored secret was edited by hand into something that is not a key is named
    /// and left out, never sent; the others are checked as usual.
    @Test func aSecretEditedByHandIsNotSentButNamed() async throws {
        let ws = Workspace()
        let fake = try await setUp(ws)
        defer { Task { await fake.stop() } }
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        try await queue.write { db in
            try db.execute(sql: "UPDATE keys SET secret = secret || char(13, 10) || 'X-Injected: 1' WHERE tail = '0001'")
        }
        let result = try await ws.run("keys", "check", "--json")
        #expect(result.status == 0, "\(result.all)")
        #expect(result.stderr.contains("warning: key \(Secret.fingerprint(keys[0])): its stored secret is not a valid key"))
        let (_, byTail) = try checked(result)
        #expect(byTail["0001"] == nil)
        #expect(Set(byTail.keys) == ["0002", "0003", "0004", "0005", "0006"])
        #expect(!fake.received().contains { $0.headers.contains { $0.name.lowercased() == "x-injected" } })
        // Only that key asked for: nothing left to check, and it says so.
        let alone = try await ws.run("keys", "check", "0001")
        #expect(alone.status == 0)
        #expect(alone.stdout.contains("no key left to check (see the warnings above)"), "\(alone.all)")
    }

    @Test func badInputIsAUsageError() async throws {
        let ws = Workspace()
        _ = ws.write("api_keys.txt", keys[0])
        #expect(try await ws.run("import", "--keys", "api_keys.txt").status == 0)
        for arguments in [
            ["--nonsense"], ["--concurrency", "0"], ["--timeout", "0"], ["--upstream", "ftp://relay.example"],
            ["--all", "0001"], ["--upstream-ca-file", "missing.pem"],
        ] {
            let result = try await CLI.run(["keys", "check"] + arguments, in: ws.path)
            #expect(result.status == 64, "\(arguments): \(result.all)")
        }
        let unknown = try await ws.run("keys", "check", "ffff")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no key matches"))
        // Nothing to check is not an error.
        let none = try await ws.run("keys", "check")
        #expect(none.status == 0)
        #expect(none.stdout.contains("no deleted, disabled or cooling keys"))
        let noneJSON = try await ws.run("keys", "check", "--json")
        #expect(noneJSON.status == 0)
        #expect((try JSONSerialization.jsonObject(with: Data(noneJSON.stdout.utf8)) as? [String: Any])?["keys"] as? [Any] != nil)
    }
}

