import ArgumentParser
import Foundation

@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemini-gateway",
        abstract: "One endpoint in front of many Gemini API keys and upstreams.",
        discussion: """
            State lives in one SQLite database (--db, default ./gateway.db). Exit codes: 0 success, \
            1 failure, 64 usage error, 65 an input file (or the settings file) has no valid line, 66 an \
            input file cannot be read, 69 no upstream answered (keys check), 75 the database is locked \
            by another writer (try again).
            """,
        subcommands: [
            ServeCommand.self, ImportCommand.self, KeysCommand.self, UpstreamsCommand.self, ClientsCommand.self, PricesCommand.self, StatusCommand.self,
            ReportCommand.self, StoreCommand.self,
        ]
    )

    /// The settings file (`serve --config FILE`) is read before the arguments are parsed: the
    /// options take their defaults from it.
    static func main() async {
        do {
            try Settings.load(arguments: Array(CommandLine.arguments.dropFirst()))
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            Foundation.exit(error.exitCode)
        } catch {
            exit(withError: error)
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
