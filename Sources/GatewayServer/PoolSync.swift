import Foundation
import GatewayCore
import GatewayStore
import Logging
import ServiceLifecycle
import Synchronization

/// Keeps the in-memory pool and SQLite in step, as one Service:
/// - writes state changes (cooldowns, deletions, upstream failures) behind, within ~100 ms (with a
///   shared store, those other instances must hear of as soon as they are queued);
/// - writes last-use times in batches, once a second;
/// - notices changes made by the CLI (`import`, `keys`, `upstreams`, `clients`) by polling a cheap
///   marker, and reloads the pool and the client tokens when it moves.
/// On shutdown it writes what is pending, then returns; also when cancelled (a shutdown that
/// outlasted its grace): cooldowns and soft deletions must survive a restart.
public final class PoolSync: Service, Sendable {
    let database: any ServingStore
    let pool: KeyPool
    let authenticator: ClientAuthenticator
    /// The clients' limits and the price table, reloaded with the clients.
    let limiter: (any ClientLimitStore)?
    let prices: Prices?
    let reloadInterval: Duration
    /// How often queued changes are written and the marker may be looked at.
    let tick: Duration
    let logger: Logger
    /// The marker of the last load (and when it started). `run` starts from the one `loadInitial`
    /// saw, so that a change made between the initial load and the start of `run` is not taken
    /// for the state already loaded.
    private let loaded = Mutex<(marker: String, at: Date)?>(nil)
    /// The marker of the state in memory now: it equals ``AppDatabase/poolMarker()`` once every
    /// change made to the database (by the CLI) has been loaded.
    public var loadedMarker: String? { loaded.withLock { $0?.marker } }
    /// Waits, when the sync is cancelled, for the requests cancelled with it to end (their
    /// verdicts may still change the pool) before the last write.
    private let stragglers: @Sendable () async -> Void
    /// Set when the shared store rang (another instance or the CLI wrote something): the marker
    /// is looked at on the next tick instead of at the next reload interval.
    private let rung = Atomic<Bool>(false)

    public init(
        database: any ServingStore, pool: KeyPool, authenticator: ClientAuthenticator,
        limiter: (any ClientLimitStore)? = nil, prices: Prices? = nil, reloadInterval: Duration,
        tick: Duration = .milliseconds(100), stragglers: @escaping @Sendable () async -> Void = {}, logger: Logger
    ) {
        self.database = database
        self.pool = pool
        self.authenticator = authenticator
        self.limiter = limiter
        self.prices = prices
        self.reloadInterval = reloadInterval
        self.tick = tick
        self.stragglers = stragglers
        self.logger = logger
    }

    /// Loads everything once, before the server starts; returns the marker it saw.
    @discardableResult
    public func loadInitial() async throws -> String {
        let started = Date()
        let marker = try await database.poolMarker()
        let state = try await database.loadPoolState(now: Date(), changedSince: nil)
        load(state)
        loaded.withLock { $0 = (marker, started) }
        return marker
    }

    public func run() async throws {
        // Off the event loops, like the log writer: a reload of thousands of keys would hold up
        // the requests of the loop it ran on.
        try await withTaskExecutorPreference(globalConcurrentExecutor) {
            guard let feed = database.sharedChanges else { return try await sync() }
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { await self.absorb(from: feed) }
                try await self.sync()
                group.cancelAll()
            }
        }
    }

    /// Takes in what other instances sharing the store record (cooldowns, soft deletes), as soon
    /// as the store rings, and at least once a second.
    private func absorb(from feed: any SharedChangeFeed) async {
        var failing = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let changes = try await feed.changesByOthers()
                pool.absorb(changes)
                if let limiter { limiter.absorb(try await feed.clientUsageByOthers()) }
                if failing { logger.notice("reading other instances' pool changes works again") }
                failing = false
            } catch {
                if !failing {
                    logger.error("reading other instances' pool changes failed; will retry", metadata: ["error": "\(error)"])
                }
                failing = true
            }
            if await feed.waitForChanges(timeout: .seconds(1)) { rung.store(true, ordering: .relaxed) }
        }
    }

    private func sync() async throws {
        var marker: String
        var lastReload: Date
        if let initial = loaded.withLock({ $0 }) {
            (marker, lastReload) = initial
        } else {
            (marker, lastReload) = (try await database.poolMarker(), Date())
        }
        var lastUsageFlush = ContinuousClock.now
        var lastReloadCheck = ContinuousClock.now
        var lastFlush = ContinuousClock.now
        var flushFailed = false
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await waitForTick(since: lastFlush, retrying: flushFailed)
            let now = ContinuousClock.now
            let flushUsage = now - lastUsageFlush >= .seconds(1)
            if flushUsage { lastUsageFlush = now }
            lastFlush = now
            flushFailed = !(await flush(includingUsage: flushUsage))
            let rang = rung.exchange(false, ordering: .relaxed)
            guard rang || now - lastReloadCheck >= reloadInterval else { continue }
            lastReloadCheck = now
            do {
                let current = try await database.poolMarker()
                guard current != marker else { continue }
                let started = Date()
                let state = try await database.loadPoolState(now: Date(), changedSince: PoolLoad(marker: marker, at: lastReload))
                load(state)
                marker = current
                lastReload = started
                loaded.withLock { $0 = (current, started) }
                logger.info("reloaded keys and upstreams", metadata: [
                    "keys": "\(state.keys.count)", "upstreams": "\(state.upstreams.count)", "clients": "\(state.clients.count)",
                ])
            } catch {
                logger.error("reload failed; will retry", metadata: ["error": "\(error)"])
            }
        }
        // In a task of its own: GRDB starts no write in a cancelled task.
        let cancelled = Task.isCancelled
        await Task {
            if cancelled { await self.stragglers() }
            await self.flush(includingUsage: true, last: true)
        }.value
    }

    /// Waits for the next tick. With a shared store, a change the other instances must hear of
    /// (a 429's cooldown, a soft delete) ends the wait when it is queued: the tick would be most of
    /// the time they take to learn it. Such early flushes come at most every `minimumGap`, and
    /// after a failed write only the tick paces the retries.
    private func waitForTick(since lastFlush: ContinuousClock.Instant, retrying: Bool) async {
        guard database.sharedChanges != nil, !retrying else {
            try? await Task.sleep(for: tick)
            return
        }
        let minimumGap: Duration = .milliseconds(10)
        let deadline = lastFlush + tick
        guard await pool.sharedChangeQueued.wait(timeout: deadline - .now) else { return }
        let soonest = lastFlush + minimumGap
        if soonest > .now { try? await Task.sleep(until: soonest) }
    }

    /// Puts a loaded state in force: the pool, the client tokens, their limits, the prices.
    private func load(_ state: PoolState) {
        pool.load(state)
        authenticator.replaceClients(state.clients)
        limiter?.replace(state.clients)
        prices?.replace(state.prices)
        warnAboutInvalid(state)
    }

    private func warnAboutInvalid(_ state: PoolState) {
        if !state.invalidKeys.isEmpty {
            logger.warning("active keys left unused: their stored secret is not a valid key (edited by hand?); soft-delete them with 'keys delete FINGERPRINT' and import the key again", metadata: [
                "keys": "\(state.invalidKeys.joined(separator: ", "))",
            ])
        }
        if !state.invalidUpstreams.isEmpty {
            logger.warning("enabled upstreams left unused: their stored base URL is not one 'upstreams add' accepts (edited by hand?); disable them with 'upstreams disable ID' and add the URL again", metadata: [
                "upstream_ids": "\(state.invalidUpstreams.map(String.init).joined(separator: ", "))",
            ])
        }
    }

    /// Tells the instances sharing the store what this one's clients used (every tick: their
    /// limits should count it within a fraction of a second). A failed write is kept for the next.
    private func shareClientUsage() async {
        guard let feed = database.sharedChanges, let limiter else { return }
        let usage = limiter.takeUsageToShare()
        guard !usage.isEmpty else { return }
        do {
            try await feed.publish(usage)
        } catch {
            limiter.restoreUsageToShare(usage)
            logger.error("telling other instances what clients used failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// Writes queued state changes (and, if asked, last-use times). A failed write is retried on
    /// the next tick: the changes and the times go back to the pool (the `last` one has no next).
    /// Returns false when the write failed.
    @discardableResult
    func flush(includingUsage: Bool, last: Bool = false) async -> Bool {
        await shareClientUsage()
        let changes = pool.changes.drain()
        let usage = includingUsage ? pool.takeLastUsed() : LastUsedBatch()
        guard !changes.isEmpty || !usage.isEmpty else { return true }
        do {
            try await database.apply(changes, lastUsed: usage, now: Date())
            pool.written(changes)
            return true
        } catch {
            pool.changes.requeue(changes)
            pool.restoreLastUsed(usage)
            logger.error(
                last ? "writing pool state failed at exit: these changes are lost" : "writing pool state failed; will retry",
                metadata: ["changes": "\(changes.count)", "error": "\(error)"]
            )
            return false
        }
    }
}
