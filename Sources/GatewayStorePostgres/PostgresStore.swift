import Foundation
import GatewayCore
import GatewayStore
import Logging
import PostgresNIO
import Synchronization

/// The gateway's store in PostgreSQL, shared by several gateway instances (issue 25): the same
/// tables and views as the SQLite store (migrations/postgres/ against migrations/), plus what
/// sharing needs: `pool_version` (bumped by every operator change and soft delete),
/// `pool_events` (the shared pool changes, read by the other instances, rung in by
/// `NOTIFY gateway_pool`) and `gateway_instances` (each instance's id, the prefix of its
/// request ids).
///
/// Its connection pool must be running while it is used: ``with(_:logger:_:)`` runs it around a
/// body, as `serve` and every admin command do.
public final class PostgresStore: Sendable {
    let client: PostgresClient
    public let location: PostgresLocation
    /// For postgres-nio's calls: errors only (its warnings, such as a lease asked for a moment
    /// before `run()` started, say what this store reports itself, in its own words).
    let logger: Logger
    /// For this store's own messages (a migration applied, the listener reconnecting).
    let events: Logger
    /// This instance's id (``registerInstance(name:)``), 0 before: the `origin` of its events.
    private let instance = Atomic<Int32>(0)
    /// The shared changes' cursor and the store's health.
    let state = Mutex(State())
    /// Rung by the listener on `NOTIFY gateway_pool`.
    let doorbell = Doorbell()

    struct State {
        /// Where the reads of `pool_events` and `client_usage_events` are.
        var poolEvents = EventCursor()
        var usageEvents = EventCursor()
        /// When a write first failed, and why; nil while writes succeed.
        var failingSince: Date?
        var failure: String?
        var lastHeartbeat: ContinuousClock.Instant?
        var lastOrphanCheck: ContinuousClock.Instant?
        /// The first of this instance's heartbeats since the last that failed: nil after a failure.
        var heartbeatsUpSince: ContinuousClock.Instant?

        /// Notes a heartbeat's result, and says whether to look for the streams of instances that
        /// died now: at most every `interval`, and only once the heartbeats have gone through for
        /// `settle` without a break. After an outage of the database every instance's last
        /// heartbeat is old; the first back must give the others time to beat again before
        /// taking an id's streams for a dead instance's, or it would end streams still running.
        mutating func heartbeat(succeeded: Bool, at now: ContinuousClock.Instant, interval: Duration, settle: Duration) -> Bool {
            guard succeeded else {
                heartbeatsUpSince = nil
                return false
            }
            let upSince = heartbeatsUpSince ?? now
            heartbeatsUpSince = upSince
            guard now - upSince >= settle, lastOrphanCheck.map({ now - $0 >= interval }) ?? true else { return false }
            lastOrphanCheck = now
            return true
        }
    }

    /// The time (the database's clock) of the last read of an events table, and the events read
    /// within the look-back window before it (skipped when read again).
    struct EventCursor {
        var readAt: Date?
        var seen: [Int64: Date] = [:]
    }

    /// The channel of `NOTIFY` for pool changes (payload: the writer's instance id).
    static let channel = "gateway_pool"

    /// The store behind `location`, its pool running while `body` runs; the schema is brought up
    /// to date first (once, however many instances start together).
    public static func with<T: Sendable>(
        _ location: PostgresLocation, logger: Logger, _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        let store = PostgresStore(location: location, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.client.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            return try await body(store)
        }
    }

    init(location: PostgresLocation, logger: Logger) {
        self.location = location
        self.events = logger
        var quiet = logger
        quiet.logLevel = .error
        self.logger = quiet
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: location.password,
            database: location.database, tls: .disable
        )
        // A few connections per instance: the log writer, the pool's sync, the listener, a
        // report. Eight instances then stay well under PostgreSQL's default 100.
        configuration.options.maximumConnections = 6
        configuration.options.connectTimeout = .seconds(5)
        client = PostgresClient(configuration: configuration, backgroundLogger: quiet)
    }

    public var displayName: String { location.description }

    /// This instance's id among those sharing the store (1...65535), once registered.
    public var instanceID: Int32 { instance.load(ordering: .relaxed) }

    // MARK: - Instances

    /// Registers this instance and returns its id: the smallest never used, or, once all 65,535
    /// have been, the one not heard of for longest (at least ``staleInstance``). Ids keep the
    /// instances' request ids apart, and tell whose `pool_events` are whose. A stale id is taken
    /// only when no fresh one is left: after an outage of the database every live instance's
    /// heartbeat is old, and an instance starting then must not take the id of one still serving
    /// (their request ids could collide, and its streams would be ended as its own).
    @discardableResult
    public func registerInstance(name: String) async throws -> Int32 {
        let id = try await transaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.instancesLock))", logger: self.logger)
            let rows = try await connection.query("""
                INSERT INTO gateway_instances (id, name, started_at, heartbeat_at)
                SELECT id, \(name), now(), now() FROM (
                    SELECT MIN(candidate) AS id, NULL::timestamptz AS heartbeat_at FROM generate_series(1, 65535) AS candidate
                    WHERE candidate NOT IN (SELECT id FROM gateway_instances)
                    UNION ALL
                    SELECT id, heartbeat_at FROM gateway_instances
                    WHERE heartbeat_at <= now() - make_interval(secs => \(Self.staleInstance))
                ) AS free
                WHERE id IS NOT NULL
                ORDER BY heartbeat_at NULLS FIRST, id
                LIMIT 1
                ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, started_at = now(), heartbeat_at = now()
                RETURNING id
                """, logger: self.logger)
            for try await id in rows.decode(Int32.self) { return id }
            throw StoreError.unavailable(reason: "every instance id (1...65535) is taken")
        }
        instance.store(id, ordering: .relaxed)
        return id
    }

    /// Seconds after its last heartbeat an instance's id may be taken by another.
    static let staleInstance = 120.0
    /// Advisory lock keys (`pg_advisory_xact_lock`): one per kind of startup race.
    static let instancesLock: Int64 = 0x6777_0001
    static let migrateLock: Int64 = 0x6777_0002
    static let bootstrapLock: Int64 = 0x6777_0003
    static let retentionLock: Int64 = 0x6777_0004

    /// Seconds between looks for the streams of instances that died (``recoverOrphanedStreams()``).
    static let orphanCheckInterval: Duration = .seconds(60)
    /// How long this instance's heartbeats must have gone through before it looks for them: as
    /// long as an id takes to go stale. After an outage every live instance has beaten again by
    /// then: its connection pool retries at most a minute apart (postgres-nio's backoff), and it
    /// beats every 10 s.
    static let orphanCheckSettle: Duration = .seconds(staleInstance)

    /// Tells the others this instance is alive (every 10 s, from the pool's sync), and now and
    /// then turns the streams of instances that died into `interrupted` rows.
    func heartbeatIfDue() async {
        let now = ContinuousClock.now
        let due = state.withLock { state -> Bool in
            guard state.lastHeartbeat.map({ now - $0 >= .seconds(10) }) ?? true else { return false }
            state.lastHeartbeat = now
            return true
        }
        guard due, instanceID > 0 else { return }
        let beat = (try? await client.query("UPDATE gateway_instances SET heartbeat_at = now() WHERE id = \(instanceID)", logger: logger)) != nil
        let orphanCheckDue = state.withLock {
            $0.heartbeat(succeeded: beat, at: now, interval: Self.orphanCheckInterval, settle: Self.orphanCheckSettle)
        }
        guard orphanCheckDue else { return }
        do {
            let recovered = try await recoverOrphanedStreams()
            guard !recovered.isEmpty else { return }
            logger.warning("streams of a gateway instance that stopped: logged with outcome interrupted", metadata: [
                "streams": "\(recovered.count)",
                "request_ids": "\(recovered.requestIDsForLog)",
            ])
        } catch {
            logger.debug("looking for the streams of stopped instances failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Running queries

    /// One transaction; errors become `StoreError`s naming the store (and the failure is noted for
    /// ``problem``, a success clears it).
    func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        do {
            let result = try await Self.within(Self.deadline) {
                try await self.client.withTransaction(logger: self.logger) { connection in try await body(connection) }
            }
            noteSuccess()
            return result
        } catch let error as StoreError {
            throw error
        } catch {
            throw noteFailure(error)
        }
    }

    /// One statement outside a transaction, with its rows collected.
    func rows(_ query: PostgresQuery) async throws -> [PostgresRandomAccessRow] {
        do {
            let rows = try await Self.within(Self.deadline) {
                var rows: [PostgresRandomAccessRow] = []
                for try await row in try await self.client.query(query, logger: self.logger) { rows.append(row.makeRandomAccess()) }
                return rows
            }
            noteSuccess()
            return rows
        } catch {
            throw noteFailure(error)
        }
    }

    /// How long any statement or transaction may take, waiting for a connection included. With
    /// PostgreSQL away, postgres-nio waits for a connection without end: `/metrics` would hang,
    /// and the writers would never learn (nor say) that their rows wait. A batch of the log
    /// writer takes milliseconds; one cut off is rolled back and written again (exactly once).
    static let deadline: Duration = .seconds(10)

    struct DeadlineExceeded: Error, CustomStringConvertible {
        var description: String { "no answer within \(PostgresStore.deadline)" }
    }

    /// `body`'s result, or ``DeadlineExceeded`` once `limit` has passed. `body` runs in a task of
    /// its own, cancelled then but not waited for: a lease or a statement on a connection that
    /// died with the server does not always end at cancellation, and the caller must not hang
    /// with it (a task group would wait for it).
    static func within<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let race = Race<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                race.waiting.withLock { $0 = continuation }
                let work = Task {
                    let result: Result<T, any Error>
                    do { result = .success(try await body()) } catch { result = .failure(error) }
                    race.finish(with: result)
                }
                let timer = Task {
                    try? await Task.sleep(for: limit)
                    guard !Task.isCancelled else { return }
                    race.finish(with: .failure(DeadlineExceeded()))
                }
                race.tasks.withLock { $0 = [work, timer] }
            }
        } onCancel: {
            race.finish(with: .failure(CancellationError()))
        }
    }

    /// The caller of ``within(_:_:)`` waiting, and the two tasks racing to answer it.
    private final class Race<T: Sendable>: Sendable {
        let waiting = Mutex<CheckedContinuation<T, any Error>?>(nil)
        let tasks = Mutex<[Task<Void, Never>]>([])

        /// The first answer resumes the caller; the tasks still running are cancelled.
        func finish(with result: Result<T, any Error>) {
            guard let continuation = waiting.withLock({ $0.take() }) else { return }
            continuation.resume(with: result)
            for task in tasks.withLock({ $0 }) { task.cancel() }
        }
    }



    private func noteSuccess() {
        state.withLock { state in
            if state.failingSince != nil {
                state.failingSince = nil
                state.failure = nil
            }
        }
    }

    private func noteFailure(_ error: any Error) -> StoreError {
        let described = Self.describe(error)
        let storeError = StoreError.unavailable(reason: "PostgreSQL at \(location): \(described)")
        state.withLock { state in
            if state.failingSince == nil { state.failingSince = Date() }
            state.failure = described
        }
        return storeError
    }

    /// What went wrong, in one line: the server's message and SQLSTATE when it sent one
    /// (postgres-nio's own description hides them), else the error's.
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                return message + (error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? "")
            }
            return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
        }
        if let error = error as? PostgresTransactionError {
            return describe(error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError ?? error)
        }
        // The pool's own errors name its internals; what the operator needs is that no
        // connection could be made (refused, timed out, bad credentials: the server log says which).
        if String(reflecting: type(of: error)).contains("ConnectionPoolError") {
            return "could not connect (\(error))"
        }
        return "\(error)"
    }
}

// MARK: - Health

extension PostgresStore: StoreHealth {
    public var problem: String? {
        state.withLock { state in
            guard let since = state.failingSince else { return nil }
            return "PostgreSQL at \(location) is failing since \(ISO8601DateFormatter().string(from: since)) (\(state.failure ?? "unknown")): rows and pool changes wait in memory and are written when it is back"
        }
    }

    /// Rows and changes wait in memory while PostgreSQL is away: the instance keeps serving.
    public var problemBlocksReadiness: Bool { false }
}

// MARK: - Where the store is

/// A `postgres://user@host:port/database` URL. The password is never part of it: it comes from
/// `PGPASSWORD` or a file (`GEMINI_GATEWAY_STORE_PASSWORD_FILE`), so that it shows in no process
/// listing, shell history or log line.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    var password: String?

    /// Parses `url`; `password` is the one found in the environment or its file.
    public static func parse(_ url: String, password: String?) -> Result<PostgresLocation, StoreError> {
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"), let parsed = URLComponents(string: url),
              let host = parsed.host, !host.isEmpty else {
            return .failure(.badLocation(url: Self.redacted(url), reason: "expected postgres://USER@HOST[:PORT]/DATABASE"))
        }
        if parsed.password != nil {
            return .failure(.badLocation(url: Self.redacted(url), reason: "a password in the URL would show in process listings; set PGPASSWORD or GEMINI_GATEWAY_STORE_PASSWORD_FILE instead"))
        }
        let database = String(parsed.path.drop { $0 == "/" })
        let user = parsed.user ?? ProcessInfo.processInfo.environment["PGUSER"] ?? "postgres"
        return .success(PostgresLocation(
            host: host, port: parsed.port ?? 5432, user: user, database: database.isEmpty ? user : database, password: password
        ))
    }

    /// `url` with anything between `://` and `@` hidden: what an error may show of a bad URL.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@", range: scheme.upperBound..<url.endIndex) else { return url }
        return url.replacingCharacters(in: scheme.upperBound..<at.lowerBound, with: "…")
    }

    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}
