import FakeGemini
import Foundation
import GatewayCore
import GatewayStore
import GRDB
import TestSupport
import Testing

/// Issue 24: known usage from the fake upstream gives exact micro-dollars in the request rows
/// and in the spend report, at the shipped prices (etc/prices.csv): cached and thinking tokens,
/// the long-context tier, a free-tier key, and a model without a price.
@Suite struct SpendTests {
    @Test func audioPromptTokensCostTheAudioPrice() async throws {
        var settings = FakeGemini.Settings()
        settings.promptTokenCount = 1_300
        settings.audioPromptTokenCount = 1_000
        settings.candidatesTokenCount = 7
        settings.thoughtsTokenCount = 5
        try await withGateway(keys: [testKey("a")], settings: settings) { gateway, _ in
            #expect(try await gateway.generate(model: "gemini-2.5-flash").status == 200)
            #expect(try await gateway.generate(model: "gemini-2.5-pro").status == 200)
            let rows = try await gateway.requestRows(count: 2)
            // flash: 300 text x $0.30 + 1,000 audio x $1.00 + 7 x $2.50 + 5 x $2.50 per 1M.
            #expect(rows[0]["cost_micros"] as Int64 == 90 + 1_000 + 17 + 13)
            // pro prices audio as text: 1,300 x $1.25 + 12 x $10 = 1,625 + 120.
            #expect(rows[1]["cost_micros"] as Int64 == 1_625 + 120)
        }
    }

    @Test func knownUsageCostsExactMicroDollarsInRowsAndReports() async throws {
        var settings = FakeGemini.Settings()
        settings.promptTokenCount = 250_000  // over gemini-2.5-pro's 200k threshold
        settings.cachedContentTokenCount = 50_000
        settings.candidatesTokenCount = 1_000
        settings.thoughtsTokenCount = 2_000
        try await withGateway(keys: [testKey("a")], settings: settings) { gateway, _ in
            // pro, long context: 200,000 x $2.50 + 50,000 x $0.25 + 1,000 x $15 + 2,000 x $15 per 1M.
            let pro: Int64 = 500_000 + 12_500 + 15_000 + 30_000
            // flash, one tier: 200,000 x $0.30 + 50,000 x $0.03 + 1,000 x $2.50 + 2,000 x $2.50.
            let flash: Int64 = 60_000 + 1_500 + 2_500 + 5_000
            #expect(try await gateway.generate(model: "gemini-2.5-pro").status == 200)
            #expect(try await gateway.generate(model: "gemini-2.5-flash").status == 200)
            #expect(try await gateway.generate(model: "gemini-unpriced-9").status == 200)
            _ = try await gateway.requestRows(count: 3)
            // The key becomes free-tier: the same call costs nothing, at list price all the same.
            try gateway.database.setFreeTier(true, key: testKey("a"), project: nil)
            try await gateway.waitForReload()
            #expect(try await gateway.generate(model: "gemini-2.5-flash").status == 200)
            let rows = try await gateway.requestRows(count: 4)
            func row(_ i: Int) -> (Int64, Int64, String) {
                (rows[i]["cost_micros"], rows[i]["list_cost_micros"], rows[i]["price_status"])
            }
            #expect(row(0) == (pro, pro, "priced"))
            #expect(row(1) == (flash, flash, "priced"))
            #expect(row(2) == (0, 0, "unpriced"))
            #expect(row(3) == (0, flash, "free_tier"))

            let range = ReportRange.lastDays(1)
            let byModel = try gateway.database.spendReport(by: .model, range: range, perDay: false)
            let micros = Dictionary(uniqueKeysWithValues: byModel.rows.map { values in
                (values[0].description, (values[byModel.columns.firstIndex(of: "cost_micros")!].integer,
                                         values[byModel.columns.firstIndex(of: "list_cost_micros")!].integer,
                                         values[byModel.columns.firstIndex(of: "unpriced_requests")!].integer))
            })
            #expect(micros["gemini-2.5-pro"]! == (pro, pro, 0))
            #expect(micros["gemini-2.5-flash"]! == (flash, 2 * flash, 0))
            #expect(micros["gemini-unpriced-9"]! == (0, 0, 1), "flagged")
            let byClient = try gateway.database.spendReport(by: .client, range: range, perDay: false)
            #expect(byClient.rows.count == 1)
            let costUSD = byClient.rows[0][byClient.columns.firstIndex(of: "cost_usd")!].real
            #expect(costUSD == Double(pro + flash) / 1_000_000)
            let byKey = try gateway.database.spendReport(by: .key, range: range, perDay: false)
            #expect(byKey.rows.first?[byKey.columns.firstIndex(of: "saved_usd")!].real == Double(flash) / 1_000_000)
            // The views say the same.
            let view = try gateway.database.read { db in
                try Row.fetchOne(db, sql: "SELECT SUM(cost_micros) AS c, SUM(list_cost_micros) AS l FROM spend_by_day")
            }
            #expect(view?["c"] as Int64? == pro + flash)
            #expect(view?["l"] as Int64? == pro + 2 * flash)
            // The status page's spend per client over the last 30 days: today's column.
            let spend = try await gateway.database.statusPageData().spend
            #expect(spend.map(\.client) == ["tests"])
            #expect(spend.first?.costMicros.last == pro + flash)
            #expect(spend.first?.costMicros.count == 30)
        }
    }
}
