import ArgumentParser
import Foundation
import GatewayStore

/// `--db` and `--busy-timeout`, shared by every command; each also read from the environment.
struct DatabaseOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The SQLite database file (env GEMINI_GATEWAY_DB).", valueName: "path")
    )
    var db: String = Settings.value("GEMINI_GATEWAY_DB") ?? "gateway.db"

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
        try AppDatabase.open(path: db, busyTimeout: busyTimeout, creating: false)
    }

    /// Opens the database at --db, creating it if missing: only for `import` and `serve`, the
    /// commands that set a gateway up.
    func openOrCreate() throws -> AppDatabase {
        try AppDatabase.open(path: db, busyTimeout: busyTimeout, creating: true)
    }
}

/// `--json` for scripts; a human table otherwise.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false
}
