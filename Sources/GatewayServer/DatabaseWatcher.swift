import Foundation
import GatewayStore
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Watches the database file while serving. SQLite keeps writing a file that was deleted (an
/// operator's `rm`, a rotation script) or replaced by another at its path, without an error:
/// every row written from then on would vanish with the process. Within ``interval`` of such a
/// change this says so (an error line naming the path, `/readyz` 503, the
/// `gemini_gateway_database_ok` gauge at 0), and saves what the gateway holds: a complete copy of
/// the open database (keys, clients, cooldowns, every request row, those written since included)
/// next to it, at `PATH.rescued-TIME`, at once and again at shutdown, after the last rows are
/// written. The gateway goes on serving and writing into the open database in between, so no row
/// is dropped; a restart then opens the file at the path. If the same file comes back to its
/// path (moved away and back), all is well again.
public final class DatabaseWatcher: Service, StoreHealth, Sendable {
    private let database: AppDatabase
    private let interval: Duration
    private let logger: Logger
    private let state = Mutex(Watch())

    private struct Watch {
        var file = DatabaseFileState.present
        /// Where the open database is saved, once it was seen gone (one file per run).
        var rescuePath: String?
    }

    public init(database: AppDatabase, interval: Duration = .seconds(1), logger: Logger) {
        self.database = database
        self.interval = interval
        self.logger = logger
    }

    /// Whether the database file was at its path when last looked at.
    public var isHealthy: Bool { state.withLock { $0.file == .present } }

    /// A deleted or replaced file loses every row written from then on at exit.
    public var problemBlocksReadiness: Bool { true }

    /// Why the gateway is not ready because of its database, in a sentence; nil when it is fine.
    public var problem: String? {
        let (file, rescue) = state.withLock { ($0.file, $0.rescuePath) }
        let path = database.path ?? ":memory:"
        let saved = rescue.map { "; the open database is saved to '\($0)'" } ?? ""
        switch file {
        case .present: return nil
        case .missing: return "database file '\(path)' was deleted while serving\(saved); restart the gateway"
        case .replaced: return "database file '\(path)' was replaced by another file while serving\(saved); restart the gateway"
        }
    }

    public func run() async throws {
        // Off the event loops: looking at the file is a system call, saving a copy takes seconds.
        await withTaskExecutorPreference(globalConcurrentExecutor) { await watch() }
    }

    private func watch() async {
        let tick: Duration = .milliseconds(100)
        var lastCheck = ContinuousClock.now
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: tick)
            guard ContinuousClock.now - lastCheck >= interval else { continue }
            lastCheck = .now
            await check()
        }
        // This service stops after the log writer and the pool's sync (it starts before them):
        // their last writes are in the open database now, and go into the copy.
        await check()
        if let rescue = state.withLock({ $0.file == .present ? nil : $0.rescuePath }) {
            await save(to: rescue, when: "at shutdown")
        }
    }

    /// Looks at the file once; says so and saves a copy when it has gone.
    func check() async {
        let now = database.fileState()
        let (before, rescue) = state.withLock { watch in
            let before = watch.file
            watch.file = now
            if now != .present, watch.rescuePath == nil { watch.rescuePath = Self.rescuePath(for: database.path ?? "gateway.db") }
            return (before, watch.rescuePath)
        }
        guard now != before else { return }
        let path = database.path ?? ":memory:"
        switch now {
        case .present:
            logger.notice("database file is back at its path; ready again", metadata: ["path": "\(path)"])
        case .missing, .replaced:
            logger.error(now == .missing ? "database file deleted while serving" : "database file replaced by another file while serving", metadata: [
                "path": "\(path)",
                "rescue_copy": "\(rescue ?? "-")",
                "effect": "rows go on into the open database, saved to the rescue copy now and at shutdown; /readyz answers 503; restart the gateway",
            ])
            if let rescue { await save(to: rescue, when: "now") }
        }
    }

    private func save(to rescue: String, when: String) async {
        let database = database
        do {
            try await NIOThreadPool.singleton.runIfActive { try database.saveCopy(to: rescue) }
            logger.notice("saved the open database", metadata: ["rescue_copy": "\(rescue)", "when": "\(when)"])
        } catch {
            logger.critical("could not save the open database; rows written since it was deleted will be lost at exit", metadata: [
                "rescue_copy": "\(rescue)", "error": "\(error)",
            ])
        }
    }

    /// `PATH.rescued-20261127T150309Z`: beside the database, where an operator looks, named by
    /// the UTC time it was seen gone.
    static func rescuePath(for path: String, at date: Date = Date()) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return path + ".rescued-" + formatter.string(from: date)
    }
}
