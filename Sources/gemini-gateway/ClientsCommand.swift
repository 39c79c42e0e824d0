import ArgumentParser
import Foundation
import GatewayStore

struct ClientsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clients",
        abstract: "Manage gateway tokens: the credentials clients present instead of a Gemini key.",
        subcommands: [Add.self, List.self, Revoke.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a client and print its token. The token is shown this once; only its hash is stored."
        )
        @Argument(help: "A name for the client (who uses the token).") var name: String
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        struct Created: Encodable {
            var id: Int64
            var name: String
            var token: String
        }

        func run() async throws {
            try await reportingErrors {
                let (client, token) = try database.open().addClient(name: name)
                if output.json { return try Output.json(Created(id: client.id!, name: client.name, token: token)) }
                print("client '\(client.name)' created (id \(client.id!)). Its token, shown only now:")
                print(token)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients (tokens shown by their last 4 characters).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors {
                let clients = try database.open().listClients()
                if output.json { return try Output.json(clients) }
                Output.table(
                    ["ID", "NAME", "TOKEN", "CREATED", "REVOKED", "REQUESTS", "LAST REQUEST"],
                    clients.map { client in
                        [
                            String(client.id), client.name, "…" + client.tokenTail, Output.time(client.createdAt),
                            Output.time(client.revokedAt), String(client.requests), Output.time(client.lastRequestAt),
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
                let record = try database.open().revokeClient(client)
                print("client '\(record.name)' revoked")
            }
        }
    }
}
