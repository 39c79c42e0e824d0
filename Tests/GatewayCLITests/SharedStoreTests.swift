import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GRDB
import NIOCore
import NIOHTTP1
import TestSupport
import Testing

/// Two `serve` processes sharing one PostgreSQL store (issue 25), against the throwaway server
/// `scripts/test` starts (`GATEWAY_TEST_POSTGRES`). Without one these tests are skipped, except
/// with CI=true, where a missing server fails them.
@Suite struct SharedStoreTests {
    /// A 429 seen through A is avoided by B: B learns the key's cooldown from the store (the
    /// event A wrote and its NOTIFY), without B ever sending that key the request.
    @Test func aThrottleSeenByOneInstanceCoolsTheKeyForTheOther() async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0]) proj-a\n\(secrets[1]) proj-b\n") else { return }
        defer { pair.stop() }
        let (fake, client, a, b) = (pair.fake, pair.token, pair.a, pair.b)

        // The first key answers every request with a per-minute 429, for longer than any test.
        fake.setRules([.init(key: secrets[0], reply: .perMinuteThrottle(retryDelay: 3_600))])
        // Through A until A has met that 429 (its own retry then goes to the other key).
        try await waitUntil("A sent the first key its 429") {
            _ = try await a.generate(token: client)
            return fake.received().contains { $0.header("x-goog-api-key") == secrets[0] }
        }
        let throttled = ContinuousClock.now
        // B never sent a request: the cooling key in its pool came from A.
        try await waitUntil("B shows the first key cooling") { try await b.metric(#"gemini_gateway_keys{state="cooling"}"#) == 1 }
        let learnt = ContinuousClock.now - throttled
        print("SharedStoreTests: B saw A's 429 within \(learnt)")
        let before = fake.received().count
        for _ in 0..<20 { #expect(try await b.generate(token: client) == 200) }
        let sentByB = fake.received().dropFirst(before)
        #expect(sentByB.count == 20)
        #expect(sentByB.allSatisfy { $0.header("x-goog-api-key") == secrets[1] }, "B used the key A saw throttled")
    }

    /// A client's limit counts the requests of every instance: after its 10 of the day through A,
    /// B refuses it too (B learns A's use within a fraction of a second, without a database
    /// round trip per request).
    @Test func aClientsLimitCountsTheRequestsOfEveryInstance() async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0])\n", clientLimits: ["--rpd", "10"]) else { return }
        defer { pair.stop() }
        let (token, a, b) = (pair.token, pair.a, pair.b)
        for _ in 0..<10 { #expect(try await a.generate(token: token) == 200) }
        var admittedByB = 0
        var refusal: (status: Int, headers: HTTPHeaders, body: String)?
        // Alone, B would admit 10 of its own before refusing.
        try await waitUntil("B refuses the client", every: .milliseconds(200)) {
            let answer = try await b.send("/v1beta/models/gemini-2.5-flash:generateContent", token: token,
                                          body: #"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
            guard answer.status == 200 else {
                refusal = answer
                return true
            }
            admittedByB += 1
            return false
        }
        print("SharedStoreTests: B admitted \(admittedByB) more before counting A's 10")
        let refused = try #require(refusal)
        #expect(refused.status == 429)
        #expect(refused.body.contains("rpd"), "\(refused.body)")
        #expect(admittedByB < 10)
        #expect(try await a.generate(token: token) == 429)
    }

    /// An operator's soft delete and token revocation, made once with the CLI against the store,
    /// hold on both instances; a restore brings the key back on both.
    @Test func aSoftDeleteAndARevocationByTheCLIHoldOnEveryInstance() async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0])\n\(secrets[1])\n") else { return }
        defer { pair.stop() }
        let (fake, client, a, b, ws, store) = (pair.fake, pair.token, pair.a, pair.b, pair.ws, pair.store)
        for gateway in [a, b] { #expect(try await gateway.generate(token: client) == 200) }

        let deleted = try await ws.run("keys", "delete", String(secrets[1].suffix(4)), "--store", store.url)
        #expect(deleted.status == 0, "\(deleted.all)")
        for gateway in [a, b] {
            try await waitUntil("the deleted key left the pool") { try await gateway.metric(#"gemini_gateway_keys{state="usable"}"#) == 1 }
        }
        let before = fake.received().count
        for _ in 0..<5 { for gateway in [a, b] { #expect(try await gateway.generate(token: client) == 200) } }
        #expect(fake.received().dropFirst(before).allSatisfy { $0.header("x-goog-api-key") == secrets[0] })

        #expect(try await ws.run("keys", "restore", String(secrets[1].suffix(4)), "--store", store.url).status == 0)
        for gateway in [a, b] {
            try await waitUntil("the restored key is back") { try await gateway.metric(#"gemini_gateway_keys{state="usable"}"#) == 2 }
        }

        #expect(try await ws.run("clients", "revoke", "app", "--store", store.url).status == 0)
        for gateway in [a, b] {
            try await waitUntil("the revoked token is refused") { try await gateway.generate(token: client) == 401 }
        }
    }

    /// `keys check --restore` against the shared store frees a key that both instances held
    /// cooling (A met its 403, B learnt it from A): its cooldowns go from the store, and each
    /// instance drops the one it held in memory at its next reload.
    @Test func keysCheckRestoreFreesACoolingKeyOnEveryInstance() async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0])\n\(secrets[1])\n") else { return }
        defer { pair.stop() }
        let (fake, token, a, b, ws, store) = (pair.fake, pair.token, pair.a, pair.b, pair.ws, pair.store)
        fake.setRules([.init(key: secrets[0], times: 1, reply: .fixture("403-service-disabled"))])
        try await waitUntil("A sent the first key its 403") {
            _ = try await a.generate(token: token)
            return fake.received().contains { $0.header("x-goog-api-key") == secrets[0] }
        }
        for gateway in [a, b] {
            try await waitUntil("the first key cools on both") { try await gateway.metric(#"gemini_gateway_keys{state="cooling"}"#) == 1 }
        }
        let checked = try await ws.run("keys", "check", "--restore", "--store", store.url)
        #expect(checked.status == 0, "\(checked.all)")
        #expect(checked.stdout.contains("cleared the cooldowns of 1 key"), "\(checked.stdout)")
        #expect(try await store.value("SELECT COUNT(*) FROM key_cooldowns") == "0")
        for gateway in [a, b] {
            try await waitUntil("the first key is usable again on both") {
                try await gateway.metric(#"gemini_gateway_keys{state="cooling"}"#) == 0
            }
        }
        #expect(!checked.all.contains(secrets[0]) && !checked.all.contains(secrets[1]))
    }

    /// A resumable upload begun through A goes on through B, whose chunks carry no token: B finds
    /// the session's owner in the store and sends them with the same key and upstream, and both
    /// instances send calls naming the file with the key that created it.
    @Test func anUploadBegunOnOneInstanceContinuesOnTheOther() async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0])\n\(secrets[1])\n") else { return }
        defer { pair.stop() }
        let (fake, token, a, b) = (pair.fake, pair.token, pair.a, pair.b)
        let start = try await a.send("/upload/v1beta/files", token: token, headers: [
            ("x-goog-upload-protocol", "resumable"), ("x-goog-upload-command", "start"),
            ("x-goog-upload-header-content-length", "10"), ("x-goog-upload-header-content-type", "text/plain"),
        ], body: #"{"file":{"display_name":"notes"}}"#)
        #expect(start.status == 200, "\(start.body)")
        let uploadURL = try #require(start.headers.first(name: "x-goog-upload-url"))
        let path = try #require(uploadURL.range(of: "/upload/").map { String(uploadURL[$0.lowerBound...]) })
        let first = try await b.send(path, token: nil, headers: [("x-goog-upload-command", "upload"), ("x-goog-upload-offset", "0")], body: "hello")
        #expect(first.status == 200, "\(first.body)")
        let last = try await b.send(path, token: nil, headers: [("x-goog-upload-command", "upload, finalize"), ("x-goog-upload-offset", "5")], body: "world")
        #expect(last.status == 200, "\(last.body)")
        let uploads = fake.received().filter { $0.path.hasPrefix("/upload/") }
        #expect(uploads.count == 3)
        #expect(Set(uploads.map { $0.header("x-goog-api-key") }).count == 1, "every step with the key that began it")
        let name = try #require(last.body.firstMatch(of: /"name":\s*"(files\/[^"]+)"/).map { String($0.1) })
        let owner = try #require(uploads.first?.header("x-goog-api-key"))
        for gateway in [a, b, a, b] {
            let got = try await gateway.send("/v1beta/\(name)", method: .GET, token: token)
            #expect(got.status == 200, "\(got.body)")
            #expect(got.headers.first(name: "x-fake-key") == String(owner.suffix(4)))
        }
        // A session nobody began is refused, as on one instance.
        let stranger = try await b.send("/upload/v1beta/files?upload_id=nobody-began-this&upload_protocol=resumable", token: nil,
                                        headers: [("x-goog-upload-command", "upload"), ("x-goog-upload-offset", "0")], body: "x")
        #expect(stranger.status == 401)
    }

    /// PostgreSQL stopped, then crashed, while both instances serve: they go on answering from
    /// memory and say so on `/readyz` (still 200) and in `/metrics`; when it is back every row
    /// is written (each once), and a 429 through A again reaches B (the listener reconnected).
    @Test func postgreSQLGoingAwayLosesNoRowAndTheInstancesCatchUp() async throws {
        try await OwnCluster.with { cluster in try await postgreSQLGoesAway(cluster) }
    }

    private func postgreSQLGoesAway(_ cluster: OwnCluster) async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0])\n\(secrets[1])\n", server: cluster.url) else { return }
        defer { pair.stop() }
        do {
            try await postgreSQLGoesAway(cluster, pair)
        } catch {
            // What the gateways said (a process that died says why here).
            for (name, gateway) in [("A", pair.a), ("B", pair.b)] {
                let exit = await gateway.process.waitForExit(timeout: 0)
                // A crash prints its reason, then a long backtrace: from the reason on.
                let stderr = gateway.process.stderr
                let crash = stderr.range(of: "Fatal error").map { stderr[$0.lowerBound...] } ?? stderr.range(of: "💣").map { stderr[$0.lowerBound...] }
                Issue.record("\(name) exit \(exit.map(String.init) ?? "none"), stderr: \(crash.map { String($0.prefix(6_000)) } ?? String(stderr.suffix(3_000)))")
            }
            throw error
        }
    }

    private func postgreSQLGoesAway(_ cluster: OwnCluster, _ pair: TwoGateways) async throws {
        let (fake, token, a, b, store) = (pair.fake, pair.token, pair.a, pair.b, pair.store)
        var ids = Set<String>()
        func serveSome() async throws {
            for gateway in [a, b, a, b, a, b] {
                let (status, id) = try await gateway.generateWithID(token: token)
                #expect(status == 200)
                ids.insert(id)
            }
        }
        try await serveSome()
        for action in ["stop", "crash"] {
            if action == "stop" { try await cluster.run("stop") }
            // Served from memory while the store is away; the writes fail and wait.
            try await serveSome()
            if action == "stop" {
                for gateway in [a, b] {
                    try await waitUntil("/readyz says the store is failing") {
                        let ready = try await gateway.send("/readyz", method: .GET, token: nil)
                        return ready.status == 200 && ready.body.contains(#""database_ok":false"#)
                    }
                    #expect(try await gateway.metric("gemini_gateway_database_ok") == 0)
                }
                try await cluster.run("start")
            } else {
                try await cluster.run("crash")
                try await serveSome()
            }
            try await waitUntil("every answered request is in the store", timeout: patience) {
                let logged = try await store.value("SELECT COUNT(*) FROM requests WHERE request_id IN (\(ids.map { "'\($0)'" }.joined(separator: ",")))")
                return logged == String(ids.count)
            }
        }
        for gateway in [a, b] {
            try await waitUntil("/readyz says the store is fine again") {
                try await gateway.send("/readyz", method: .GET, token: nil).body.contains(#""database_ok":true"#)
            }
        }
        #expect(try await store.value("SELECT COUNT(*) = COUNT(DISTINCT request_id) FROM requests") == "t")
        #expect(try await store.value("SELECT (SELECT SUM(requests) FROM daily_usage) = (SELECT COUNT(*) FROM requests)") == "t")
        // The listeners are back: a throttle through A cools the key in B again.
        fake.setRules([.init(key: secrets[0], reply: .perMinuteThrottle(retryDelay: 3_600))])
        try await waitUntil("A sent the first key its 429") {
            _ = try await a.generate(token: token)
            return fake.received().suffix(4).contains { $0.header("x-goog-api-key") == secrets[0] && $0.path.contains("generateContent") }
        }
        try await waitUntil("B shows the first key cooling") { try await b.metric(#"gemini_gateway_keys{state="cooling"}"#) == 1 }
    }

    /// SIGTERM of one instance while its requests are in flight: they are answered, it exits 0,
    /// the other serves on, and every answered request of both is in the store.
    @Test func sigtermOfOneInstanceLosesNoRow() async throws {
        guard let pair = try await TwoGateways.start(keys: "\(secrets[0])\n\(secrets[1])\n") else { return }
        defer { pair.stop() }
        let (fake, token, a, b, store) = (pair.fake, pair.token, pair.a, pair.b, pair.store)
        fake.setRules([.init(model: "slow-model", reply: .delay(.milliseconds(1500), then: .ok))])
        let slow = (0..<8).map { _ in Task { try await a.generateWithID(token: token, model: "slow-model") } }
        try await waitUntil("A's slow requests reached the upstream") { fake.received().count >= 8 }
        a.process.terminate()
        var ids = Set<String>()
        for task in slow {
            let (status, id) = try await task.value
            #expect(status == 200)
            ids.insert(id)
        }
        #expect(await a.process.waitForExit(timeout: patience) == 0)
        for _ in 0..<10 {
            let (status, id) = try await b.generateWithID(token: token)
            #expect(status == 200)
            ids.insert(id)
        }
        try await waitUntil("every answered request is in the store") {
            let logged = try await store.value("SELECT COUNT(*) FROM requests WHERE request_id IN (\(ids.map { "'\($0)'" }.joined(separator: ",")))")
            return logged == String(ids.count)
        }
    }

    /// `store copy` moves a SQLite node into an empty shared store: keys with their states,
    /// clients (the same tokens work), the request log and its daily totals, ids kept; a gateway
    /// on the store then serves with them. A second copy into the same store is refused.
    @Test func storeCopyMovesASQLiteNodeIntoTheSharedStore() async throws {
        guard let store = try await SharedDatabase.make() else { return }
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        defer { Task { await fake.stop() } }
        ws.write("api_keys.txt", "\(secrets[0]) proj-a\n\(secrets[1])\n\(secrets[2]) proj-a\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        #expect(try await ws.run("import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt").status == 0)
        let added = try await ws.run("clients", "add", "app", "--rpm", "1000")
        let token = try #require(added.stdout.split(separator: "\n").first { $0.hasPrefix("gw-") }.map(String.init))
        let port = try freePort()
        let node = try await ServeProcess(["serve", "--host", "127.0.0.1", "--port", "\(port)"], in: ws.path)
        defer { node.kill() }
        #expect(await node.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil)
        let sqliteGateway = ServedGateway(process: node, port: port)
        for _ in 0..<12 { #expect(try await sqliteGateway.generate(token: token) == 200) }
        node.terminate()
        #expect(await node.waitForExit(timeout: patience) == 0)
        #expect(try await ws.run("keys", "delete", String(secrets[1].suffix(4))).status == 0)

        let copied = try await ws.run("store", "copy", "--from", "gateway.db", "--to", store.url)
        #expect(copied.status == 0, "\(copied.all)")
        #expect(copied.stdout.contains("requests") && copied.stdout.contains("12"), "\(copied.stdout)")
        let sqlite = try DatabaseQueue(path: ws.path + "/gateway.db")
        for (sql, what) in [
            ("SELECT COUNT(*) FROM requests", "requests"), ("SELECT COUNT(*) FROM attempts", "attempts"),
            ("SELECT SUM(requests) FROM daily_usage", "daily requests"), ("SELECT SUM(total_tokens) FROM daily_usage", "daily tokens"),
            ("SELECT COUNT(*) FROM keys WHERE state = 'deleted'", "deleted keys"), ("SELECT MAX(id) FROM requests", "last id"),
            ("SELECT string_agg(fingerprint || ':' || COALESCE(project, '-'), ',' ORDER BY id) FROM keys", "keys"),
            ("SELECT string_agg(name || ':' || token_hash || ':' || COALESCE(rpm, 0), ',' ORDER BY id) FROM clients", "clients"),
        ] {
            let sqliteSQL = sql.replacingOccurrences(of: "string_agg(", with: "group_concat(")
                .replacingOccurrences(of: ", ',' ORDER BY id)", with: ", ',')")
            let expected = try await sqlite.read { db in try String.fetchOne(db, sql: sqliteSQL) } ?? ""
            #expect(try await store.value(sql) == expected, "\(what)")
        }

        let copiedAgain = try await ws.run("store", "copy", "--from", "gateway.db", "--to", store.url)
        #expect(copiedAgain.status != 0)
        #expect(copiedAgain.stderr.contains("not empty"), "\(copiedAgain.stderr)")

        // The shared store serves with the node's keys and tokens; the deleted key stays unused.
        let shared = try await ServedGateway.start(store: store, in: ws)
        defer { shared.process.kill() }
        let before = fake.received().count
        for _ in 0..<6 { #expect(try await shared.generate(token: token) == 200) }
        #expect(!fake.received().dropFirst(before).contains { $0.header("x-goog-api-key") == secrets[1] })
        shared.process.terminate()
        #expect(await shared.process.waitForExit(timeout: patience) == 0)
        #expect(try await store.value("SELECT COUNT(*) FROM requests") == "18")

        // The ready queries of etc/reports/postgres run on it, as etc/reports/ on SQLite.
        let reports = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("etc/reports/postgres")
        let files = try FileManager.default.contentsOfDirectory(atPath: reports.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.count == 7)
        for file in files {
            // psql stops at the first error (ON_ERROR_STOP) and throws here.
            let output = try await SharedDatabase.psql(store.url, arguments: ["-f", reports.appendingPathComponent(file).path])
            switch file {
            case "clients-daily.sql", "tokens-this-month.sql": #expect(output.contains("app|18|"), "\(file): \(output)")
            case "keys.sql", "models-daily.sql", "upstreams.sql": #expect(!output.isEmpty, "\(file)")
            default: break  // failures and cooldowns: none here
            }
        }
    }

    /// Two instances starting together on an empty store, each importing the same files: one
    /// migration, one key, one upstream, one "default" token shown by exactly one of them, two
    /// instance ids; and every answered request is in the shared log once, also in the daily
    /// totals.
    @Test func twoInstancesStartingTogetherBootstrapOnceAndLogEveryRequestOnce() async throws {
        guard let store = try await SharedDatabase.make() else { return }
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        defer { Task { await fake.stop() } }
        ws.write("api_keys.txt", "\(secrets[0])\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        let (portA, portB) = (try freePort(), try freePort())
        func serve(_ port: Int) async throws -> ServeProcess {
            try await ServeProcess(
                ["serve", "--store", store.url, "--host", "127.0.0.1", "--port", "\(port)", "--keys", "api_keys.txt",
                 "--upstreams", "proxy_urls.txt", "--metrics-public"],
                in: ws.path)
        }
        async let startedA = serve(portA)
        async let startedB = serve(portB)
        let (a, b) = try await (startedA, startedB)
        defer { a.kill(); b.kill() }
        for process in [a, b] {
            #expect(await process.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil, "\(process.stderr)")
        }
        let tokens = (a.stdout + b.stdout).split(separator: "\n").filter { $0.hasPrefix("gw-") }
        #expect(tokens.count == 1, "exactly one instance shows the one default token")
        let migrations = try FileManager.default.contentsOfDirectory(
            atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("migrations/postgres").path
        ).filter { $0.hasSuffix(".sql") }
        #expect(try await store.value("SELECT COUNT(*) FROM schema_migrations") == String(migrations.count))
        #expect(try await store.value("SELECT COUNT(*) FROM upstreams") == "1")
        #expect(try await store.value("SELECT COUNT(*) FROM keys") == "1")
        #expect(try await store.value("SELECT COUNT(*) FROM clients") == "1")
        #expect(try await store.value("SELECT COUNT(DISTINCT id) FROM gateway_instances") == "2")
        let token = try #require(tokens.first.map(String.init))

        let gateways = [ServedGateway(process: a, port: portA), ServedGateway(process: b, port: portB)]
        var ids = Set<String>()
        for index in 0..<40 {
            let (status, id) = try await gateways[index % 2].generateWithID(token: token)
            #expect(status == 200)
            ids.insert(id)
        }
        for process in [a, b] { process.terminate() }
        for process in [a, b] { #expect(await process.waitForExit(timeout: patience) == 0) }
        let logged = Set(try await store.value("SELECT string_agg(request_id, ',') FROM requests").split(separator: ",").map(String.init))
        #expect(ids.isSubset(of: logged), "every answered request has its row")
        #expect(try await store.value("SELECT COUNT(*) = COUNT(DISTINCT request_id) FROM requests") == "t")
        #expect(try await store.value("SELECT (SELECT SUM(requests) FROM daily_usage) = (SELECT COUNT(*) FROM requests)") == "t")
        let prefixes = Set(ids.map { String($0.dropFirst(11).prefix(4)) })
        #expect(prefixes.count == 2, "each instance's ids carry its own prefix")
    }
}

/// A PostgreSQL server of one test's own, which it may stop, crash and start again without
/// disturbing the other tests' server (`scripts/pg-test-cluster`, as `GATEWAY_TEST_PG_CTL`).
struct OwnCluster {
    let control: String
    let directory: String
    let port: Int
    var url: String { "postgres://gateway@127.0.0.1:\(port)/postgres" }

    /// Runs `body` with a cluster of its own, stopped and deleted afterwards whatever happens;
    /// skipped without the control script, which `scripts/test` exports.
    static func with(_ body: (OwnCluster) async throws -> Void) async throws {
        guard let cluster = try await start() else { return }
        do {
            try await body(cluster)
        } catch {
            await cluster.remove()
            throw error
        }
        await cluster.remove()
    }

    private static func start() async throws -> OwnCluster? {
        guard let control = ProcessInfo.processInfo.environment["GATEWAY_TEST_PG_CTL"], !control.isEmpty else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("GATEWAY_TEST_PG_CTL is not set: scripts/test sets it") }
            return nil
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-pg-own-\(UUID().uuidString.prefix(8))").path
        let cluster = OwnCluster(control: control, directory: directory, port: try freePort())
        try await cluster.run("start")
        return cluster
    }

    /// `start`, `stop`, `restart` or `crash` (stop without a shutdown checkpoint, then start).
    func run(_ action: String) async throws {
        let child = try await ChildProcess(control, [action, directory, String(port)], environment: ProcessInfo.processInfo.environment)
        let status = await child.waitForExit()
        if status != 0 { throw SharedDatabase.PSQLFailed(sql: "pg-test-cluster \(action)", output: child.stderr) }
    }

    func remove() async {
        try? await run("stop")
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A fake upstream, keys and a client "app" imported with the CLI into a fresh shared store, and
/// two gateways serving from it.
struct TwoGateways {
    let store: SharedDatabase
    let ws: Workspace
    let fake: FakeGemini
    let token: String
    let a: ServedGateway
    let b: ServedGateway

    /// Nil when there is no test server (the test is skipped).
    static func start(keys: String, server: String? = nil, clientLimits: [String] = []) async throws -> TwoGateways? {
        guard let store = try await SharedDatabase.make(server: server) else { return nil }
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        ws.write("api_keys.txt", keys)
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        #expect(try await ws.run("import", "--store", store.url, "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt").status == 0)
        let token = try await store.addClient(in: ws, limits: clientLimits)
        let a = try await ServedGateway.start(store: store, in: ws)
        let b = try await ServedGateway.start(store: store, in: ws)
        return TwoGateways(store: store, ws: ws, fake: fake, token: token, a: a, b: b)
    }

    func stop() {
        a.process.kill()
        b.process.kill()
        let fake = fake
        Task { await fake.stop() }
    }
}

/// A fresh database on the test PostgreSQL server, for one test.
struct SharedDatabase {
    let url: String
    let server: String

    /// Nil (the test is skipped) without `GATEWAY_TEST_POSTGRES`; with CI=true that is a failure.
    static func make(server given: String? = nil) async throws -> SharedDatabase? {
        let environment = ProcessInfo.processInfo.environment
        guard let server = given ?? environment["GATEWAY_TEST_POSTGRES"], !server.isEmpty else {
            if environment["CI"] == "true" { Issue.record("GATEWAY_TEST_POSTGRES is not set: scripts/test starts the server") }
            return nil
        }
        let name = "gw_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        _ = try await psql(server, "CREATE DATABASE \(name)")
        let base = server.hasSuffix("/postgres") ? String(server.dropLast("/postgres".count)) : server
        return SharedDatabase(url: base + "/" + name, server: server)
    }

    /// The single value `sql` returns, as psql prints it.
    func value(_ sql: String) async throws -> String {
        try await Self.psql(url, sql)
    }

    /// A client "app" made with the CLI; returns its token.
    func addClient(in ws: Workspace, limits: [String] = []) async throws -> String {
        let added = try await CLI.run(["clients", "add", "app", "--store", url] + limits, in: ws.path)
        #expect(added.status == 0, "\(added.all)")
        return try #require(added.stdout.split(separator: "\n").first { $0.hasPrefix("gw-") }.map(String.init))
    }

    static func psql(_ url: String, _ sql: String) async throws -> String {
        try await psql(url, arguments: ["-c", sql])
    }

    static func psql(_ url: String, arguments: [String]) async throws -> String {
        let child = try await ChildProcess("/usr/bin/env", ["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1"] + arguments,
                                           environment: ProcessInfo.processInfo.environment)
        let status = await child.waitForExit()
        guard status == 0 else { throw PSQLFailed(sql: arguments.joined(separator: " "), output: child.stderr) }
        return child.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct PSQLFailed: Error, CustomStringConvertible {
        var sql: String
        var output: String
        var description: String { "psql failed on '\(sql)': \(output)" }
    }
}
