import ArgumentParser
import Foundation
import GatewayStore
import GatewayStorePostgres
import Logging

struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Move a gateway's state between stores.",
        subcommands: [Copy.self]
    )

    struct Copy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a SQLite node (keys, upstreams, clients, cooldowns, prices, resource owners, daily totals, request log) into an empty PostgreSQL store, in one transaction.",
            discussion: """
                Ids are kept, so every reference and report stays as it was. The SQLite file is only \
                read; stop the gateway that writes it first, or rows it writes meanwhile stay behind. \
                The PostgreSQL password comes from PGPASSWORD or GEMINI_GATEWAY_STORE_PASSWORD_FILE.
                """
        )

        @Option(name: .long, help: ArgumentHelp("The SQLite database to copy.", valueName: "path"))
        var from: String

        @Option(name: .long, help: ArgumentHelp("The PostgreSQL store: postgres://USER@HOST[:PORT]/DATABASE.", valueName: "url"))
        var to: String

        @Flag(name: .long, help: "Leave the raw request log behind (the daily totals still go).")
        var withoutLog = false

        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors {
                let source = try AppDatabase.open(path: from, creating: false)
                guard to.hasPrefix("postgres://") || to.hasPrefix("postgresql://") else {
                    throw StoreError.badLocation(url: to, reason: "--to must be a postgres:// URL")
                }
                let location = try PostgresLocation.parse(to, password: try DatabaseOptions.password()).get()
                let includingLog = !withoutLog
                let summary = try await PostgresStore.with(location, logger: Logger(label: "gemini-gateway")) { store in
                    try await store.copy(from: source, includingLog: includingLog)
                }
                if output.json { return try Output.json(summary) }
                Output.table(["TABLE", "ROWS"], summary.tables.map { [$0.name, String($0.rows)] })
                print("copied \(from) into \(location)")
            }
        }
    }
}
