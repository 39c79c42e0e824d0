import Foundation
import GRDB
import Testing
import TestSupport

/// The backup of docs/deployment.md: `sqlite3 gateway.db ".backup FILE"` while the gateway serves and writes.
@Suite struct BackupTests {
    static let sqlite3 = ["/usr/bin/sqlite3", "/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: sqlite3 != nil, "sqlite3 is installed by scripts/test"))
    func sqliteBackupWhileServingIsConsistent() async throws {
        let sqlite3 = try #require(Self.sqlite3)
        try await withGateway(keys: [testKey("a"), testKey("b")]) { gateway, _ in
            // Traffic (and so log writes every ~100 ms) before, during and after the backups.
            let traffic = Task {
                var served = 0
                for _ in 0..<300 where !Task.isCancelled {
                    if try await gateway.generate().status == 200 { served += 1 }
                }
                return served
            }
            var backups: [String] = []
            for index in 0..<3 {
                // Each backup while rows are being written: after some more have come.
                try await waitUntil("\((index + 1) * 40) rows before backup \(index)") {
                    try gateway.database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests") ?? 0 } >= (index + 1) * 40
                }
                let path = gateway.directory + "/backup-\(index).db"
                let result = try await runProcess(
                    sqlite3, [gateway.databasePath, ".backup '\(path)'"],
                    environment: ProcessInfo.processInfo.environment, directory: gateway.directory, timeout: 30
                )
                #expect(result.exitCode == 0, "\(result.transcript)")
                backups.append(path)
            }
            let served = try await traffic.value
            #expect(served == 300)
            let rows = try await gateway.requestRows(count: 300)
            #expect(rows.count == 300)

            var previous = -1
            for path in backups {
                let copy = try DatabaseQueue(path: path)
                let check = try await copy.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
                #expect(check == "ok")
                let (keys, requests, orphans) = try await copy.read { db in
                    (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM keys")!,
                     try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests")!,
                     try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM attempts WHERE request_id NOT IN (SELECT request_id FROM requests)")!)
                }
                #expect(keys == 2)
                #expect(orphans == 0, "every attempt's request is in the same snapshot")
                #expect(requests >= previous && requests <= 300, "a snapshot of the log: \(requests)")
                previous = requests
            }
        }
    }
}
