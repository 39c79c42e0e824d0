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

    /// The store, open while `body` runs: SQLite's file (created only when `creating`) or the
    /// shared PostgreSQL database. Every command reads and changes the store through this.
    func withAdminStore<T: Sendable>(creating: Bool, _ body: (any OperatorStore) async throws -> T) async throws -> T {
        switch try location() {
        case .sqlite(let path):
            return try await body(AppDatabase.open(path: path, busyTimeout: busyTimeout, creating: creating))
        case .postgres(let location):
            return try await PostgresStore.with(location, logger: Logger(label: "gemini-gateway")) { try await body($0) }
        }
    }

    /// The store, which must exist (a misspelt SQLite path is an error, exit 66, never a new empty
    /// database that the command then reads or changes instead of the real one).
    func withStore<T: Sendable>(_ body: (any OperatorStore) async throws -> T) async throws -> T {
        try await withAdminStore(creating: false, body)
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
}

/// `--json` for scripts; a human table otherwise.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false
}
