import Foundation
import Logging
import ServiceLifecycle

/// Keeps the raw request log to a number of days: a Service that, shortly after start and then
/// every `interval`, deletes `requests` and `attempts` rows older than the cutoff in small
/// transactions with a pause between them, so the log writer (which shares the one SQLite
/// writer) never waits long. The daily totals keep the deleted rows' counts (see
/// ``AppDatabase/pruneBatch(before:limit:now:)``), so long-range reports survive.
public final class RetentionService: Service, Sendable {
    // MARK: - Settings

    /// How much is kept and how gently it is deleted.
    public struct Settings: Sendable, Equatable {
        /// Whole UTC days of raw rows kept besides today; 0 keeps everything.
        public var retentionDays: Int
        /// Rows of each table deleted per transaction.
        public var batchSize: Int
        /// Pause between two transactions.
        public var pause: Duration
        /// Wait before the first pass, and between passes.
        public var initialDelay: Duration
        public var interval: Duration

        public init(
            retentionDays: Int = 30, batchSize: Int = 1_000, pause: Duration = .milliseconds(50),
            initialDelay: Duration = .seconds(10), interval: Duration = .seconds(3_600)
        ) {
            self.retentionDays = retentionDays
            self.batchSize = batchSize
            self.pause = pause
            self.initialDelay = initialDelay
            self.interval = interval
        }
    }

    private let database: any ServingStore
    public let settings: Settings
    private let logger: Logger
    private let clock: @Sendable () -> Date

    /// `now` is the clock that decides the cutoff (tests move it).
    public init(database: any ServingStore, settings: Settings, logger: Logger, now: @escaping @Sendable () -> Date = { Date() }) {
        self.database = database
        self.settings = settings
        self.logger = logger
        self.clock = now
    }

    // MARK: - Running

    /// Prunes shortly after start and then every `interval`, until the graceful shutdown.
    public func run() async throws {
        guard settings.retentionDays > 0 else {
            // Nothing to do, but returning would stop the gateway: wait for the shutdown.
            try? await gracefulShutdown()
            return
        }
        var delay = settings.initialDelay
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let wait = delay
            guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: wait) })) != nil else { break }
            delay = settings.interval
            do {
                _ = try await prune()
            } catch {
                // Locked by a long CLI transaction, say: the next pass tries again.
                logger.error("log retention failed; will retry", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One pass: deletes everything older than the cutoff, batch by batch, stopping early on
    /// shutdown. Returns what it deleted.
    @discardableResult
    public func prune() async throws -> PruneBatch {
        let cutoff = AppDatabase.retentionCutoff(retentionDays: settings.retentionDays, now: clock())
        var total = PruneBatch()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let batch = try await database.pruneBatch(before: cutoff, limit: settings.batchSize, now: clock())
            total.requests += batch.requests
            total.attempts += batch.attempts
            if batch.requests < settings.batchSize && batch.attempts < settings.batchSize { break }
            guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: self.settings.pause) })) != nil else { break }
        }
        // Owners of files and upload sessions Google has expired (a handful of rows).
        let owners = (try? await database.pruneResourceOwners(now: clock())) ?? 0
        if owners > 0 { logger.info("forgot the owners of expired files and uploads", metadata: ["rows": "\(owners)"]) }
        if !total.isEmpty {
            logger.info("log retention pruned old rows", metadata: [
                "requests": "\(total.requests)", "attempts": "\(total.attempts)",
                "before": "\(UTC.dayString(cutoff))", "retention_days": "\(settings.retentionDays)",
            ])
        }
        return total
    }
}
