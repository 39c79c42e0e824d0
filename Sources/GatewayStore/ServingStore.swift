import Foundation
import GatewayCore

// MARK: - What a running gateway asks of its store

/// The store a serving gateway works with: SQLite (``AppDatabase``, one instance on one machine,
/// the default) or PostgreSQL (`GatewayStorePostgres`, several instances sharing it; issue 25).
/// The request path never calls it: every method here runs at start, in a background service
/// (the pool's sync, the request log's writer, retention), or for an operator's page.
public protocol ServingStore: Sendable {
    /// The store as logs and errors name it: a file path, or a `postgres://` URL without password.
    var displayName: String { get }

    // Start.

    /// Turns the streams an instance left running when it stopped into `interrupted` rows.
    func recoverInterruptedStreams() async throws -> [RequestLogEntry]
    /// Loads the shipped price table into a store without prices; returns how many models.
    func importShippedPricesIfEmpty(now: Date) async throws -> Int
    /// What the active clients used today, this month and in the last minute.
    func clientUsage(now: Date) async throws -> (usage: [Int64: ClientUsage], lastMinute: [RecentClientRequest])

    // The pool's sync.

    /// A value that changes whenever an operator changed keys, upstreams, clients or prices.
    func poolMarker() async throws -> String
    /// The active keys, enabled upstreams, cooldowns in force, active clients and prices; with
    /// `changedSince` (the marker and time of the previous load), which keys an operator changed.
    func loadPoolState(now: Date, changedSince: PoolLoad?) async throws -> PoolState
    /// Writes the pool's changes and last-use times in one transaction (and, in a shared store,
    /// publishes the shared ones to the other instances).
    func apply(_ changes: [StateChange], lastUsed: LastUsedBatch, now: Date) async throws
    /// What other instances record, for a store several share; nil for one instance's own store.
    var sharedChanges: (any SharedChangeFeed)? { get }

    // The request log.

    /// Writes finished rows (each counted once in the daily totals, also when the same batch
    /// is written again) and snapshots of running streams, in one transaction.
    func insert(_ entries: [RequestLogEntry], streams: [RequestLogEntry]) async throws
    /// Deletes raw rows older than `cutoff`, at most `limit` of each table, keeping the totals.
    func pruneBatch(before cutoff: Date, limit: Int, now: Date) async throws -> PruneBatch

    // Owners of project-bound resources.

    func resourceOwners(now: Date) async throws -> [String: ResourceOwner]
    /// One owner, read through when this instance does not know it (another may have created it).
    func resourceOwner(named name: String, now: Date) async throws -> ResourceOwner?
    func saveResourceOwners(_ names: [String], owner: ResourceOwner, now: Date) async throws
    func deleteResourceOwner(_ name: String) async throws
    func pruneResourceOwners(now: Date) async throws -> Int

    // Operator pages.

    func keyCounts(now: Date) async throws -> StatusPageData.KeyCounts
    func statusPageData(now: Date) async throws -> StatusPageData
}

/// The marker and start time of a pool load: what the next load compares with.
public struct PoolLoad: Sendable, Equatable {
    public var marker: String
    public var at: Date

    public init(marker: String, at: Date) {
        self.marker = marker
        self.at = at
    }
}

/// One request of the last minute, for the client limit counters' rebuild at start.
public struct RecentClientRequest: Sendable {
    public var clientId: Int64
    public var startedAt: Date
    public var tokens: Int

    public init(clientId: Int64, startedAt: Date, tokens: Int) {
        self.clientId = clientId
        self.startedAt = startedAt
        self.tokens = tokens
    }
}

/// The changes other gateway instances record in a shared store (cooldowns, throttles, soft
/// deletes: ``StateChange/isShared``), for ``Scheduler/absorb(_:now:)``.
public protocol SharedChangeFeed: Sendable {
    /// The changes other instances wrote since the previous call (the first call starts from
    /// now). A change may come twice (the merge is idempotent); none is skipped while the store
    /// is reachable.
    func changesByOthers() async throws -> [StateChange]
    /// Returns when another instance may have written something (a notification), or after
    /// `timeout`; false when it timed out.
    func waitForChanges(timeout: Duration) async -> Bool
    /// Tells the others what this instance's clients used (their limits count every instance).
    func publish(_ usage: [ClientUsageDelta]) async throws
    /// What the other instances' clients used since the previous call (the first starts from now:
    /// before it, their use is in the request log the limits were rebuilt from).
    func clientUsageByOthers() async throws -> [ClientUsageDelta]
}

/// What one client used in one second on one instance: admitted requests, and the tokens and
/// cost of requests that ended.
public struct ClientUsageDelta: Sendable, Hashable {
    public var clientID: Int64
    /// Seconds since 1970.
    public var second: Int64
    public var requests: Int
    public var tokens: Int
    public var costMicros: Int64

    public init(clientID: Int64, second: Int64, requests: Int, tokens: Int, costMicros: Int64) {
        self.clientID = clientID
        self.second = second
        self.requests = requests
        self.tokens = tokens
        self.costMicros = costMicros
    }
}

/// Whether the store takes the gateway's writes now, for `/readyz` and `/metrics`.
public protocol StoreHealth: Sendable {
    /// Why the store is not fine now, in a sentence an operator can act on; nil when it is.
    var problem: String? { get }
    /// Whether that problem makes the instance unready (its rows would be lost: a deleted SQLite
    /// file) rather than only degraded (rows wait in memory until the store is back).
    var problemBlocksReadiness: Bool { get }
}
