import FakeGemini
import Foundation
import GatewayStore
import GRDB
import Testing
import TestSupport

/// The database file deleted or replaced while serving (an operator's `rm`, a rotation script):
/// the gateway says so within seconds and loses no row.
@Suite struct DatabaseWatchTests {
    let a = testKey("a")

    /// `rm gateway.db` while serving: an error line naming the path, `/readyz` 503 saying why,
    /// `gemini_gateway_database_ok` 0; requests go on being answered, and every row, those of the
    /// requests after the deletion included, is in the rescue copy saved beside the path.
    @Test func aDeletedDatabaseIsNoticedAndItsRowsAreSaved() async throws {
        let fake = try await FakeGemini.start()
        let gateway = try await GatewayHarness.start(keys: [a], upstreams: [fake.baseURL]) {
            $0.adminToken = MetricsTests.adminToken
        }
        defer { gateway.removeFiles() }
        #expect(try await gateway.generate().status == 200)
        _ = try await gateway.requestRows(count: 1)
        let before = try await gateway.settledMetrics()
        #expect(before.value("gemini_gateway_database_ok") == 1)

        try FileManager.default.removeItem(atPath: gateway.databasePath)

        let notReady = try await waitFor("/readyz to answer 503") {
            let answer = try await gateway.send(gateway.request("/readyz", method: .GET, token: .some(nil)))
            return answer.status == 503 ? answer : nil
        }
        let body = try notReady.json()
        #expect(body["database_ok"] as? Bool == false)
        let problem = try #require(body["database_problem"] as? String)
        #expect(problem.contains("'\(gateway.databasePath)' was deleted while serving"), "\(problem)")
        let line = try await waitFor("the error line") {
            gateway.logs.all.first { $0.hasPrefix("error database file deleted while serving") }
        }
        #expect(line.contains("path=\(gateway.databasePath)"))
        let rescue = try #require(line.split(separator: " ").first { $0.hasPrefix("rescue_copy=") }?.dropFirst("rescue_copy=".count))
        #expect(rescue.hasPrefix(gateway.databasePath + ".rescued-"))
        let after = try await gateway.settledMetrics { $0.value("gemini_gateway_database_ok") == 0 }
        #expect(after.value("gemini_gateway_database_ok") == 0)

        // Still serving, still accounting.
        for _ in 0..<3 { #expect(try await gateway.generate().status == 200) }
        try await gateway.stop()
        await fake.stop()

        // Saved at shutdown, after the log writer's last write: all four rows, readable by the
        // owner only, and the keys with them.
        let attributes = try FileManager.default.attributesOfItem(atPath: String(rescue))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let copy = try DatabaseQueue(path: String(rescue))
        let (rows, keys) = try await copy.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests")!, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM keys")!)
        }
        #expect(rows == 4)
        #expect(keys == 1)
        #expect(!FileManager.default.fileExists(atPath: gateway.databasePath), "nothing was made at the path")
    }

    /// Another file moved to the path is noticed the same way; the file moved back makes the
    /// gateway ready again.
    @Test func aReplacedDatabaseIsNoticedAndItsReturnClearsIt() async throws {
        try await withGateway(keys: [a]) { gateway, _ in
            let path = gateway.databasePath
            let aside = path + ".aside"
            try FileManager.default.moveItem(atPath: path, toPath: aside)
            #expect(FileManager.default.createFile(atPath: path, contents: nil))
            let line = try await waitFor("the error line") {
                gateway.logs.all.first { $0.hasPrefix("error database file replaced by another file while serving") }
            }
            #expect(line.contains("path=\(path)"))
            let answer = try await waitFor("/readyz to answer 503") {
                let answer = try await gateway.send(gateway.request("/readyz", method: .GET, token: .some(nil)))
                return answer.status == 503 ? answer : nil
            }
            #expect((try answer.json()["database_problem"] as? String)?.contains("replaced by another file") == true)

            try FileManager.default.removeItem(atPath: path)
            try FileManager.default.moveItem(atPath: aside, toPath: path)
            try await waitUntil("/readyz to answer 200 again") {
                try await gateway.send(gateway.request("/readyz", method: .GET, token: .some(nil))).status == 200
            }
            #expect(gateway.logs.all.contains { $0.hasPrefix("notice database file is back at its path") })
        }
    }
}
