import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

struct ClientsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "Manage gateway tokens: the credentials clients present instead of a Gemini key.",
        subcommands: [Add.self, SetLimits.self, List.self, Revoke.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a client and print its token. The token is shown this once; only its hash is stored."
        )
        @Argument(help: "A name for the client (who uses the token).") var name: String
        @OptionGroup(title: "Limits (each optional)") var limits: ClientLimitOptions
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        struct Created: Encodable {
            var id: Int64
            var name: String
            var token: String
            var limits: ClientLimits
        }

        func validate() throws {
            if limits.removesAny { throw ValidationError("a new client has no limit to remove: leave out --no-... (see 'clients set')") }
        }

        func run() async throws {
            try await reportingErrors {
                let set = limits.change().applied(to: ClientLimits())
                let name = name
                let (client, token) = try await database.withAdminStore(creating: false) {
                    try await $0.addClient(name: name, limits: set, now: Date())
                }
                if output.json { return try Output.json(Created(id: client.id!, name: client.name, token: token, limits: set)) }
                print("client '\(client.name)' created (id \(client.id!)). Its token, shown only now:")
                print(token)
                if !set.isEmpty { print("limits: \(set.described(ClientUsage()))") }
            }
        }
    }

    struct SetLimits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change a client's limits (--rpm 120), or remove one (--no-rpm); a running gateway applies them within seconds."
        )
        @Argument(help: "The client's name or id.") var client: String
        @OptionGroup(title: "Limits") var limits: ClientLimitOptions
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            if limits.change().isEmpty { throw ValidationError("give at least one limit to set (--rpm N) or remove (--no-rpm)") }
        }

        func run() async throws {
            try await reportingErrors {
                let (client, change) = (client, limits.change())
                let record = try await database.withStore { try await $0.setClientLimits(client, change, now: Date()) }
                print("client '\(record.name)': \(record.limits.described(ClientUsage()))")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients (tokens shown by their last 4 characters).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors {
                let clients = try await database.withStore { try await $0.listClients(now: Date()) }
                if output.json { return try Output.json(clients) }
                Output.table(
                    ["ID", "NAME", "TOKEN", "CREATED", "REVOKED", "REQUESTS", "LAST REQUEST", "LIMITS (USED/LIMIT)"],
                    clients.map { client in
                        [
                            String(client.id), client.name, "…" + client.tokenTail, Output.time(client.createdAt),
                            Output.time(client.revokedAt), String(client.requests), Output.time(client.lastRequestAt),
                            client.limits.described(client.usage),
                        ]
                    }
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a client's token at once; its request history stays.")
        @Argument(help: "The client's name or id.") var client: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let client = client
                let record = try await database.withAdminStore(creating: false) { try await $0.revokeClient(client, now: Date()) }
                print("client '\(record.name)' revoked")
            }
        }
    }
}
