import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import TestSupport
import Testing

/// Issue 24: the official google-genai SDK (`Tests/sdk/sdk_limits.py`) as a client held to its
/// limits, through the gateway in front of the fake upstream. Skipped without the SDK's venv
/// (`GATEWAY_SDK_PYTHON`, set by scripts/test).
@Suite struct ClientLimitsSDKTests {
    static let script = SDKTests.repositoryRoot().appendingPathComponent("Tests/sdk/sdk_limits.py").path

    /// Runs sdk_limits.py with `token` and `arguments`; records its transcript on failure.
    static func sdk(_ gateway: GatewayHarness, token: String, _ arguments: [String]) async throws {
        let python = try #require(SDKTests.python)
        var environment = SDKTests.childEnvironment(gateway: gateway, settings: .init())
        environment["GATEWAY_TOKEN"] = token
        let result = try await runProcess(
            python, [script] + arguments, environment: environment, directory: SDKTests.repositoryRoot().path, timeout: 90)
        #expect(result.exitCode == 0 && result.stdout.contains("sdk_limits: ok"), "\(arguments):\n\(result.transcript)")
    }

    /// A client of the harness's database with `limits`, loaded by the running gateway.
    static func client(_ gateway: GatewayHarness, _ name: String, _ limits: ClientLimits) async throws -> String {
        let token = try gateway.database.addClient(name: name, limits: limits).token
        try await gateway.waitForReload()
        return token
    }

    @Test(.enabled(if: SDKTests.python != nil, "set by scripts/test"))
    func theFourthRequestWithinTheMinuteIsRefusedAndNoKeyIsCooled() async throws {
        try await withGateway(keys: [testKey("a"), testKey("b")], timeout: 150) { gateway, fakes in
            let token = try await Self.client(gateway, "app1", ClientLimits(rpm: 3))
            try await Self.sdk(gateway, token: token, ["rpm", "3"])
            #expect(fakes[0].received().count == 3, "the refused call never went upstream")
            let rows = try await gateway.requestRows(count: 4)
            let refused = rows.filter { $0["outcome"] as String? == "client_limit" }
            #expect(refused.count == 1)
            #expect(refused.first?["status"] as Int? == 429)
            #expect(refused.first?["error_reason"] as String? == "rpm")
            #expect(refused.first?["client_name"] as String? == "app1")
            #expect(refused.first?["attempt_count"] as Int? == 0)
            #expect(refused.first?["key_id"] as Int64? == nil, "no pair was picked")
            let cooldowns = try gateway.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM key_cooldowns") }
            #expect(cooldowns == 0, "no key cooled")
            #expect(gateway.gateway.pool.snapshot().coolingKeys == 0)
            let metrics = String(decoding: await gateway.gateway.metrics.exposition(), as: UTF8.self)
            #expect(metrics.contains(#"gemini_gateway_client_limit_refusals_total{client="app1",limit="rpm"} 1"#), "\(metrics)")
            #expect(!gateway.logs.all.contains { $0.contains(token) }, "the token in the log")
        }
    }

    @Test(.enabled(if: SDKTests.python != nil, "set by scripts/test"))
    func aClientLimitedToFlashIsRefusedPro() async throws {
        try await withGateway(keys: [testKey("a")], timeout: 150) { gateway, fakes in
            let token = try await Self.client(gateway, "flash-only", ClientLimits(models: ["gemini-2.5-flash*"]))
            try await Self.sdk(gateway, token: token, ["model", "gemini-2.5-pro"])
            #expect(fakes[0].received().map(\.path).allSatisfy { $0.contains("gemini-2.5-flash") })
            let rows = try await gateway.requestRows(count: 2)
            let refused = try #require(rows.first { $0["outcome"] as String? == "client_limit" })
            #expect(refused["status"] as Int? == 403)
            #expect(refused["error_reason"] as String? == "models")
            #expect(refused["model"] as String? == "gemini-2.5-pro")
        }
    }

    @Test(.enabled(if: SDKTests.python != nil, "set by scripts/test"))
    func anExpiredTokenIs401() async throws {
        try await withGateway(keys: [testKey("a")], timeout: 150) { gateway, fakes in
            let token = try await Self.client(gateway, "gone", ClientLimits(expiresAt: Date().addingTimeInterval(-60)))
            try await Self.sdk(gateway, token: token, ["expired"])
            #expect(fakes[0].received().isEmpty)
            let rows = try await gateway.requestRows(count: 1)
            #expect(rows.first?["status"] as Int? == 401)
            #expect(rows.first?["outcome"] as String? == "client_limit")
            #expect(rows.first?["error_reason"] as String? == "expires")
        }
    }

    /// A daily budget spent before a restart still refuses after it: the counters are rebuilt
    /// from the request log. Each flash call costs 330 micro-dollars here (1,000 prompt, 7
    /// candidates, 5 thoughts tokens at the shipped prices); the budget is 100.
    @Test(.enabled(if: SDKTests.python != nil, "set by scripts/test"))
    func aDailyBudgetHoldsAcrossARestart() async throws {
        // The budget is per UTC day: not within two minutes of midnight, where the restart could
        // start a new day.
        try await waitUntil("two minutes of the UTC day left", timeout: 180, every: .seconds(1)) {
            Int(Date().timeIntervalSince1970) % 86_400 < 86_400 - 120
        }
        var settings = FakeGemini.Settings()
        settings.promptTokenCount = 1_000
        let fake = try await FakeGemini.start(settings: settings)
        let first = try await GatewayHarness.start(keys: [testKey("a")], upstreams: [fake.baseURL])
        var second: GatewayHarness?
        do {
            let token = try await Self.client(first, "budgeted", ClientLimits(dailyBudgetMicros: 100))
            try await Self.sdk(first, token: token, ["budget"])
            try await first.stop()
            let rows = try first.database.read { db in
                try Row.fetchAll(db, sql: "SELECT outcome, cost_micros, error_reason FROM requests ORDER BY id")
            }
            #expect(rows.map { $0["outcome"] as String } == ["success", "client_limit"])
            #expect(rows.first?["cost_micros"] as Int64? == 330)
            #expect(rows.last?["error_reason"] as String? == "daily-budget")

            let restarted = try await GatewayHarness.start(keys: [], upstreams: [], directory: first.directory)
            second = restarted
            try await Self.sdk(restarted, token: token, ["refused", "daily-budget"])
            #expect(fake.received().count == 1, "only the first call went upstream")
        } catch {
            Issue.record(error)
        }
        try? await second?.stop()
        await fake.stop()
        first.removeFiles()
    }
}
