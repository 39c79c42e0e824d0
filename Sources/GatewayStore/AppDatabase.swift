import Foundation
import GRDB

/// The gateway's SQLite database: keys, upstreams, cooldowns, clients and the request log.
///
/// Opened as a `DatabasePool` (WAL), so the CLI can read and write while `serve` runs; the schema
/// comes only from `migrations/*.sql`, embedded in the binary at build time.
public struct AppDatabase: Sendable {
    /// The connection pool. Writes are transactions; reads run beside the single writer.
    public let writer: any DatabaseWriter
    /// The file, or nil for an in-memory database.
    public let path: String?
    /// The file at `path` when it was opened: another one there later (or none) means the
    /// database was deleted or replaced while open (``fileState()``).
    let openedFile: FileIdentity?
    let busyTimeout: TimeInterval

    /// How long a writer waits for another process's write transaction before giving up.
    public static let defaultBusyTimeout: TimeInterval = 5

    init(writer: any DatabaseWriter, path: String? = nil, busyTimeout: TimeInterval = defaultBusyTimeout) throws {
        self.writer = writer
        self.path = path
        self.openedFile = path.flatMap(FileIdentity.of)
        self.busyTimeout = busyTimeout
        try Self.migrate(writer)
    }

    /// One write transaction; database errors become `StoreError`s that name the file.
    public func write<T>(_ updates: (Database) throws -> T) throws -> T {
        do {
            return try writer.write(updates)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path ?? ":memory:", busyTimeout: busyTimeout)
        }
    }

    /// One read; database errors become `StoreError`s that name the file.
    public func read<T>(_ value: (Database) throws -> T) throws -> T {
        do {
            return try writer.read(value)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path ?? ":memory:", busyTimeout: busyTimeout)
        }
    }

    /// Opens the database at `path` and brings its schema up to date. A missing file is created
    /// with mode 0600 when `creating`; otherwise it is `StoreError.missing` and nothing is made
    /// (an admin command pointed at a misspelt path must not leave an empty database behind).
    /// Errors are `StoreError`s whose description is one line an operator can act on.
    public static func open(
        path: String, busyTimeout: TimeInterval = defaultBusyTimeout, creating: Bool = true
    ) throws -> AppDatabase {
        try prepareFile(at: path, creating: creating)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = checksForeignKeys
        configuration.busyMode = .timeout(busyTimeout)
        configuration.label = "gateway"
        // GRDB's queues default to `.userInitiated`, which libdispatch runs at nice -2 on Linux:
        // above the event loops. Its writer then took a core from them in bursts of 2-4 ms (a
        // request-log batch), the requests of that loop waiting behind it. At `.default` (nice 0)
        // it shares the CPU with them as an equal. Lower (`.utility`, nice 2) helped in quick
        // runs but not in a full one, and under saturation the writer needs its share: at nice
        // 10 it fell behind and rows were dropped (bench/RESULTS.md, eighth sitting).
        configuration.qos = .default
        configuration.prepareDatabase { db in
            // In WAL mode NORMAL never corrupts the database; a power cut may lose the last
            // transactions, not the file. FULL would fsync on every request-log batch.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            // An 8 MiB page cache per connection (default 2 MiB) keeps the hot index pages of the
            // request log in memory; every pooled connection has its own, so it stays modest.
            try db.execute(sql: "PRAGMA cache_size = -8192")
        }
        do {
            let pool = try DatabasePool(path: path, configuration: configuration)
            // The request log inserts many rows a statement; where SQLite keeps a statement
            // journal for one, it would write it to a temporary file once it passes 64 KiB
            // (doubling the bytes written per request). On the writer only: the readers'
            // temporary tables (sorting a large report) stay on disk.
            try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA temp_store = MEMORY") }
            return try AppDatabase(writer: pool, path: path, busyTimeout: busyTimeout)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(error, path: path, busyTimeout: busyTimeout)
        }
    }

    /// An empty in-memory database with the full schema, for tests.
    public static func inMemory() throws -> AppDatabase {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = checksForeignKeys
        return try AppDatabase(writer: DatabaseQueue(configuration: configuration))
    }

    /// SQLite does not check the schema's foreign keys (its own default; GRDB's is to check).
    /// They stay in the schema as documentation for `sqlite3` users. No row of `keys`,
    /// `upstreams` or `clients` is ever deleted by the gateway (keys and clients are soft-deleted
    /// or revoked), so a check could only fail after someone deleted one by hand, and then it
    /// would do harm: every request-log batch and pool-state write naming that row would fail
    /// and be retried forever, and the log would stop. The checks were also a fifth of the
    /// request log's cost (five lookups a request).
    static let checksForeignKeys = false

    // MARK: - Migrations

    /// The identifiers of the migrations embedded in this binary, in order.
    public static var migrationIdentifiers: [String] { embeddedMigrations.map(\.identifier) }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in embeddedMigrations {
            migrator.registerMigration(migration.identifier) { db in
                try db.execute(sql: migration.sql)
            }
        }
        return migrator
    }

    private static func migrate(_ writer: any DatabaseWriter) throws {
        let migrator = migrator
        // Read first: a database that is up to date is opened without taking the write lock,
        // so reading commands work while another process writes.
        let (complete, superseded) = try writer.read { db in
            (try migrator.hasCompletedMigrations(db), try migrator.hasBeenSuperseded(db))
        }
        if superseded {
            let unknown = try writer.read { db in
                try migrator.appliedIdentifiers(db).subtracting(migrator.migrations).sorted()
            }
            throw StoreError.newerSchema(unknownMigrations: unknown)
        }
        if !complete {
            try migrator.migrate(writer)
        }
    }

    // MARK: - The file

    /// Refuses a directory, and creates a missing file (if `creating`) with mode 0600 so that the
    /// database (and the -wal/-shm files SQLite derives from it) are readable by their owner only.
    private static func prepareFile(at path: String, creating: Bool) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw StoreError.isDirectory(path: path) }
            return
        }
        guard creating else { throw StoreError.missing(path: path) }
        let fd = Foundation.open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd < 0 {
            let code = errno
            if code == EEXIST { return }
            throw StoreError.cannotCreate(path: path, reason: String(cString: strerror(code)))
        }
        close(fd)
    }
}
