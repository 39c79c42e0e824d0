import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore

/// The limits of `clients add` and `clients set`, each with a `--no-X` that removes it (`set`).
struct ClientLimitOptions: ParsableArguments {
    @Option(name: .customLong("rpm"), help: ArgumentHelp("Requests per minute (the last 60 s).", valueName: "n"))
    var rpm: Int?
    @Option(name: .customLong("rpd"), help: ArgumentHelp("Requests per UTC day.", valueName: "n"))
    var rpd: Int?
    @Option(name: .customLong("tpm"), help: ArgumentHelp("Tokens (prompt + candidates + thoughts) per minute.", valueName: "n"))
    var tpm: Int?
    @Option(name: .customLong("tpd"), help: ArgumentHelp("Tokens per UTC day.", valueName: "n"))
    var tpd: Int?
    @Option(name: .customLong("daily-budget"), help: ArgumentHelp("US dollars per UTC day (5, 0.50).", valueName: "usd"))
    var dailyBudget: String?
    @Option(name: .customLong("monthly-budget"), help: ArgumentHelp("US dollars per UTC month.", valueName: "usd"))
    var monthlyBudget: String?
    @Option(name: .customLong("max-concurrent"), help: ArgumentHelp("Requests (streams included) at once.", valueName: "n"))
    var maxConcurrent: Int?
    @Option(name: .customLong("models"), help: ArgumentHelp(
        "Allowed models, comma-separated names or globs ('gemini-2.5-flash*').", valueName: "list"))
    var models: String?
    @Option(name: .customLong("expires"), help: ArgumentHelp(
        "When the token stops working: a date (valid through that UTC day), a UTC date and time, or a duration from now (90d).",
        valueName: "when"))
    var expires: String?

    @Flag(name: .customLong("no-rpm"), help: "Remove the requests-per-minute limit.") var noRPM = false
    @Flag(name: .customLong("no-rpd"), help: "Remove the requests-per-day limit.") var noRPD = false
    @Flag(name: .customLong("no-tpm"), help: "Remove the tokens-per-minute limit.") var noTPM = false
    @Flag(name: .customLong("no-tpd"), help: "Remove the tokens-per-day limit.") var noTPD = false
    @Flag(name: .customLong("no-daily-budget"), help: "Remove the daily budget.") var noDailyBudget = false
    @Flag(name: .customLong("no-monthly-budget"), help: "Remove the monthly budget.") var noMonthlyBudget = false
    @Flag(name: .customLong("no-max-concurrent"), help: "Remove the concurrency limit.") var noMaxConcurrent = false
    @Flag(name: .customLong("no-models"), help: "Allow every model.") var noModels = false
    @Flag(name: .customLong("no-expires"), help: "Let the token never expire.") var noExpires = false

    func validate() throws {
        for (name, value) in [("--rpm", rpm), ("--rpd", rpd), ("--tpm", tpm), ("--tpd", tpd), ("--max-concurrent", maxConcurrent)] {
            if let value, value < 1 { throw ValidationError("\(name) must be a whole number of at least 1 (remove a limit with --no-\(name.dropFirst(2)))") }
        }
        for (name, value) in [("--daily-budget", dailyBudget), ("--monthly-budget", monthlyBudget)] {
            if let value, Micros.parse(dollars: value) == nil {
                throw ValidationError("\(name) '\(value)' is no amount of US dollars (5, 0.50, at most 6 decimals)")
            }
        }
        if let models, modelList(models) == nil {
            throw ValidationError("--models '\(models)' names no model (give names or globs, comma-separated)")
        }
        if let expires {
            do { _ = try ReportTime.parseExpiry(expires, now: Date()) } catch { throw ValidationError(error.message) }
        }
        let pairs: [(String, Bool, Bool)] = [
            ("rpm", rpm != nil, noRPM), ("rpd", rpd != nil, noRPD), ("tpm", tpm != nil, noTPM), ("tpd", tpd != nil, noTPD),
            ("daily-budget", dailyBudget != nil, noDailyBudget), ("monthly-budget", monthlyBudget != nil, noMonthlyBudget),
            ("max-concurrent", maxConcurrent != nil, noMaxConcurrent), ("models", models != nil, noModels),
            ("expires", expires != nil, noExpires),
        ]
        for (name, set, removed) in pairs where set && removed {
            throw ValidationError("--\(name) and --no-\(name) contradict each other")
        }
    }

    private func modelList(_ text: String) -> [String]? {
        let list = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !list.isEmpty, list.allSatisfy({ $0.count <= 200 && $0.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f } }) else {
            return nil
        }
        return list
    }

    /// Whether a `--no-X` was given (`clients add` takes none).
    var removesAny: Bool {
        noRPM || noRPD || noTPM || noTPD || noDailyBudget || noMonthlyBudget || noMaxConcurrent || noModels || noExpires
    }

    /// The change the options make (validated: every value parses).
    func change(now: Date = Date()) -> ClientLimitsChange {
        var c = ClientLimitsChange()
        c.rpm = noRPM ? .some(nil) : rpm.map { $0 }
        c.rpd = noRPD ? .some(nil) : rpd.map { $0 }
        c.tpm = noTPM ? .some(nil) : tpm.map { $0 }
        c.tpd = noTPD ? .some(nil) : tpd.map { $0 }
        c.dailyBudgetMicros = noDailyBudget ? .some(nil) : dailyBudget.map { Micros.parse(dollars: $0) }
        c.monthlyBudgetMicros = noMonthlyBudget ? .some(nil) : monthlyBudget.map { Micros.parse(dollars: $0) }
        c.maxConcurrent = noMaxConcurrent ? .some(nil) : maxConcurrent.map { $0 }
        c.models = noModels ? .some(nil) : models.map { modelList($0) }
        c.expiresAt = noExpires ? .some(nil) : expires.map { try? ReportTime.parseExpiry($0, now: now) }
        return c
    }
}

extension ClientLimits {
    /// The limits as `clients list` shows them, with what was used: `rpm 2/60, $0.40/$5.00 a day`.
    func described(_ used: ClientUsage) -> String {
        var parts: [String] = []
        if let rpm { parts.append("rpm \(used.minuteRequests)/\(rpm)") }
        if let rpd { parts.append("rpd \(used.dayRequests)/\(rpd)") }
        if let tpm { parts.append("tpm \(used.minuteTokens)/\(tpm)") }
        if let tpd { parts.append("tpd \(used.dayTokens)/\(tpd)") }
        if let dailyBudgetMicros { parts.append("day $\(Micros.dollars(used.dayCostMicros))/$\(Micros.dollars(dailyBudgetMicros))") }
        if let monthlyBudgetMicros { parts.append("month $\(Micros.dollars(used.monthCostMicros))/$\(Micros.dollars(monthlyBudgetMicros))") }
        if let maxConcurrent { parts.append("concurrent \(maxConcurrent)") }
        if let models { parts.append("models \(models.joined(separator: ","))") }
        if let expiresAt { parts.append("expires \(Output.time(expiresAt))") }
        return parts.isEmpty ? "-" : parts.joined(separator: "; ")
    }
}
