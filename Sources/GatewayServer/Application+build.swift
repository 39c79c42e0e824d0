import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import Logging
import NIOCore
import ServiceLifecycle

/// The gateway, assembled: everything with a lifetime is a Service; the HTTP server starts last
/// and so stops first, and the services outlive the requests in flight:
/// server drains -> request log flushed -> pool state flushed -> HTTP client shut down.
public struct Gateway: Sendable {
    public let pool: KeyPool
    public let authenticator: ClientAuthenticator
    /// The clients' limits and what they used (in memory, rebuilt from the request log at start).
    public let limiter: ClientLimiter
    /// The price table (`prices import`).
    public let prices: Prices
    public let logWriter: RequestLogWriter
    /// The Prometheus metrics served at `/metrics`.
    public let metrics: GatewayMetrics
    public let sync: PoolSync
    public let transport: any UpstreamTransport & Service
    /// Who created which project-bound resource (files, caches, batches, upload sessions).
    let owners: ResourceOwners
    /// Prunes raw log rows older than `configuration.logRetentionDays`.
    public let retention: RetentionService
    /// Notices the database file deleted or replaced while serving, and saves what it holds
    /// (SQLite only: nil with PostgreSQL).
    public let databaseWatcher: DatabaseWatcher?
    /// Whether the store takes the gateway's writes: the watcher, or the PostgreSQL store itself.
    let storeHealth: any StoreHealth
    /// `/status` (reads the database beside the writer).
    let statusPage: StatusPage
    /// Guards `/metrics` and `/status`.
    let admin: AdminAuthenticator
    let limits: RetryLimits
    /// The requests waiting for a key to come back.
    let waits: WaitingRoom
    /// The proxied requests being answered (the service group waits for them on shutdown).
    let proxyTasks = ProxyTasks()

    /// Builds the gateway on `database` and loads its state. `health` says whether a store other
    /// than SQLite takes the gateway's writes (SQLite's file is watched here).
    public init(
        configuration: GatewayConfiguration,
        database: any ServingStore,
        health: (any StoreHealth)? = nil,
        instanceID: UInt16? = nil,
        transport: (any UpstreamTransport & Service)? = nil,
        logger: Logger
    ) async throws {
        // Before the first request id (an interrupted stream's row may be written just below).
        if let instanceID { RequestID.use(instance: instanceID) }
        // Streams a gateway left running when it last stopped (a crash, kill -9) get their rows.
        let interrupted = try await database.recoverInterruptedStreams()
        if !interrupted.isEmpty {
            logger.warning("streams interrupted when the gateway last stopped: logged with outcome interrupted", metadata: [
                "streams": "\(interrupted.count)",
                "request_ids": "\(interrupted.requestIDsForLog)",
            ])
        }
        pool = KeyPool(policy: configuration.policy)
        authenticator = ClientAuthenticator(staticToken: configuration.proxyKey)
        // With a shared store each client's limits count every instance's use.
        limiter = ClientLimiter(sharing: database.sharedChanges != nil)
        prices = Prices()
        // A database without prices (new, or from before migration 0007) gets the shipped table.
        let imported = try await database.importShippedPricesIfEmpty(now: Date())
        if imported > 0 { logger.info("imported the shipped price table", metadata: ["models": "\(imported)"]) }
        // A shutdown that outlasts its grace cancels the requests still running (the server
        // closes their connections): the log writer and the pool's sync wait a moment for them
        // to end before their last writes.
        let tasks = proxyTasks
        let stragglerWait: Duration = .seconds(2)
        logWriter = RequestLogWriter(
            database: database, capacity: configuration.logBufferCapacity,
            stragglers: { await tasks.idle(within: stragglerWait) }, logger: logger
        )
        let databaseWatcher = (database as? AppDatabase).map { DatabaseWatcher(database: $0, logger: logger) }
        self.databaseWatcher = databaseWatcher
        let storeHealth: any StoreHealth = databaseWatcher ?? health ?? AlwaysHealthy()
        self.storeHealth = storeHealth
        let waits = WaitingRoom(maximumWait: configuration.maximumQueueWait, capacity: configuration.maximumQueued)
        self.waits = waits
        metrics = GatewayMetrics(
            configuration: configuration, pool: pool, logWriter: logWriter,
            // Disabled and deleted keys are not in the pool: index counts in SQLite, per scrape.
            storedKeyCounts: { try await database.keyCounts(now: Date()) },
            databaseHealthy: { storeHealth.problem == nil },
            waiting: { waits.waiting }
        )
        sync = PoolSync(
            database: database, pool: pool, authenticator: authenticator, limiter: limiter, prices: prices,
            reloadInterval: configuration.reloadInterval, stragglers: { _ = await tasks.idle(within: stragglerWait) }, logger: logger
        )
        self.transport = try transport ?? NIOHTTP1Transport(timeouts: configuration.upstreamTimeouts, trustRoots: configuration.upstreamCAFile)
        retention = RetentionService(
            database: database, settings: .init(retentionDays: configuration.logRetentionDays), logger: logger
        )
        var statusPage = StatusPage(database: database, logWriter: logWriter, logger: logger)
        statusPage.waits = waits
        self.statusPage = statusPage
        admin = AdminAuthenticator(token: configuration.adminToken, metricsPublic: configuration.metricsPublic)
        limits = RetryLimits(attempts: configuration.maximumAttempts, budget: configuration.retryBudget)
        owners = ResourceOwners(database: database, logger: logger)
        try await owners.load()
        try await sync.loadInitial()
        // The clients' use of today, this month and the last minute, from the request log.
        let now = Date()
        limiter.rebuild(from: try await database.clientUsage(now: now), now: now)
    }

    /// Runs `body` (the service group with the application) with every task it starts preferring
    /// the event loop that wakes it (see ``EventLoopTaskExecutor``).
    public static func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(executor) { try await body() }
    }

    static let executor = EventLoopTaskExecutor()

    /// Applies settings changed while serving (SIGHUP); requests in flight keep the old ones.
    public func apply(_ settings: ReloadableSettings) {
        authenticator.replaceStaticToken(settings.proxyKey)
        admin.update(token: settings.adminToken, metricsPublic: settings.metricsPublic)
        limits.update(attempts: settings.maximumAttempts, budget: settings.retryBudget)
    }

    /// The gateway as one service: its services, then the HTTP server (``HTTPServer``), in one
    /// service group.
    public func application(
        configuration: GatewayConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in },
        requestLine: RequestLineWriter? = nil
    ) -> some Service {
        let proxy = ProxyHandler(
            pool: pool, authenticator: authenticator, limiter: limiter, prices: prices, transport: transport,
            logWriter: logWriter, metrics: metrics, owners: owners,
            configuration: configuration, limits: limits, waits: waits, logger: logger, requestLine: requestLine
        )
        let local = LocalRoutes(metrics: metrics, pool: pool, admin: admin, status: statusPage, database: storeHealth)
        let shared = ClientConnectionHandler.Shared(responder: GatewayResponder(proxy: proxy, local: local), tasks: proxyTasks)
        let limits = ClientTimeouts.Limits(
            head: TimeAmount(configuration.requestHeadTimeout), body: TimeAmount(configuration.requestBodyTimeout),
            idle: TimeAmount(configuration.keepAliveTimeout)
        )
        let metrics = self.metrics
        let connections = configuration.maximumConnections.map { _ in IdleConnections() }
        let expired: @Sendable (ClientTimeouts.Expiry, SocketAddress?) -> Void = { expiry, address in
            metrics.clientConnectionClosed(expiry)
            logger.debug("client connection closed", metadata: [
                "reason": "\(expiry.rawValue)", "client": "\(address.map { "\($0)" } ?? "unknown")",
            ])
        }
        // At --max-connections the connection idle the longest makes room for a new one; with
        // none idle, accepting stops until one is (ConnectionCap).
        var cap: (@Sendable () -> ConnectionCap)?
        if let maximum = configuration.maximumConnections, let connections {
            cap = { ConnectionCap(maximum, connections: connections) }
        }
        let server = HTTPServer(
            host: configuration.host, port: configuration.port, cap: cap,
            childChannel: { channel in
                try ClientPipeline.configure(
                    channel, handler: ClientConnectionHandler(shared),
                    timeouts: ClientTimeouts(limits: limits, connections: connections, expired: expired)
                )
            },
            onRunning: onServerRunning,
            logger: logger
        )
        logger.info("memory allocator", metadata: ["allocator": "\(MemoryTrimmer.allocator)"])
        // Started in this order, stopped in reverse: the proxied requests still running after
        // the server closed its connections end before the request log's last flush; the
        // transport stops last. The database's watcher stops after the log writer and the
        // pool's sync: a database deleted while serving is saved with their last writes.
        return ServiceGroup(configuration: .init(
            services: [transport] + (databaseWatcher.map { [$0] } ?? []) as [any Service]
                + [sync, logWriter, proxyTasks, retention, MemoryTrimmer(tasks: proxyTasks, logger: logger), server],
            logger: logger
        ))
    }
}

/// A store with nothing to watch (an in-memory one in tests).
private struct AlwaysHealthy: StoreHealth {
    var problem: String? { nil }
    var problemBlocksReadiness: Bool { false }
}
