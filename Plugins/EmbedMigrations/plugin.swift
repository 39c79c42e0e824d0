import Foundation
import PackagePlugin

/// Embeds every `migrations/*.sql` file of the package, and the shipped price table
/// `etc/prices.csv`, into the target as Swift source, so the binary carries its schema and its
/// default prices and runs from any working directory.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        // The PostgreSQL store has its own series, in the same append-only way (issue 25).
        let folder = target.name == "GatewayStorePostgres" ? "migrations/postgres" : "migrations"
        let directory = context.package.directoryURL.appending(path: folder)
        let files = try FileManager.default
            .contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let prices = context.package.directoryURL.appending(path: "etc/prices.csv")
        let inputs = files + [prices]
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(files.count) migrations",
                executable: try context.tool(named: "EmbedMigrationsTool").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
