import ArgumentParser
import Foundation
import GatewayStore

struct UpstreamsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upstreams",
        abstract: "List and manage upstream base URLs (Google itself or relays of it).",
        subcommands: [List.self, Add.self, Disable.self, Restore.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List upstreams with state, cooldown and failures.")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors {
                let upstreams = try await database.withStore { try await $0.listUpstreams(now: Date()) }
                if output.json { return try Output.json(upstreams) }
                Output.table(
                    ["ID", "BASE URL", "STATE", "COOLING UNTIL", "FAILURE STREAK", "LAST FAILURE", "LAST USED", "REQUESTS", "FAILED TRIES"],
                    upstreams.map { upstream in
                        [
                            String(upstream.id), upstream.baseUrl,
                            upstream.invalidURL ? "\(upstream.state.rawValue) (unused: stored URL is not valid)" : upstream.state.rawValue,
                            Output.time(upstream.cooldownUntil),
                            String(upstream.failureStreak),
                            upstream.lastFailureReason.map { "\($0) at \(Output.time(upstream.lastFailureAt))" } ?? "-",
                            Output.time(upstream.lastUsedAt), String(upstream.requests), String(upstream.failedAttempts),
                        ]
                    }
                )
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an upstream base URL (http or https, no query).")
        @Argument(help: "The base URL, e.g. https://generativelanguage.googleapis.com") var url: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let url = url
                let summary = try await database.withStore { try await $0.addUpstream(url, now: Date()) }
                if summary.added == 1 {
                    print("upstream added")
                } else if !summary.disabled.isEmpty {
                    print("upstream present but disabled; use 'gemini-gateway upstreams restore \(summary.disabled[0])'")
                } else {
                    print("upstream already present")
                }
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop sending requests to an upstream.")
        @Argument(help: "The upstream: its id or base URL.") var upstream: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let upstream = upstream
                let record = try await database.withStore { try await $0.setUpstreamState(upstream, to: .disabled, now: Date()) }
                print("upstream \(record.baseUrl) disabled")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Use an upstream again and clear its cooldown.")
        @Argument(help: "The upstream: its id or base URL.") var upstream: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let upstream = upstream
                let record = try await database.withStore { try await $0.setUpstreamState(upstream, to: .active, now: Date()) }
                print("upstream \(record.baseUrl) active")
            }
        }
    }
}
