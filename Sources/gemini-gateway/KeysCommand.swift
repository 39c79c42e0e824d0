import ArgumentParser
import Foundation
import GatewayStore

struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "List and manage Gemini API keys (shown by fingerprint, never whole).",
        subcommands: [List.self, Disable.self, Restore.self, Delete.self, SetKey.self, Check.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List keys: fingerprint, project, state, cooldowns in force, use and throttle times, counts."
        )

        @Option(name: .long, help: "Only keys in this state (active, disabled, deleted).")
        var state: KeyRecord.State?

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors {
                let states = state.map { [$0] } ?? Set(KeyRecord.State.allCases)
                let keys = try await database.withStore { try await $0.listKeys(now: Date(), states: states) }
                if output.json { return try Output.json(keys) }
                Output.table(
                    ["ID", "FINGERPRINT", "TAIL", "PROJECT", "FREE TIER", "STATE", "COOLDOWNS", "LAST USED", "LAST THROTTLED", "REQUESTS", "FAILED", "THROTTLES", "WHY DELETED"],
                    keys.map { key in
                        [
                            String(key.id), key.fingerprint, key.invalidSecret ? "?" : "…" + key.tail, key.project ?? "-",
                            key.freeTier ? "yes" : "-",
                            key.invalidSecret ? "\(key.state.rawValue) (unused: stored secret is not a valid key)" : key.state.rawValue,
                            key.cooldowns.isEmpty ? "-" : key.cooldowns.map { "\($0.model) until \(Output.time($0.until)) (\($0.reason))" }.joined(separator: "; "),
                            Output.time(key.lastUsedAt), Output.time(key.lastThrottledAt),
                            String(key.requests), String(key.failedRequests), String(key.throttles),
                            key.deletedReason.map { "\($0) at \(Output.time(key.deletedAt))" } ?? "-",
                        ]
                    }
                )
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop using a key until it is restored.")
        @Argument(help: "The key: its id, fingerprint (or a unique prefix), or last 4 characters.") var key: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let record = try await database.withAdminStore(creating: false) { try await $0.setKeyState(key, to: .disabled, reason: nil, now: Date()) }
                print("key \(record.fingerprint) (…\(record.tail)) disabled")
            }
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a disabled or deleted key active again and clear its cooldowns.")
        @Argument(help: "The key: its id, fingerprint (or a unique prefix), or last 4 characters.") var key: String
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let record = try await database.withAdminStore(creating: false) { try await $0.setKeyState(key, to: .active, reason: nil, now: Date()) }
                print("key \(record.fingerprint) (…\(record.tail)) active")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Soft-delete a key: it is never used again, but its row and history stay (restore undoes it)."
        )
        @Argument(help: "The key: its id, fingerprint (or a unique prefix), or last 4 characters.") var key: String
        @Option(name: .long, help: "Why, shown by 'keys list'.") var reason: String = "deleted by operator"
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let record = try await database.withAdminStore(creating: false) { try await $0.setKeyState(key, to: .deleted, reason: reason, now: Date()) }
                print("key \(record.fingerprint) (…\(record.tail)) deleted (soft): \(reason)")
            }
        }
    }
}

extension KeysCommand {
    struct SetKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Mark a key, or every key of a project label, free-tier (its requests cost 0; their list price is still reported) or not."
        )
        @Argument(help: "The key: its id, fingerprint (or a unique prefix), or last 4 characters (or give --project).")
        var key: String?
        @Option(name: .long, help: "Every key with this project label instead of one key.") var project: String?
        @Flag(name: .customLong("free-tier"), help: "Its requests cost nothing.") var freeTier = false
        @Flag(name: .customLong("no-free-tier"), help: "Its requests cost the list price.") var paid = false
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard freeTier != paid else { throw ValidationError("give --free-tier or --no-free-tier") }
            guard (key == nil) != (project == nil) else { throw ValidationError("name one key, or give --project LABEL") }
        }

        func run() async throws {
            try await reportingErrors {
                let (freeTier, key, project) = (freeTier, key, project)
                let keys = try await database.withStore { try await $0.setFreeTier(freeTier, key: key, project: project, now: Date()) }
                for record in keys {
                    print("key \(record.fingerprint) (…\(record.tail)) \(freeTier ? "free-tier" : "paid")")
                }
            }
        }
    }
}

extension KeyRecord.State: ExpressibleByArgument {}
