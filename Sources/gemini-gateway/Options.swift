import ArgumentParser
import Foundation
import GatewayStore
import GatewayStorePostgres
import Logging

/// `--store` (or `--db`) and `--busy-timeout`, shared by every command; each also read from the
/// environment.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The SQLite database file (env GEMINI_GATEWAY_DB).", valueName: "path")
    )
    var db: String = Settings.value("GEMINI_GATEWAY_DB") ?? "gateway.db"

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The store: a SQLite file (as --db), or postgres://USER@HOST[:PORT]/DATABASE shared by several gateways; its password from PGPASSWORD or the file GEMINI_GATEWAY_STORE_PASSWORD_FILE, never the command line (env GEMINI_GATEWAY_STORE).",
            valueName: "path-or-url"
        )
    )
    var store: String = Settings.value("GEMINI_GATEWAY_STORE") ?? ""

    /// Where the store is: PostgreSQL when `--store` is a `postgres://` URL, else the SQLite file.
    enum Location {
        case sqlite(String)
        case postgres(PostgresLocation)
    }

    func location() throws -> Location {
        guard store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") else { return .sqlite(store.isEmpty ? db : store) }
        return .postgres(try PostgresLocation.parse(store, password: try Self.password()).get())
    }

    /// PGPASSWORD, else the first line of GEMINI_GATEWAY_STORE_PASSWORD_FILE, else none (trust or
    /// peer authentication).
    static func password() throws -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let password = environment["PGPASSWORD"], !password.isEmpty { return password }
        guard let file = environment["GEMINI_GATEWAY_STORE_PASSWORD_FILE"], !file.isEmpty else { return nil }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CLIError.cannotRead("cannot read the store's password file '\(file)' (GEMINI_GATEWAY_STORE_PASSWORD_FILE)")
        }
        return text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
    }

    /// The store for the operator's changes that work on either kind (``AdminStore``), open while
    /// `body` runs. A SQLite file is created only when `creating`.
    func withAdminStore<T: Sendable>(creating: Bool, _ body: (any AdminStore) async throws -> T) async throws -> T {
        switch try location() {
        case .sqlite(let path):
            return try await body(AppDatabase.open(path: path, busyTimeout: busyTimeout, creating: creating))
        case .postgres(let location):
            return try await PostgresStore.with(location, logger: Logger(label: "gemini-gateway")) { try await body($0) }
        }
    }

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Seconds to wait for another process's write before giving up (env GEMINI_GATEWAY_BUSY_TIMEOUT).",
            valueName: "seconds"
        )
    )
    var busyTimeout: Double = Settings.number("GEMINI_GATEWAY_BUSY_TIMEOUT") ?? AppDatabase.defaultBusyTimeout

    func validate() throws {
        guard busyTimeout >= 0, busyTimeout.isFinite else {
            throw ValidationError("--busy-timeout must be a number of seconds >= 0")
        }
        guard !db.isEmpty else { throw ValidationError("--db must name a file") }
    }

    /// Opens the database at --db, which must exist: a misspelt path is an error (exit 66),
    /// never a new empty database that the command then reads or changes instead of the real one.
    func open() throws -> AppDatabase {
        try AppDatabase.open(path: sqlitePath(), busyTimeout: busyTimeout, creating: false)
    }

    /// The SQLite file; with a PostgreSQL store, an error: the commands that read the store this
    /// way (reports, lists, status, key checks, prices) are not translated yet (issue 25).
    func sqlitePath() throws -> String {
        guard case .sqlite(let path) = try location() else {
            throw StoreError.unavailable(reason: "this command does not work with a PostgreSQL store yet; it works with 'import', 'serve', 'keys disable|restore|delete' and 'clients add|revoke'")
        }
        return path
    }

    /// Opens the database at --db, creating it if missing: only for `import` and `serve`, the
    /// commands that set a gateway up.
    func openOrCreate() throws -> AppDatabase {
        try AppDatabase.open(path: sqlitePath(), busyTimeout: busyTimeout, creating: true)
    }
}

/// `--json` for scripts; a human table otherwise.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false
}
