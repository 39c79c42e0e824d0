import Foundation
import GatewayCore
import GatewayStore
import GatewayStorePostgres
import Logging
import Testing

/// The same traffic and operator changes written to a SQLite store and to a PostgreSQL store give
/// the same reports, lists, `status` and status page: the queries are written once
/// (`ReportSpec`, `StoreLists`, `StatusPageQueries`) and each store runs them in its dialect.
@Suite struct ReportParityTests {
    static let day: TimeInterval = 86_400
    /// A whole second (SQLite keeps milliseconds, PostgreSQL microseconds: whole seconds are the
    /// same in both), so that every time written below is one too.
    static let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))

    @Test func everyReportListAndPageIsTheSameOnBothStores() async throws {
        guard let location = try await freshDatabase() else { return }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("parity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sqlite = try AppDatabase.open(path: directory.appendingPathComponent("gateway.db").path)
        try await Self.fill(sqlite)
        try await PostgresStore.with(location, logger: Logger(label: "parity")) { postgres in
            try await postgres.registerInstance(name: "parity")
            try await Self.fill(postgres)
            try await Self.compare(sqlite, postgres)
        }
    }

    // MARK: The same data in both

    static let keyFile = """
        AIzaSyFAKE-test-key-number-one-00000001 proj-a
        AIzaSyFAKE-test-key-number-two-00000002 proj-a
        AQ.FAKE_test_key_number_three_000000000000000003 proj-b
        AIzaSyFAKE-test-key-number-four-0000004

        """

    static func fill(_ store: any ServingStore & OperatorStore) async throws {
        let now = Self.now
        _ = try await store.importLists(
            keys: ListFile.parseKeys(Data(keyFile.utf8)),
            upstreams: ListFile.parseUpstreams(Data("https://relay.example.com\nhttps://generativelanguage.googleapis.com\n".utf8)),
            now: now - 5 * day)
        _ = try await store.importShippedPricesIfEmpty(now: now - 5 * day)
        _ = try await store.addClient(name: "alice", limits: ClientLimits(), now: now - 5 * day)
        var limits = ClientLimits()
        limits.rpm = 60
        limits.dailyBudgetMicros = 5_000_000
        _ = try await store.addClient(name: "Bob", limits: limits, now: now - 5 * day)
        _ = try await store.addUpstream("https://spare.example.com", now: now - 4 * day)
        _ = try await store.setFreeTier(true, key: nil, project: "proj-b", now: now - 4 * day)
        var change = ClientLimitsChange()
        change.tpm = .some(100_000)
        _ = try await store.setClientLimits("alice", change, now: now - 4 * day)
        for batch in stride(from: 0, to: 180, by: 60) {
            try await store.insert((batch..<(batch + 60)).map(entry), streams: [])
        }
        try await store.apply([
            .keyCooldown(KeyCooldown(keyID: 1, model: "gemini-2.5-flash", until: now + 3_600, reason: "RATE_LIMIT_EXCEEDED", quotaID: "GenerateRequestsPerMinutePerProjectPerModel")),
            .projectCooldown(ProjectCooldown(project: "proj-b", model: "gemini-2.5-pro", until: now + 7_200, reason: "RATE_LIMIT_EXCEEDED")),
            .keyThrottled(id: 1, at: now - 60, streak: 2),
            .keyDeleted(id: 2, reason: "API_KEY_INVALID", at: now - 600),
            .upstreamFailed(id: 1, until: now + 600, streak: 3, reason: "connection refused", at: now - 30),
        ], lastUsed: LastUsedBatch(keys: [1: now - 60, 3: now - 120]), now: now)
        _ = try await store.setKeyState("4", to: .disabled, reason: nil, now: now - 300)
        _ = try await store.setUpstreamState("3", to: .disabled, now: now - 200)
    }

    /// Request `index` of 180, one every 20 minutes back from now (2.5 days): clients, models,
    /// outcomes, keys, upstreams, latencies and costs vary with it.
    static func entry(_ index: Int) -> RequestLogEntry {
        let started = now - Double(index) * 1_200 - Double(index % 7)
        var entry = RequestLogEntry(requestId: String(format: "parity-%05d", index), startedAt: started, method: "POST", endpoint: "generateContent")
        entry.clientName = ["alice", "Bob", nil, "alice"][index % 4]
        entry.clientId = entry.clientName.map { $0 == "alice" ? 1 : 2 }
        entry.model = ["gemini-2.5-flash", "gemini-2.5-pro", nil, "a-model"][index % 4 == 3 ? 3 : index % 3]
        entry.isStream = index % 5 == 0
        let outcome: RequestOutcome = [.success, .success, .throttled, .success, .clientError][index % 5]
        entry.outcome = outcome
        entry.status = outcome == .success ? 200 : outcome == .throttled ? 429 : 400
        let key = Int64(index % 3 + 1), upstream = Int64(index % 2 + 1)
        entry.keyId = key
        entry.upstreamId = upstream
        entry.latencyMs = 80 + Double(index % 13) * 17.3
        entry.ttfbMs = index % 3 == 0 ? nil : 20 + Double(index % 11) * 3.1
        entry.requestBytes = 300 + index
        entry.responseBytes = 1_000 + 7 * index
        entry.promptTokens = 10 * index
        entry.candidatesTokens = 3 * index + 1
        entry.thoughtsTokens = index % 4
        entry.totalTokens = entry.promptTokens + entry.candidatesTokens + entry.thoughtsTokens
        entry.usageStatus = outcome == .success ? .complete : .none
        entry.cost = RequestCost(
            costMicros: key == 3 ? 0 : Int64(137 * index), listCostMicros: Int64(137 * index),
            status: index % 9 == 4 ? .unpriced : .priced)
        var verdicts = outcome == .throttled ? ["throttled", "throttled"] : ["success"]
        if index % 6 == 1 { verdicts.insert("upstream_failure", at: 0) }
        entry.attempts = verdicts.enumerated().map { offset, verdict in
            AttemptRow(
                attempt: offset + 1, startedAt: started, keyId: Int64((index + offset) % 3 + 1), upstreamId: Int64((index + offset) % 2 + 1),
                status: verdict == "success" ? 200 : 429, verdict: verdict, latencyMs: 40 + Double((index * 7 + offset) % 97) * 2.9)
        }
        return entry
    }

    // MARK: Comparing

    static func compare(_ sqlite: AppDatabase, _ postgres: PostgresStore) async throws {
        let midnight = Date(timeIntervalSince1970: (now.timeIntervalSince1970 / day).rounded(.down) * day)
        let ranges: [(String, ReportRange)] = [
            ("whole days", ReportRange(since: midnight - 3 * day, until: midnight)),
            ("within today", ReportRange(since: midnight + 60, until: now)),
            ("cut at both ends", ReportRange(since: midnight - 2 * day + 5_000, until: now)),
            ("no traffic", ReportRange(since: midnight - 30 * day, until: midnight - 20 * day)),
        ]
        var specs: [(String, ReportSpec)] = [("health", .health()), ("health problems", .health(problemsOnly: true))]
        for (name, range) in ranges {
            for dimension in UsageDimension.allCases {
                specs.append(("usage \(dimension) \(name)", .usage(dimension, range)))
                specs.append(("usage \(dimension) totals \(name)", .usage(dimension, range, perDay: false)))
            }
            specs.append(("usage client alice \(name)", .usage(.client, range, ReportFilter(client: "alice"))))
            specs.append(("usage model - \(name)", .usage(.model, range, ReportFilter(model: "-"), perDay: false)))
            specs.append(("keys \(name)", .keys(range)))
            specs.append(("upstreams \(name)", .upstreams(range)))
            specs.append(("upstreams pro \(name)", .upstreams(range, model: "gemini-2.5-pro")))
            for dimension in SpendDimension.allCases {
                specs.append(("spend \(dimension) \(name)", .spend(dimension, range)))
                specs.append(("spend \(dimension) totals \(name)", .spend(dimension, range, perDay: false)))
            }
        }
        var rowsSeen = 0
        for (name, spec) in specs {
            let expected = try await sqlite.report(spec)
            let got = try await postgres.report(spec)
            rowsSeen += expected.rows.count
            #expect(got.columns == expected.columns, "\(name): columns")
            #expect(got.tableColumns == expected.tableColumns, "\(name): table columns")
            #expect(got.widenedDays == expected.widenedDays, "\(name): widened days")
            #expect(got.rows.count == expected.rows.count, "\(name): row count")
            for (index, (a, b)) in zip(expected.rows, got.rows).enumerated() where a != b {
                Issue.record("\(name) row \(index): SQLite \(a) PostgreSQL \(b)")
            }
        }
        #expect(rowsSeen > 150, "the reports have rows to compare")
        let health = try await sqlite.report(.health())
        #expect(health.rows.contains { $0.contains(.text("cooling")) }, "something is cooling")

        #expect(try await postgres.status(now: now) == sqlite.status(now: now))
        #expect(try await postgres.listKeys(now: now, states: Set(KeyRecord.State.allCases)) == sqlite.listKeys(now: now))
        #expect(try await postgres.listKeys(now: now, states: [.active]) == sqlite.listKeys(now: now, states: [.active]))
        let clients = try sqlite.listClients(now: now)
        #expect(clients.count == 2 && clients.allSatisfy { $0.requests > 0 })
        // Tokens are random: their tails differ, all else is the same.
        func withoutTails(_ listed: [ClientListing]) -> [ClientListing] { listed.map { var c = $0; c.tokenTail = ""; return c } }
        #expect(withoutTails(try await postgres.listClients(now: now)) == withoutTails(clients))
        let upstreams = try sqlite.listUpstreams(now: now)
        #expect(upstreams.count == 3 && upstreams[0].cooldownUntil != nil)
        #expect(try await postgres.listUpstreams(now: now) == upstreams)
        #expect(try await postgres.listPrices() == sqlite.listPrices())
        let check = try sqlite.keysToCheck(all: true, now: now).map { [$0.key.id: $0.secret] }
        #expect(try await postgres.keysToCheck(selectors: [], all: false, now: now).map(\.key) == sqlite.keysToCheck(now: now).map(\.key))
        #expect(try await postgres.keysToCheck(selectors: ["1"], all: false, now: now).map { [$0.key.id: $0.secret] } == [check[0]])

        let page = try await sqlite.statusPageData(now: now)
        #expect(page.total.requests > 0 && !page.keys.isEmpty && !page.spend.isEmpty)
        let pagePG = try await postgres.statusPageData(now: now)
        #expect(pagePG.keyCounts == page.keyCounts)
        #expect(pagePG.keys == page.keys)
        #expect(pagePG.upstreams == page.upstreams)
        #expect(pagePG.buckets == page.buckets)
        #expect(pagePG.models == page.models)
        #expect(pagePG.spend == page.spend)
        #expect(pagePG == page)
        #expect(try await postgres.keyCounts(now: now) == sqlite.keyCounts(now: now))
    }
}
