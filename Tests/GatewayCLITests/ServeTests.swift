import AsyncHTTPClient
import FakeGemini
import Foundation
import Glibc
import GatewayCore
import GRDB
import NIOCore
import Synchronization
import TestSupport
import Testing

/// `gemini-gateway serve` as an operator runs it: a real process, real signals.
@Suite struct ServeTests {
    @Test func servesImportsMakesATokenAndDrainsOnSIGTERM() async throws {
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        defer { Task { await fake.stop() } }
        fake.setRules([.init(model: "slow-model", reply: .delay(.milliseconds(1500), then: .ok))])
        ws.write("api_keys.txt", "\(secrets[0])\n\(secrets[1]) proj\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        let port = try freePort()
        let serve = try await ServeProcess(
            ["serve", "--host", "127.0.0.1", "--port", "\(port)", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt"],
            in: ws.path
        )
        defer { serve.kill() }

        // The import summary, then the one-time token (no token was configured).
        let token = try #require(await serve.waitForStdout(timeout: patience) { $0.hasPrefix("gw-") })
        #expect(serve.stdout.contains("keys from api_keys.txt: 2 added"))
        #expect(serve.stdout.contains("upstreams from proxy_urls.txt: 1 added"))
        #expect(await serve.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil)
        // Package.swift links jemalloc (bench/RESULTS.md, "The allocator"); the start says so.
        #expect(serve.stderr.contains("allocator=jemalloc"), "\(serve.stderr)")

        let gateway = ServedGateway(process: serve, port: port)
        func generate(_ model: String) async throws -> Int { try await gateway.generateWithID(token: token, model: model).status }
        #expect(try await generate("gemini-2.5-flash") == 200)
        #expect(fake.received().first?.header("x-goog-api-key") == secrets[0])
        // At the default level, a line per request (buffered: it comes within a moment), in
        // swift-log's format with the fields sorted, the key as its fingerprint.
        let line = try #require(await serve.waitForStderr(timeout: patience) { $0.hasSuffix(" [GatewayServer] request") })
        #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} info gemini-gateway: attempts=1 client=\S+ endpoint=generateContent key=\#(Secret.fingerprint(secrets[0])) latency_ms=\d+ model=gemini-2.5-flash outcome=success request_id=\S+ status=200 upstream=http://127.0.0.1:\d+ \[GatewayServer\] request$"#, options: .regularExpression) != nil, "\(line)")

        // SIGTERM while a request is in flight: it finishes, then the process exits 0.
        let slow = Task { try await generate("slow-model") }
        #expect(await fake.wait { $0.requestCount == 2 })
        serve.terminate()
        let slowStatus = try await slow.value
        #expect(slowStatus == 200)
        let status = try #require(await serve.waitForExit(timeout: patience))
        #expect(status == 0)

        // Both requests are in the log, and no secret reached the output.
        let queue = try DatabaseQueue(path: ws.path + "/gateway.db")
        let rows = try await queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests")! }
        #expect(rows == 2)
        for secret in secrets {
            #expect(!serve.stdout.contains(secret) && !serve.stderr.contains(secret))
        }
        #expect(!serve.stderr.contains(token))
        #expect(serve.stdout.components(separatedBy: token).count == 2, "the token is printed exactly once")
    }

    /// A stream cut by `kill -9` still has its row: from its first byte it is in
    /// `streams_in_flight`, and the next start logs it as `interrupted` with what was known.
    @Test func aStreamCutByKillIsLoggedInterruptedAtTheNextStart() async throws {
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        defer { Task { await fake.stop() } }
        // Two events go at once, the rest never: the stream is running when the process dies.
        let gate = FakeGemini.StreamGate(permits: 2)
        let events = (0..<4).map { index in
            #"{"candidates":[{"content":{"parts":[{"text":"part \#(index)"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":\#(index + 1),"totalTokenCount":\#(11 + index)}}"#
        }
        fake.setRules([.init(method: "streamGenerateContent", reply: .sse(events: events, interval: .zero, gate: gate))])
        ws.write("api_keys.txt", "\(secrets[0])\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        let proxyKey = "gw-proxy-key-of-the-crash-test-0123456789"
        let port = try freePort()
        let arguments = [
            "serve", "--host", "127.0.0.1", "--port", "\(port)", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt",
            "--proxy-key", proxyKey,
        ]
        let first = try await ServeProcess(arguments, in: ws.path)
        defer { first.kill() }
        #expect(await first.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil)

        let reader = Task {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
            request.method = .POST
            request.headers.add(name: "x-goog-api-key", value: proxyKey)
            request.body = .bytes(ByteBuffer(string: #"{"contents":[{"parts":[{"text":"hi"}]}]}"#))
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(300))
            var body = response.body.makeAsyncIterator()
            while try await body.next() != nil {}
        }
        defer { reader.cancel() }
        let database = try DatabaseQueue(path: ws.path + "/gateway.db")
        try await waitUntil("the running stream's row in streams_in_flight") {
            try await database.read { db in
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM streams_in_flight WHERE response_bytes > 0 AND total_tokens > 0")
            } == 1
        }
        first.kill()
        #expect(await first.waitForExit(timeout: patience) != nil)
        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") } == 0)

        let second = try await ServeProcess(arguments, in: ws.path)
        defer { second.kill() }
        #expect(await second.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil)
        #expect(second.stderr.contains("streams interrupted when the gateway last stopped"))
        let row = try #require(try database.read { db in try Row.fetchOne(db, sql: "SELECT * FROM requests") })
        #expect(row["outcome"] as String == "interrupted")
        #expect(row["is_stream"] as Bool == true)
        #expect(row["model"] as String? == "gemini-2.5-flash")
        #expect(row["key_fingerprint"] as String? == Secret.fingerprint(secrets[0]))
        #expect((row["upstream_url"] as String?)?.hasPrefix("http://127.0.0.1:") == true)
        #expect((row["response_bytes"] as Int) > 0)
        #expect((row["total_tokens"] as Int) >= 11, "the running total Google had sent")
        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM streams_in_flight") } == 0)
        #expect(try await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM attempts") } == 1)
        second.terminate()
        #expect(await second.waitForExit(timeout: patience) == 0)
        #expect(!second.stderr.contains(secrets[0]) && !second.stderr.contains(proxyKey))
    }

    @Test func withNoUpstreamGoogleIsTheUpstreamAndATokenIsNotMadeTwice() async throws {
        let ws = Workspace()
        ws.createDatabase()
        #expect(try await ws.run("clients", "add", "ops").status == 0)
        let port = try freePort()
        let serve = try await ServeProcess(["serve", "--host", "127.0.0.1", "--port", "\(port)"], in: ws.path)
        defer { serve.kill() }
        #expect(await serve.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil)
        serve.terminate()
        #expect(await serve.waitForExit(timeout: patience) == 0)
        #expect(!serve.stdout.contains("gw-"), "a client token exists, so none is made")
        let upstreams = try await ws.run("upstreams", "list", "--json")
        #expect(upstreams.stdout.contains("https://generativelanguage.googleapis.com"))
    }

    /// No secret at any log level: at trace, the settings printed at start, the service group's
    /// lines at start and at shutdown, a reload and the requests show the proxy key, the admin
    /// token and the keys only as fingerprints.
    @Test func traceLogsShowNoSecret() async throws {
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        defer { Task { await fake.stop() } }
        ws.write("api_keys.txt", "\(secrets[0])\n\(secrets[1]) proj\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        let proxyKey = "gw-proxy-key-of-the-trace-test-0123456789"
        let adminToken = "admin-token-of-the-trace-test-0123456789"
        let port = try freePort()
        let serve = try await ServeProcess(
            ["serve", "--host", "127.0.0.1", "--port", "\(port)", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt",
             "--log-level", "trace", "--proxy-key", proxyKey],
            in: ws.path, environment: ["GEMINI_GATEWAY_ADMIN_TOKEN": adminToken]
        )
        defer { serve.kill() }
        #expect(await serve.waitForStderr(timeout: patience) { $0.contains("Server started") } != nil)

        let client = HTTPClient.shared
        func get(_ path: String, _ headers: [(String, String)]) async throws -> Int {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response = try await client.execute(request, timeout: .seconds(60))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        #expect(try await get("/v1beta/models?key=\(proxyKey)", []) == 200)
        #expect(try await get("/v1beta/models", [("x-goog-api-key", proxyKey)]) == 200)
        #expect(try await get("/metrics", [("authorization", "Bearer \(adminToken)")]) == 200)
        #expect(try await get("/readyz?key=\(adminToken)", []) == 200)
        serve.hangUp()
        #expect(await serve.waitForStderr(timeout: patience) { $0.contains("reloaded settings") } != nil)
        serve.terminate()
        #expect(await serve.waitForExit(timeout: patience) == 0)

        let output = serve.stdout + serve.stderr
        for secret in secrets + [proxyKey, adminToken] {
            #expect(!output.contains(secret), "a secret in the log at trace")
        }
        // The settings were printed, the tokens as fingerprints; the service group named its services.
        let settings = try #require(serve.stderr.split(separator: "\n").first { $0.contains(" settings ") || $0.hasSuffix(" settings") || $0.contains("settings=") })
        #expect(settings.contains("proxyKey=fingerprint:\(Secret.fingerprint(proxyKey))"), "\(settings)")
        #expect(settings.contains("adminToken=fingerprint:\(Secret.fingerprint(adminToken))"), "\(settings)")
        #expect(serve.stderr.contains("HangupReloader"))
    }

    @Test func badSettingsAreUsageErrors() async throws {
        let ws = Workspace()
        #expect(try await ws.run("serve", "--port", "70000").status == 64)
        #expect(try await ws.run("serve", "--max-attempts", "0").status == 64)
        #expect(try await ws.run("serve", "--log-level", "loud").status == 64)
        let negative = try await ws.run("serve", "--max-in-flight=-1")
        #expect(negative.status == 64)
        #expect(negative.stderr.contains("--max-in-flight must be 0 (no limit) or more"), "\(negative.stderr)")
        let notANumber = try await ws.run("serve", environment: ["GEMINI_GATEWAY_MAX_IN_FLIGHT": "lots"])
        #expect(notANumber.status == 64)
        #expect(notANumber.stderr.contains("GEMINI_GATEWAY_MAX_IN_FLIGHT"))
        for url in ["gemini.example.com", "https://", "https://gw.example.com/\r\nX-Injected: 1", "https://gw.example.com/a b"] {
            let refused = try await ws.run("serve", "--public-url", url)
            #expect(refused.status == 64, "\(url)")
            #expect(refused.stderr.contains("--public-url must be"), "\(url)")
        }
        let fromEnv = try await ws.run("serve", environment: ["GEMINI_GATEWAY_PORT": "eighty"])
        #expect(fromEnv.status == 64)
        #expect(fromEnv.stderr.contains("GEMINI_GATEWAY_PORT"))
        let missing = try await ws.run("serve", "--keys", "nope.txt")
        #expect(missing.status == 66)
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A running `gemini-gateway` process whose output is collected as it comes.
final class ServeProcess: Sendable {
    private let child: ChildProcess

    init(_ arguments: [String], in directory: String, environment: [String: String] = [:]) async throws {
        child = try await CLI.start(arguments, in: directory, environment: environment)
    }

    var stdout: String { child.stdout }
    var stderr: String { child.stderr }

    /// The first stdout line matching `predicate`, waiting up to `timeout` seconds for it.
    func waitForStdout(timeout: Double, _ predicate: (String) -> Bool) async -> String? {
        await child.firstLine(of: .stdout, timeout: timeout, where: predicate)
    }

    func waitForStderr(timeout: Double, _ predicate: (String) -> Bool) async -> String? {
        await child.firstLine(of: .stderr, timeout: timeout, where: predicate)
    }

    func terminate() { child.signal(SIGTERM) }

    /// SIGHUP, as `systemctl reload` sends it.
    func hangUp() { child.signal(SIGHUP) }

    /// The exit status, or nil if it did not exit in time.
    func waitForExit(timeout: Double) async -> Int32? {
        await child.waitForExit(timeout: timeout)
    }

    func kill() { child.signal(SIGKILL) }
}
