import ArgumentParser
import Foundation
import GatewayStore

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Counts of usable, cooling, disabled and deleted keys and upstreams."
    )
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await reportingErrors {
            let status = try await database.withStore { try await $0.status(now: Date()) }
            if output.json { return try Output.json(status) }
            print("keys:      \(status.usableKeys) usable, \(status.coolingKeys) cooling, \(status.disabledKeys) disabled, \(status.deletedKeys) deleted")
            print("upstreams: \(status.activeUpstreams - status.coolingUpstreams) usable, \(status.coolingUpstreams) cooling, \(status.disabledUpstreams) disabled")
            print("clients:   \(status.activeClients) active")
            print("requests:  \(status.requestsLogged) logged")
            if status.usableKeys + status.coolingKeys == 0 {
                print("no active key: add keys with 'gemini-gateway import --keys api_keys.txt'")
            }
        }
    }
}
