import Foundation
import GatewayCore
import GatewayServer
import GatewayStore
import Logging
import Testing

@Suite struct PoolSyncTests {
    /// A key imported after the initial load but before the sync service runs (a busy start) is
    /// still picked up: `run` compares with the marker of the initial load, not with its own.
    @Test func aChangeBetweenTheInitialLoadAndRunIsPickedUp() async throws {
        let directory = NSTemporaryDirectory() + "pool-sync-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try AppDatabase.open(path: directory + "/gateway.db")
        _ = try database.importKeys(ListFile.parseKeys(Array(testKey("a").utf8)))
        _ = try database.addUpstream("http://127.0.0.1:9")
        let pool = KeyPool(policy: CooldownPolicy())
        let sync = PoolSync(
            database: database, pool: pool, authenticator: ClientAuthenticator(staticToken: nil),
            reloadInterval: .milliseconds(50), logger: Logger(label: "test")
        )
        try await sync.loadInitial()
        #expect(pool.snapshot().activeKeys == 1)

        _ = try database.importKeys(ListFile.parseKeys(Array(testKey("b").utf8)))
        let running = Task { try await sync.run() }
        defer { running.cancel() }
        var keys = 0
        for _ in 0..<100 where keys < 2 {
            try await Task.sleep(for: .milliseconds(20))
            keys = pool.snapshot().activeKeys
        }
        #expect(keys == 2)
    }
}
