import Foundation
import TestSupport
import Testing

/// `clients add/set/list` with limits, `prices import/list` and `report spend`, run as an
/// operator runs them: the option names scripts rely on, what they store, and clear usage errors
/// (exit 64) that change nothing (issue 24).
@Suite struct LimitsCLITests {
    /// `clients list --json`, by client name.
    static func listed(_ ws: Workspace) async throws -> [String: [String: Any]] {
        let result = try await ws.run("clients", "list", "--json")
        try #require(result.status == 0, "\(result.all)")
        let array = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: array.map { ($0["name"] as? String ?? "", $0) })
    }

    static func limits(_ ws: Workspace, _ name: String) async throws -> [String: Any] {
        let client = try #require(try await listed(ws)[name], "client \(name) listed")
        return try #require(client["limits"] as? [String: Any])
    }

    @Test func everyLimitIsSetChangedAndRemovedByItsOptionName() async throws {
        let ws = Workspace()
        ws.createDatabase()
        let added = try await ws.run(
            "clients", "add", "app1", "--rpm", "60", "--rpd", "5000", "--tpm", "200000", "--tpd", "5000000",
            "--daily-budget", "5", "--monthly-budget", "100", "--max-concurrent", "8", "--models", "gemini-2.5-flash*",
            "--expires", "2027-06-30")
        try #require(added.status == 0, "\(added.all)")
        // The token is printed once, on a line of its own, and is never in a listing.
        let token = try #require(added.stdout.split(separator: "\n").map(String.init).first { $0.count >= 32 && !$0.contains(" ") })
        let list = try await ws.run("clients", "list")
        #expect(!list.all.contains(token))
        #expect(list.stdout.contains("rpm 0/60"), "\(list.stdout)")
        #expect(list.stdout.contains("day $0.00/$5.00") || list.stdout.contains("day $0/$5"), "\(list.stdout)")

        var limits = try await Self.limits(ws, "app1")
        #expect(limits["rpm"] as? Int == 60)
        #expect(limits["rpd"] as? Int == 5000)
        #expect(limits["tpm"] as? Int == 200_000)
        #expect(limits["tpd"] as? Int == 5_000_000)
        #expect(limits["daily_budget_micros"] as? Int == 5_000_000)
        #expect(limits["monthly_budget_micros"] as? Int == 100_000_000)
        #expect(limits["max_concurrent"] as? Int == 8)
        #expect(limits["models"] as? [String] == ["gemini-2.5-flash*"])
        let expires = try #require(limits["expires_at"] as? String)
        #expect(expires.hasPrefix("2027-06-30") || expires.hasPrefix("2027-07-01"), "valid through that UTC day: \(expires)")

        // One limit changed, the others kept; then one removed.
        #expect(try await ws.run("clients", "set", "app1", "--rpm", "120").status == 0)
        limits = try await Self.limits(ws, "app1")
        #expect(limits["rpm"] as? Int == 120)
        #expect(limits["tpd"] as? Int == 5_000_000)
        #expect(try await ws.run("clients", "set", "app1", "--no-rpm", "--no-models", "--daily-budget", "0.25").status == 0)
        limits = try await Self.limits(ws, "app1")
        #expect(limits["rpm"] == nil)
        #expect(limits["models"] == nil)
        #expect(limits["daily_budget_micros"] as? Int == 250_000)
        #expect(limits["max_concurrent"] as? Int == 8)
    }

    @Test func badLimitsAreUsageErrorsThatChangeNothing() async throws {
        let ws = Workspace()
        ws.createDatabase()
        #expect(try await ws.run("clients", "add", "app1", "--rpm", "10").status == 0)
        let bad: [[String]] = [
            ["clients", "add", "app2", "--rpm", "0"],
            ["clients", "add", "app2", "--rpm", "ten"],
            ["clients", "add", "app2", "--daily-budget", "five"],
            ["clients", "add", "app2", "--daily-budget", "0.0000001"],
            ["clients", "add", "app2", "--expires", "someday"],
            ["clients", "add", "app2", "--models", ","],
            ["clients", "add", "app2", "--no-rpm"],
            ["clients", "set", "app1"],
            ["clients", "set", "app1", "--rpm", "5", "--no-rpm"],
            ["clients", "set", "app1", "--max-concurrent", "-1"],
        ]
        for arguments in bad {
            let result = try await CLI.run(arguments, in: ws.path)
            #expect(result.status == 64, "\(arguments): \(result.all)")
            #expect(!result.stderr.isEmpty, "\(arguments) says why")
        }
        let clients = try await Self.listed(ws)
        #expect(Set(clients.keys) == ["app1"], "no refused command added a client")
        #expect((clients["app1"]?["limits"] as? [String: Any])?["rpm"] as? Int == 10, "nor changed one")
        // A client that does not exist is an error, not a silent no-op.
        let missing = try await ws.run("clients", "set", "nobody", "--rpm", "1")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nobody"), "\(missing.all)")
    }

    @Test func pricesImportListAndRefuseABadFile() async throws {
        let ws = Workspace()
        ws.createDatabase()
        let shipped = try await ws.run("prices", "import")
        try #require(shipped.status == 0, "\(shipped.all)")
        let list = try await ws.run("prices", "list", "--json")
        try #require(list.status == 0, "\(list.all)")
        let prices = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        let flash = try #require(prices.first { $0["model"] as? String == "gemini-2.5-flash" })
        #expect(flash["input"] as? Int != nil, "prices are stored as integer micro-dollars per 1M tokens: \(flash)")

        // The operator's override replaces one model's row and keeps the rest.
        ws.write("mine.csv", """
            model,input,cached_input,output,thinking,long_context_threshold,input_long,cached_input_long,output_long,thinking_long,audio_input
            gemini-2.5-flash,1.00,0.10,2.00,3.00,,,,,,
            """)
        #expect(try await ws.run("prices", "import", "mine.csv").status == 0)
        let after = try await ws.run("prices", "list", "--json")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == prices.count)
        #expect(rows.first { $0["model"] as? String == "gemini-2.5-flash" }?["input"] as? Int == 1_000_000)

        // A malformed file and a missing one: clear errors, nothing imported.
        ws.write("bad.csv", "model,input\ngemini-x,not-a-price\n")
        let bad = try await ws.run("prices", "import", "bad.csv")
        #expect(bad.status == 65, "\(bad.all)")
        #expect(bad.stderr.contains("bad.csv"), "\(bad.all)")
        #expect(try await ws.run("prices", "import", "nowhere.csv").status == 66)
        let unchanged = try await ws.run("prices", "list", "--json")
        #expect(unchanged.stdout == after.stdout)
    }

    @Test func spendReportOnAnEmptyLogHasItsColumnsInEveryFormat() async throws {
        let ws = Workspace()
        ws.createDatabase()
        let csv = try await ws.run("report", "spend", "--format", "csv")
        try #require(csv.status == 0, "\(csv.all)")
        let header = csv.stdout.split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.contains("cost_usd") && header.contains("list_cost_usd"), "\(header)")
        let json = try await ws.run("report", "spend", "--format", "json")
        #expect(json.status == 0, "\(json.all)")
        #expect(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) is [Any])
        #expect(try await ws.run("report", "spend", "--by", "galaxy").status == 64)
    }
}
