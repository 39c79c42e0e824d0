import Foundation
import GatewayCore
import GatewayServer
import GatewayStore
import Logging
import Testing
import TestSupport

@Suite struct PoolSyncTests {
    /// A key imported after the initial load but before the sync service runs (a busy start) is
    /// still picked up: `run` compares with the marker of the initial load, not with its own.
    @Test func aChangeBetweenTheInitialLoadAndRunIsPickedUp() async throws {
        let (directory, database, pool, sync) = try await Self.started(reloadInterval: .milliseconds(50))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(pool.snapshot().activeKeys == 1)

        _ = try database.importKeys(ListFile.parseKeys(Array(testKey("b").utf8)))
        let running = Task { try await sync.run() }
        defer { running.cancel() }
        try await waitUntil("the key imported before run to be loaded") { pool.snapshot().activeKeys == 2 }
    }

    /// Cooldowns and last-use times pending when the sync is cancelled (a shutdown that outlasted
    /// its grace) are still written: GRDB starts no write in a cancelled task.
    @Test func pendingStateIsWrittenWhenTheSyncIsCancelled() async throws {
        let (directory, database, pool, sync) = try await Self.started(reloadInterval: .seconds(60))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard case .pair(let key, let upstream) = pool.pick(model: "gemini-2.5-flash", tried: []) else {
            Issue.record("no pair")
            return
        }
        pool.record(.throttled(Throttle(kind: .perMinute, retryDelay: 600)), pair: PairID(key: key.id, upstream: upstream.id), model: "gemini-2.5-flash")
        let running = Task {
            // Cancelled before it starts: it goes straight to its last flush.
            withUnsafeCurrentTask { $0?.cancel() }
            try await sync.run()
        }
        try await running.value
        let listed = try database.listKeys()
        #expect(listed.first?.cooldowns.map(\.model) == ["gemini-2.5-flash"])
        #expect(listed.first?.lastUsedAt != nil)
    }

    /// A key goes upstream in a header as stored, and outgoing headers are not checked again: a
    /// secret edited by hand into something that is not a key (here a line break that would add a
    /// header) is left out of the pool and named by fingerprint, never used.
    @Test func aKeyEditedByHandIntoAnInvalidSecretIsNotUsed() async throws {
        let (directory, database, pool, sync) = try await Self.started(reloadInterval: .seconds(60))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try database.importKeys(ListFile.parseKeys(Array(testKey("b").utf8)))
        try database.write { db in
            try db.execute(sql: "UPDATE keys SET secret = secret || char(13, 10) || 'X-Injected: 1' WHERE secret = ?", arguments: [testKey("a")])
        }
        let fingerprint = Secret.fingerprint(testKey("a"))
        #expect(try database.listKeys().map(\.fingerprint).contains(fingerprint))

        let state = try await database.loadPoolState()
        #expect(state.keys.map(\.secret) == [testKey("b")])
        #expect(state.invalidKeys == [fingerprint])
        #expect(try database.listKeys().map(\.invalidSecret) == [true, false], "keys list marks it")
        try await sync.loadInitial()
        #expect(pool.snapshot().activeKeys == 1)
        for _ in 0..<5 {
            guard case .pair(let key, _) = pool.pick(model: "gemini-2.5-flash", tried: []) else {
                Issue.record("no pair")
                return
            }
            #expect(key.secret == testKey("b"))
        }
    }

    /// The same for an upstream's base URL: its host goes into the Host header as stored.
    @Test func anUpstreamEditedByHandIntoAnInvalidURLIsNotUsed() async throws {
        let (directory, database, pool, sync) = try await Self.started(reloadInterval: .seconds(60))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try database.addUpstream("http://127.0.0.1:10")
        let edited = try database.write { db in
            try db.execute(sql: "UPDATE upstreams SET base_url = 'http://a%0d%0aX-Injected:%201.example' WHERE base_url = 'http://127.0.0.1:9'")
            return try Int64.fetchOne(db, sql: "SELECT id FROM upstreams WHERE base_url LIKE '%Injected%'")
        }
        let state = try await database.loadPoolState()
        #expect(state.upstreams.map(\.baseURL) == ["http://127.0.0.1:10"])
        #expect(state.invalidUpstreams == [try #require(edited)])
        #expect(try database.listUpstreams().map(\.invalidURL) == [true, false], "upstreams list marks it")
        try await sync.loadInitial()
        #expect(pool.snapshot().upstreams == 1)
    }

    /// A database with one key and one upstream, and a sync that has loaded it (not running).
    /// With a store other instances share, a change they must hear of (here a 429's cooldown) is
    /// written as soon as it is queued, not at the sync's next tick (an hour here): that tick was
    /// most of the time another instance took to learn of a throttle.
    @Test func aSharedChangeIsWrittenWhenItIsQueued() async throws {
        let (directory, database, pool, _) = try await Self.started(reloadInterval: .seconds(3_600))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sync = PoolSync(
            database: SharedSQLite(database), pool: pool, authenticator: ClientAuthenticator(staticToken: nil),
            reloadInterval: .seconds(3_600), tick: .seconds(3_600), logger: Logger(label: "test")
        )
        try await sync.loadInitial()
        let running = Task { try await sync.run() }
        defer { running.cancel() }
        guard case .pair(let key, let upstream) = pool.pick(model: "gemini-2.5-flash", tried: []) else {
            Issue.record("no pair")
            return
        }
        pool.record(.throttled(Throttle(kind: .perMinute, retryDelay: 600)), pair: PairID(key: key.id, upstream: upstream.id), model: "gemini-2.5-flash")
        try await waitUntil("the cooldown is written") { try database.listKeys().first?.cooldowns.map(\.model) == ["gemini-2.5-flash"] }
    }

    static func started(reloadInterval: Duration) async throws -> (String, AppDatabase, KeyPool, PoolSync) {
        let directory = NSTemporaryDirectory() + "pool-sync-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let database = try AppDatabase.open(path: directory + "/gateway.db")
        _ = try database.importKeys(ListFile.parseKeys(Array(testKey("a").utf8)))
        _ = try database.addUpstream("http://127.0.0.1:9")
        let pool = KeyPool(policy: CooldownPolicy())
        let sync = PoolSync(
            database: database, pool: pool, authenticator: ClientAuthenticator(staticToken: nil),
            reloadInterval: reloadInterval, logger: Logger(label: "test")
        )
        try await sync.loadInitial()
        return (directory, database, pool, sync)
    }
}

/// The SQLite store dressed as one several instances share (a feed that never has news), for the
/// sync's shared-store behaviour without a PostgreSQL server.
private struct SharedSQLite: ServingStore, SharedChangeFeed {
    let base: AppDatabase
    init(_ base: AppDatabase) { self.base = base }

    var sharedChanges: (any SharedChangeFeed)? { self }
    func changesByOthers() async throws -> [StateChange] { [] }
    func waitForChanges(timeout: Duration) async -> Bool {
        try? await Task.sleep(for: timeout)
        return false
    }
    func publish(_ usage: [ClientUsageDelta]) async throws {}
    func clientUsageByOthers() async throws -> [ClientUsageDelta] { [] }

    var displayName: String { base.displayName }
    func recoverInterruptedStreams() async throws -> [RequestLogEntry] { try await base.recoverInterruptedStreams() }
    func importShippedPricesIfEmpty(now: Date) async throws -> Int { try base.importShippedPricesIfEmpty(now: now) }
    func clientUsage(now: Date) async throws -> (usage: [Int64: ClientUsage], lastMinute: [RecentClientRequest]) {
        try base.clientUsage(now: now)
    }
    func poolMarker() async throws -> String { try await base.poolMarker() }
    func loadPoolState(now: Date, changedSince: PoolLoad?) async throws -> PoolState {
        try await base.loadPoolState(now: now, changedSince: changedSince)
    }
    func apply(_ changes: [StateChange], lastUsed: LastUsedBatch, now: Date) async throws {
        try await base.apply(changes, lastUsed: lastUsed, now: now)
    }
    func insert(_ entries: [RequestLogEntry], streams: [RequestLogEntry]) async throws { try await base.insert(entries, streams: streams) }
    func pruneBatch(before cutoff: Date, limit: Int, now: Date) async throws -> PruneBatch {
        try await base.pruneBatch(before: cutoff, limit: limit, now: now)
    }
    func resourceOwners(now: Date) async throws -> [String: ResourceOwner] { try await base.resourceOwners(now: now) }
    func resourceOwner(named name: String, now: Date) async throws -> ResourceOwner? { try await base.resourceOwner(named: name, now: now) }
    func saveResourceOwners(_ names: [String], owner: ResourceOwner, now: Date) async throws {
        try await base.saveResourceOwners(names, owner: owner, now: now)
    }
    func deleteResourceOwner(_ name: String) async throws { try await base.deleteResourceOwner(name) }
    func pruneResourceOwners(now: Date) async throws -> Int { try await base.pruneResourceOwners(now: now) }
    func keyCounts(now: Date) async throws -> StatusPageData.KeyCounts { try await base.keyCounts(now: now) }
    func statusPageData(now: Date) async throws -> StatusPageData { try await base.statusPageData(now: now) }
}
