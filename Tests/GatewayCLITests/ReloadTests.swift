import AsyncHTTPClient
import FakeGemini
import Foundation
import Glibc
import GRDB
import NIOCore
import TestSupport
import Testing

/// `serve --config FILE` and SIGHUP (`systemctl reload`), with the real binary.
@Suite struct ReloadTests {
    @Test func sighupAppliesTheSettingsFileAndReimportsTheKeyFile() async throws {
        let ws = Workspace()
        let fake = try await FakeGemini.start()
        defer { Task { await fake.stop() } }
        ws.write("api_keys.txt", "\(secrets[0])\n")
        ws.write("proxy_urls.txt", "\(fake.baseURL)\n")
        let port = try freePort()
        func settings(admin: String, proxyKey: String, attempts: Int, port: Int) -> String {
            """
            # written by the test
            GEMINI_GATEWAY_HOST=127.0.0.1
            GEMINI_GATEWAY_PORT=\(port)
            GEMINI_GATEWAY_ADMIN_TOKEN="\(admin)"
            GEMINI_GATEWAY_PROXY_KEY=\(proxyKey)
            GEMINI_GATEWAY_KEYS_FILE=api_keys.txt
            GEMINI_GATEWAY_UPSTREAMS_FILE=proxy_urls.txt
            GEMINI_GATEWAY_MAX_ATTEMPTS=\(attempts)
            GEMINI_GATEWAY_LOG_LEVEL=info

            """
        }
        ws.write("gateway.env", settings(admin: "admin-one-0123456789", proxyKey: "client-one-0123456789", attempts: 5, port: port))
        let serve = try await ServeProcess(["serve", "--config", "gateway.env"], in: ws.path)
        defer { serve.kill() }
        #expect(await serve.waitForStderr(timeout: 120) { $0.contains("Server started") } != nil, "\(serve.stderr)")

        let base = "http://127.0.0.1:\(port)"
        #expect(try await status(base + "/metrics", bearer: "admin-one-0123456789") == 200)
        #expect(try await status(base + "/v1beta/models/gemini-2.5-flash:generateContent", apiKey: "client-one-0123456789") == 200)

        // New tokens, fewer attempts, a second key and a new port (which waits for a restart).
        ws.write("gateway.env", settings(admin: "admin-two-0123456789", proxyKey: "client-two-0123456789", attempts: 1, port: port + 1))
        ws.write("api_keys.txt", "\(secrets[0])\n\(secrets[1])\n")
        serve.hangUp()
        let reloaded = await serve.waitForStderr(timeout: 60) { $0.contains("reloaded settings") }
        let line = try #require(reloaded, "\(serve.stderr)")
        #expect(line.contains("admin-token") && line.contains("proxy-key") && line.contains("max-attempts"), "\(line)")
        #expect(line.contains("after_restart=port"), "\(line)")
        #expect(try await status(base + "/metrics", bearer: "admin-two-0123456789") == 200)
        #expect(try await status(base + "/metrics", bearer: "admin-one-0123456789") == 401)
        #expect(try await status(base + "/v1beta/models/gemini-2.5-flash:generateContent", apiKey: "client-one-0123456789") == 401)
        let keys = try await DatabaseQueue(path: ws.path + "/gateway.db").read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM keys")! }
        #expect(keys == 2)

        // One try only now: a 500 is not retried on the other key.
        fake.setRules([.init(times: 1, reply: .fixture("500-internal"))])
        #expect(try await status(base + "/v1beta/models/gemini-2.5-flash:generateContent", apiKey: "client-two-0123456789") == 500)

        // A broken file changes nothing and says where it is broken.
        ws.write("gateway.env", "GEMINI_GATEWAY_ADMIN_TOKEN=x\nGEMINI_GATEWAY_TYPO=1\n")
        serve.hangUp()
        let refused = await serve.waitForStderr(timeout: 60) { $0.contains("the settings cannot be read") }
        #expect(refused?.contains("line 2: unknown setting GEMINI_GATEWAY_TYPO") == true, "\(serve.stderr)")
        #expect(try await status(base + "/metrics", bearer: "admin-two-0123456789") == 200)

        serve.terminate()
        #expect(await serve.waitForExit(timeout: 120) == 0)
        for secret in secrets + ["admin-one-0123456789", "admin-two-0123456789", "client-one-0123456789", "client-two-0123456789"] {
            #expect(!serve.stdout.contains(secret) && !serve.stderr.contains(secret))
        }
    }

    @Test func aBrokenSettingsFileStopsTheStartWithItsLine() async throws {
        let ws = Workspace()
        ws.write("gateway.env", "GEMINI_GATEWAY_PORT=8001\nGEMINI_GATEWAY_PROT=8002\n")
        let typo = try await ws.run("serve", "--config", "gateway.env")
        #expect(typo.status == 65)
        #expect(typo.stderr.contains("gateway.env") && typo.stderr.contains("line 2: unknown setting GEMINI_GATEWAY_PROT"), "\(typo.stderr)")
        // A removed setting is refused like a typo (as its removed flag is), saying what to do.
        ws.write("old.env", "GEMINI_GATEWAY_PORT=8001\nGEMINI_GATEWAY_UPSTREAM_TRANSPORT=nio\n")
        let removed = try await ws.run("serve", "--config", "old.env")
        #expect(removed.status == 65)
        #expect(removed.stderr.contains("line 2: GEMINI_GATEWAY_UPSTREAM_TRANSPORT is no longer a setting"), "\(removed.stderr)")
        #expect(removed.stderr.contains("delete the line"), "\(removed.stderr)")
        #expect(try await ws.run("serve", "--upstream-transport", "nio").status == 64)
        let missing = try await ws.run("serve", "--config=nowhere.env")
        #expect(missing.status == 66)
        ws.write("bad-port.env", "GEMINI_GATEWAY_PORT=eighty\n")
        let badValue = try await ws.run("serve", "--config", "bad-port.env")
        #expect(badValue.status == 64)
        #expect(badValue.stderr.contains("GEMINI_GATEWAY_PORT"))
    }

    private func status(_ url: String, bearer: String? = nil, apiKey: String? = nil) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        if let bearer { request.headers.add(name: "authorization", value: "Bearer \(bearer)") }
        if let apiKey {
            request.method = .POST
            request.headers.add(name: "x-goog-api-key", value: apiKey)
            request.body = .bytes(ByteBuffer(string: #"{"contents":[{"parts":[{"text":"hi"}]}]}"#))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        _ = try await response.body.collect(upTo: 4 << 20)
        return Int(response.status.code)
    }
}

/// The files in etc/ an operator installs as they are.
@Suite struct DeploymentFilesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func theExampleSettingsFileIsReadAsItIs() async throws {
        let ws = Workspace()
        let example = Self.root.appendingPathComponent("etc/gemini-gateway.env").path
        // --help after --config: the file is read (a problem in it would exit 65) and nothing starts.
        let result = try await ws.run("serve", "--config", example, "--help")
        #expect(result.status == 0, "\(result.all)")
        #expect(result.stdout.contains("--config"))
    }

    static let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// `systemd-analyze verify` on the unit, its binary pointed at the one just built.
    @Test(.enabled(if: systemdAnalyze != nil, "systemd-analyze is not installed"))
    func theSystemdUnitVerifies() async throws {
        let ws = Workspace()
        let unit = try String(contentsOf: Self.root.appendingPathComponent("etc/systemd/gemini-gateway.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/gemini-gateway serve --config /etc/gemini-gateway/gemini-gateway.env"))
        #expect(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))
        for hardening in ["DynamicUser=yes", "StateDirectory=gemini-gateway", "ProtectSystem=strict", "NoNewPrivileges=yes"] {
            #expect(unit.contains(hardening), "\(hardening)")
        }
        let path = ws.write("gemini-gateway.service", unit.replacingOccurrences(of: "/usr/local/bin/gemini-gateway", with: CLI.executable.path))
        let verify = try await ChildProcess(try #require(Self.systemdAnalyze), ["verify", path], environment: ProcessInfo.processInfo.environment)
        let status = await verify.waitForExit(timeout: patience)
        let text = verify.stdout + verify.stderr
        #expect(status == 0, "\(text)")
        #expect(!text.contains("gemini-gateway.service:"), "warnings about the unit: \(text)")
    }
}
