import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

struct PricesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prices",
        abstract: "The price table that turns each request's tokens into its cost (US dollars per 1M tokens).",
        subcommands: [Import.self, List.self]
    )

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a price file (the format of etc/prices.csv) into the database; without FILE the table shipped with this binary. A model imported again is replaced; a running gateway applies it within seconds."
        )
        @Argument(help: "A price file; default: the shipped etc/prices.csv.") var file: String?
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let text: String
                if let file {
                    guard let data = FileManager.default.contents(atPath: file) else {
                        throw CLIError.cannotRead("cannot read the price file '\(file)'")
                    }
                    text = String(decoding: data, as: UTF8.self)
                } else {
                    text = AppDatabase.shippedPriceFile
                }
                switch PriceFile.parse(text) {
                case .failure(let error):
                    throw CLIError.noValidLine("\(file ?? "the shipped price table"): \(error)")
                case .success(let prices):
                    let count = try await database.withStore { try await $0.importPrices(prices, now: Date()) }
                    print("imported prices of \(count) models from \(file ?? "the shipped price table")")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the prices in force (US dollars per 1M tokens).")
        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await reportingErrors {
                let prices = try await database.withStore { try await $0.listPrices() }
                if output.json { return try Output.json(prices) }
                func usd(_ micros: Int64?) -> String { micros.map { Micros.dollars($0) } ?? "-" }
                Output.table(
                    ["MODEL", "INPUT", "CACHED INPUT", "OUTPUT", "THINKING", "LONG OVER", "INPUT LONG", "CACHED LONG", "OUTPUT LONG", "THINKING LONG", "AUDIO INPUT", "TAKEN", "SOURCE"],
                    prices.map { p in
                        [
                            p.model, usd(p.input), usd(p.cachedInput), usd(p.output), usd(p.thinking),
                            p.longContextThreshold.map(String.init) ?? "-", usd(p.inputLong), usd(p.cachedInputLong),
                            usd(p.outputLong), usd(p.thinkingLong), usd(p.audioInput), p.takenOn ?? "-", p.source ?? "-",
                        ]
                    }
                )
            }
        }
    }
}
