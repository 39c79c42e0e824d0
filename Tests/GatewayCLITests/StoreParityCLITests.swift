import Foundation
import TestSupport
import Testing

/// Every command that reads or changes the store works with `--store postgres://…` and prints what
/// it prints with a SQLite file, for the same operator changes (the numbers behind the reports are
/// compared row by row in `ReportParityTests`).
@Suite struct StoreParityCLITests {
    @Test func everyCommandPrintsTheSameOnBothStores() async throws {
        guard let store = try await SharedDatabase.make() else { return }
        let ws = Workspace()
        ws.write("api_keys.txt", "\(secrets[0]) proj-a\n\(secrets[1]) proj-a\n\(secrets[2])\n")
        ws.write("proxy_urls.txt", "https://relay.example.com/\n")
        let fourth = String(secrets[2].suffix(4))
        let commands: [[String]] = [
            ["import", "--keys", "api_keys.txt", "--upstreams", "proxy_urls.txt"],
            ["clients", "add", "alice", "--rpm", "60"],
            ["keys", "check"],
            ["keys", "set", "--free-tier", "--project", "proj-a"],
            ["keys", "set", "--no-free-tier", "1"],
            ["keys", "disable", fourth],
            ["upstreams", "add", "https://spare.example.com"],
            ["upstreams", "add", "https://spare.example.com"],
            ["upstreams", "disable", "https://spare.example.com"],
            ["upstreams", "restore", "2"],
            ["upstreams", "disable", "2"],
            ["clients", "set", "alice", "--tpm", "1000", "--no-rpm"],
            ["prices", "import"],
            ["keys", "list"], ["keys", "list", "--json"], ["keys", "list", "--state", "disabled"],
            ["clients", "list"], ["clients", "list", "--json"],
            ["upstreams", "list"], ["upstreams", "list", "--json"],
            ["prices", "list"], ["prices", "list", "--json"],
            ["status"], ["status", "--json"],
            ["report", "clients"], ["report", "clients", "--format", "csv"], ["report", "models", "--totals", "--json"],
            ["report", "keys", "--format", "csv"], ["report", "upstreams", "--since", "2d"], ["report", "health"],
            ["report", "health", "--problems", "--format", "csv"], ["report", "spend", "--by", "key", "--format", "csv"],
            ["report", "spend", "--by", "project", "--totals"],
            ["keys", "check", "--all", "--json", "--upstream", "http://127.0.0.1:9"],
        ]
        for command in commands {
            let sqlite = try await CLI.run(command, in: ws.path)
            let postgres = try await CLI.run(command + ["--store", store.url], in: ws.path)
            let name = command.joined(separator: " ")
            // `keys check --all` against a closed port: both fail alike (69), after reading the store.
            let expected: Int32 = command.contains("http://127.0.0.1:9") ? 69 : 0
            #expect(sqlite.status == expected, "\(name) on SQLite: \(sqlite.all)")
            #expect(postgres.status == expected, "\(name) on PostgreSQL: \(postgres.all)")
            // The new client's token differs (random), and times are those of each run.
            #expect(Self.normalized(postgres.stdout) == Self.normalized(sqlite.stdout), "\(name)")
        }
    }

    /// Output without what differs between two runs: tokens and their tails, times.
    static func normalized(_ text: String) -> String {
        var text = text
        for (pattern, replacement) in [
            (#"gw-[A-Za-z0-9_-]+"#, "TOKEN"),
            (#"…[A-Za-z0-9_-]{4}\b"#, "…TAIL"),
            (#""token_tail" : "[^"]*""#, #""token_tail" : "TAIL""#),
            (#"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?"#, "TIME"),
        ] {
            text = text.replacingOccurrences(of: pattern, with: replacement, options: .regularExpression)
        }
        return text
    }
}
