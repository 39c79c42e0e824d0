import ArgumentParser

@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemini-gateway",
        abstract: "One endpoint in front of many Gemini API keys and upstreams.",
        discussion: """
            State lives in one SQLite database (--db, default ./gateway.db). Exit codes: 0 success, \
            1 failure, 64 usage error, 65 an input file has no valid line, 66 an input file cannot be \
            read, 75 the database is locked by another writer (try again).
            """,
        subcommands: [
            ServeCommand.self, ImportCommand.self, KeysCommand.self, UpstreamsCommand.self, ClientsCommand.self, StatusCommand.self,
            ReportCommand.self,
        ]
    )
}
