import ArgumentParser
import Foundation
import GatewayStore

/// `gemini-gateway report clients|models|keys|upstreams|health`: the common usage questions,
/// answered from the daily totals (so they stay fast, and survive log retention) and the raw rows.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Usage reports: per client or model per day, per key, per upstream, and health now.",
        discussion: """
            Times are UTC. --since and --until take a date (2026-11-01; a date in --until includes that \
            day), a date and time (2026-11-01 12:00) or a duration back from now (90m, 24h, 7d, 2w); the \
            default range is the last 7 days. Days whose raw rows were pruned by --log-retention-days \
            are counted whole (noted on stderr). The same numbers are in the SQL views usage_by_client_day, \
            usage_by_model_day, usage_by_key_day, usage_by_upstream_day and health (see docs/reports.md).
            """,
        subcommands: [Clients.self, Models.self, Keys.self, Upstreams.self, Spend.self, Health.self]
    )

    // MARK: - Per client / per model per day

    struct Clients: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Requests, errors and tokens per client per day (--totals: per client for the whole range)."
        )
        @OptionGroup var range: ReportRangeOptions
        @OptionGroup var filter: ReportFilterOptions
        @Flag(name: .long, help: "One row per client for the whole range instead of one per day.") var totals = false
        @OptionGroup var format: ReportFormatOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await runUsageReport(by: .client, noun: "client", range: range, filter: filter, totals: totals, format: format, database: database)
        }
    }

    struct Models: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Requests, errors and tokens per model per day (--totals: per model for the whole range)."
        )
        @OptionGroup var range: ReportRangeOptions
        @OptionGroup var filter: ReportFilterOptions
        @Flag(name: .long, help: "One row per model for the whole range instead of one per day.") var totals = false
        @OptionGroup var format: ReportFormatOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await runUsageReport(by: .model, noun: "model", range: range, filter: filter, totals: totals, format: format, database: database)
        }
    }

    /// `report clients` and `report models`: the same report along another dimension.
    static func runUsageReport(
        by dimension: UsageDimension, noun: String, range: ReportRangeOptions, filter: ReportFilterOptions,
        totals: Bool, format: ReportFormatOptions, database: DatabaseOptions
    ) async throws {
        try await reportingErrors {
            let range = try range.parsed()
            let report = try await database.withStore { [filter = filter.filter] in try await $0.report(.usage(dimension, range, filter, perDay: !totals)) }
            let caption = range.caption("requests per \(noun)\(totals ? "" : " per day")")
            ReportOutput.print(report, format: format.effective, caption: caption, empty: "no requests in this range")
        }
    }

    // MARK: - Spend

    struct Spend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What the requests cost in US dollars, per client (or --by model, key, project, day) per day (--totals: for the whole range).",
            discussion: "cost_usd is what was charged (free-tier keys count 0), list_cost_usd the list price, saved_usd the difference; unpriced_requests used a model the price table does not know (counted at 0: 'gemini-gateway prices import')."
        )
        @Option(name: .long, help: "Group by client, model, key, project or day.") var by: SpendDimension = .client
        @Flag(name: .long, help: "One row per client (model, ...) for the whole range instead of one per day.") var totals = false
        @OptionGroup var range: ReportRangeOptions
        @OptionGroup var format: ReportFormatOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let range = try range.parsed()
                let report = try await database.withStore { [by, totals] in try await $0.report(.spend(by, range, perDay: !totals)) }
                let caption = range.caption(by == .day ? "spend per day" : "spend per \(by.rawValue)\(totals ? "" : " per day")")
                ReportOutput.print(report, format: format.effective, caption: caption, empty: "no requests in this range")
                if let column = report.columns.firstIndex(of: "unpriced_requests"),
                   report.rows.contains(where: { ($0[column].integer ?? 0) > 0 }) {
                    LogOutput.standardError.flush(waitingUpTo: 2)
                    FileHandle.standardError.write(Data("note: unpriced_requests used models without a price (counted at $0); see 'gemini-gateway prices list'\n".utf8))
                }
            }
        }
    }

    // MARK: - Per key / per upstream over the range

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per key used in the range (fingerprint, never the key): requests, errors, tries, throttles, failures, tokens.",
            discussion: "Not split by model (see 'report health' for the cooldowns of each key per model)."
        )
        @OptionGroup var range: ReportRangeOptions
        @OptionGroup var format: ReportFormatOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let range = try range.parsed()
                let report = try await database.withStore { try await $0.report(.keys(range)) }
                ReportOutput.print(report, format: format.effective, caption: range.caption("keys"), empty: "no key was used in this range")
            }
        }
    }

    struct Upstreams: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per upstream used in the range: requests, tries, failure rate, latency (average, max, p50/p95 approximate)."
        )
        @OptionGroup var range: ReportRangeOptions
        @Option(name: .long, help: ArgumentHelp("Only this model.", valueName: "model")) var model: String?
        @OptionGroup var format: ReportFormatOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let range = try range.parsed()
                let report = try await database.withStore { [model] in try await $0.report(.upstreams(range, model: model)) }
                ReportOutput.print(report, format: format.effective, caption: range.caption("upstreams"), empty: "no upstream was used in this range")
            }
        }
    }

    // MARK: - Health now

    struct Health: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every upstream and key now: usable, cooling (which models, until when, why), disabled or deleted (why)."
        )
        @Flag(name: .long, help: "Only what is not usable.") var problems = false
        @OptionGroup var format: ReportFormatOptions
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            try await reportingErrors {
                let report = try await database.withStore { [problems] in try await $0.report(.health(problemsOnly: problems)) }
                ReportOutput.print(report, format: format.effective, empty: problems ? "everything is usable" : "no keys or upstreams")
            }
        }
    }
}

// MARK: - Options

/// `--since` and `--until`, checked before anything runs (a bad one is a usage error, exit 64).
struct ReportRangeOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Start: a date, date and time, or duration back from now (default 7d).", valueName: "time"))
    var since: String?

    @Option(name: .long, help: ArgumentHelp("End: a date (included), date and time, or duration back from now (default now).", valueName: "time"))
    var until: String?

    func validate() throws {
        _ = try parsed()
    }

    func parsed(now: Date = Date()) throws -> ReportRange {
        do {
            return try ReportRange.parse(since: since, until: until, now: now)
        } catch {
            throw ValidationError(error.message)
        }
    }
}

/// `--client` and `--model` for the usage reports.
struct ReportFilterOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Only this client (its name; '-' for unauthenticated requests).", valueName: "name"))
    var client: String?

    @Option(name: .long, help: ArgumentHelp("Only this model ('-' for calls that name none).", valueName: "model"))
    var model: String?

    var filter: ReportFilter { ReportFilter(client: client, model: model) }
}

extension ReportRange {
    /// `requests per client per day, 2026-11-20 15:00:00 to 2026-11-27 15:00:00 UTC`.
    func caption(_ what: String) -> String {
        "\(what), \(Output.time(since)) to \(Output.time(until)) UTC"
    }
}

extension SpendDimension: ExpressibleByArgument {}
