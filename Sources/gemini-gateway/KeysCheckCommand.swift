import ArgumentParser
import Foundation
import GatewayCore
import GatewayServer
import GatewayStore

// MARK: - keys check

extension KeysCommand {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Probe keys with Gemini's free models-list call and report which are alive.",
            discussion: """
                Checks the deleted, disabled and cooling keys (--all: every key; or the keys named) \
                with GET /v1beta/models?pageSize=1 through one upstream, and judges each answer as the \
                gateway does: alive (200), throttled (429: the key is valid), dead (API_KEY_INVALID, \
                leaked, ...), unusable (403 SERVICE_DISABLED, permission), or unknown (the upstream or \
                Google failed: never the key's fault). Nothing changes unless --restore is given: then \
                deleted and disabled keys found alive or throttled become active again, and cooling keys \
                found alive get their own cooldowns cleared; a running gateway picks this up by itself. \
                Exit codes: 0 the check ran (whatever it found), 69 the upstream gave no answer at all \
                (nothing changed), and the usual 1, 64, 75.
                """
        )

        @Argument(help: "Keys to check: ids, fingerprints (or unique prefixes), or last 4 characters. Default: deleted, disabled and cooling keys.")
        var keys: [String] = []

        @Flag(help: "Check every key, active ones included.")
        var all = false

        @Flag(help: "Bring back the keys found alive: restore deleted and disabled ones, clear the cooldowns of cooling ones.")
        var restore = false

        @Option(help: ArgumentHelp("Upstream base URL to probe through (default: the first enabled upstream).", valueName: "url"))
        var upstream: String?

        @Option(help: ArgumentHelp("Probes in flight at once.", valueName: "n"))
        var concurrency = 8

        @Option(help: ArgumentHelp("Seconds each probe may take to connect, and to get each part of the answer.", valueName: "seconds"))
        var timeout: Double = 10

        @Option(help: ArgumentHelp(
            "PEM file of extra CA certificates to trust for an https upstream [GEMINI_GATEWAY_UPSTREAM_CA_FILE].",
            valueName: "file"
        ))
        var upstreamCAFile: String?

        /// `--upstream-ca-file`, else the environment's.
        var caFile: String? {
            upstreamCAFile ?? ProcessInfo.processInfo.environment["GEMINI_GATEWAY_UPSTREAM_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        }

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard !(all && !keys.isEmpty) else { throw ValidationError("give keys to check or --all, not both") }
            guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be 1 to 256") }
            guard timeout > 0, timeout <= 600 else { throw ValidationError("--timeout must be more than 0 and at most 600 seconds") }
            if let upstream, case .failure(let error) = ListFile.normalizeUpstreamURL(upstream) {
                throw ValidationError("--upstream: \(error.message)")
            }
            if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
                throw ValidationError("--upstream-ca-file '\(caFile)' cannot be read")
            }
        }

        func run() async throws {
            try await reportingErrors {
                try await database.withStore { store in try await check(store) }
            }
        }

        private func check(_ store: any OperatorStore) async throws {
            // A secret edited by hand into something that is not a key is not sent anywhere
            // (the gateway does not use it either): said, not probed.
            let chosen = try await store.keysToCheck(selectors: keys, all: all, now: Date())
            let candidates = chosen.filter { !$0.key.invalidSecret }
            for skipped in chosen where skipped.key.invalidSecret {
                Output.warning("key \(skipped.key.fingerprint): its stored secret is not a valid key (edited by hand?), not checked; soft-delete it with 'gemini-gateway keys delete \(skipped.key.fingerprint)' and import the key again")
            }
            guard !candidates.isEmpty else {
                if output.json { return try Output.json(KeyCheckReport(upstream: nil, restore: restore, keys: [])) }
                print(!chosen.isEmpty ? "no key left to check (see the warnings above)"
                    : all ? "no keys to check" : "no deleted, disabled or cooling keys to check (--all checks every key)")
                return
            }
            let base = try await upstreamURL(in: store)
            let prober = try KeyProber(upstream: base, timeout: timeout, caFile: caFile)
            let run = await prober.probe(candidates.map(\.secret), concurrency: concurrency)
            await prober.shutdown()
            guard case .finished(let probes) = run else {
                throw CLIError(description: run.unreachableMessage(upstream: base), exitCode: 69)
            }
            var rows = zip(candidates, probes).map { KeyCheckRow(candidate: $0, probe: $1) }
            if restore {
                for index in rows.indices { rows[index].action = try await bringBack(rows[index], in: store) }
            }
            let report = KeyCheckReport(upstream: base, restore: restore, keys: rows)
            if output.json { return try Output.json(report) }
            printTable(report)
        }

        /// `--upstream`, else the first enabled upstream that is not cooling, else the first
        /// enabled one (of those `serve` would use: a URL edited by hand into one `upstreams add`
        /// refuses is not); with no upstream configured at all, Google itself (as `serve` does).
        private func upstreamURL(in store: any OperatorStore) async throws -> String {
            if let upstream, case .success(let normalized) = ListFile.normalizeUpstreamURL(upstream) { return normalized }
            let upstreams = try await store.listUpstreams(now: Date())
            guard !upstreams.isEmpty else { return GatewayConfiguration.defaultUpstream }
            let enabled = upstreams.filter { $0.state == .active && !$0.invalidURL }
            guard let chosen = enabled.first(where: { $0.cooldownUntil == nil }) ?? enabled.first else {
                throw CLIError(
                    description: "every upstream is disabled (or its stored URL is not valid); give one with --upstream URL, or enable one with 'gemini-gateway upstreams restore U'",
                    exitCode: 1)
            }
            return chosen.baseUrl
        }

        /// `--restore` for one key: what was done, or nil.
        private func bringBack(_ row: KeyCheckRow, in store: any OperatorStore) async throws -> KeyCheckRow.Action? {
            guard row.isRestorable else {
                return row.state == .active && row.result == .alive && !row.cooldowns.isEmpty ? .projectCooldownsKept : nil
            }
            if row.state != .active {
                _ = try await store.setKeyState(String(row.id), to: .active, reason: nil, now: Date())
                return .restored
            }
            guard try await store.clearKeyCooldowns(id: row.id, now: Date()) != nil else { return nil }
            return row.cooldowns.contains { $0.project != nil } ? .cooldownsClearedProjectCooldownsKept : .cooldownsCleared
        }

        private func printTable(_ report: KeyCheckReport) {
            var header = ["ID", "FINGERPRINT", "TAIL", "PROJECT", "BEFORE", "RESULT", "REASON"]
            if restore { header.append("DONE") }
            Output.table(header, report.keys.map { row in
                var cells = [
                    String(row.id), row.fingerprint, "…" + row.tail, row.project ?? "-", row.before, row.result.rawValue, row.explanation,
                ]
                if restore { cells.append(row.action?.text ?? "-") }
                return cells
            })
            let counts = report.counts
            print("")
            print("\(Output.plural(report.keys.count, "key")) checked through \(report.upstream ?? "-"): \(counts.alive) alive, "
                + "\(counts.throttled) throttled, \(counts.dead) dead, \(counts.unusable) unusable, \(counts.unknown) unknown")
            if counts.unknown > 0 {
                print("unknown: the upstream or Google failed, not the key; try again later or through another --upstream")
            }
            if restore {
                let restored = report.keys.count { $0.action == .restored }
                let cleared = report.keys.count { $0.action == .cooldownsCleared || $0.action == .cooldownsClearedProjectCooldownsKept }
                print("restored \(Output.plural(restored, "key")); cleared the cooldowns of \(Output.plural(cleared, "key"))")
            } else {
                let restorable = report.keys.count(where: \.isRestorable)
                if restorable > 0 { print("nothing was changed; --restore brings back \(Output.plural(restorable, "key")) found alive") }
            }
        }
    }
}

// MARK: - The report

/// What `keys check` found, as `--json` prints it.
struct KeyCheckReport: Encodable {
    var upstream: String?
    var restore: Bool
    var counts: Counts
    var keys: [KeyCheckRow]

    struct Counts: Encodable {
        var alive = 0, throttled = 0, dead = 0, unusable = 0, unknown = 0
    }

    init(upstream: String?, restore: Bool, keys: [KeyCheckRow]) {
        self.upstream = upstream
        self.restore = restore
        self.keys = keys
        var counts = Counts()
        for row in keys {
            switch row.result {
            case .alive: counts.alive += 1
            case .throttled: counts.throttled += 1
            case .dead: counts.dead += 1
            case .unusable: counts.unusable += 1
            case .unknown: counts.unknown += 1
            }
        }
        self.counts = counts
    }
}

/// One probed key: what it was, what the probe found, what `--restore` did. Never the secret.
struct KeyCheckRow: Encodable {
    typealias Result = KeyProbeFinding

    enum Action: String, Encodable {
        case restored
        case cooldownsCleared = "cooldowns_cleared"
        case cooldownsClearedProjectCooldownsKept = "cooldowns_cleared_project_cooldowns_kept"
        case projectCooldownsKept = "project_cooldowns_kept"

        var text: String {
            switch self {
            case .restored: "restored"
            case .cooldownsCleared: "cooldowns cleared"
            case .cooldownsClearedProjectCooldownsKept: "cooldowns cleared; project cooldowns kept"
            case .projectCooldownsKept: "project cooldowns kept"
            }
        }
    }

    var id: Int64
    var fingerprint: String
    var tail: String
    var project: String?
    /// The state before the check.
    var state: KeyRecord.State
    var deletedReason: String?
    /// Cooldowns in force before the check (the project's included, marked with `project`).
    var cooldowns: [CooldownListing]
    var result: Result
    /// The verdict's reason: `OK`, `API_KEY_INVALID`, `RATE_LIMIT`, `SERVICE_DISABLED`, `CONNECTION_REFUSED`, ...
    var reason: String
    /// The HTTP status of the answer; nil when there was none.
    var httpStatus: Int?
    /// Google's message, or what went wrong on the way.
    var message: String?
    /// What `--restore` did; nil when nothing.
    var action: Action?

    init(candidate: KeyCheckCandidate, probe: ProbeOutcome) {
        let key = candidate.key
        id = key.id
        fingerprint = key.fingerprint
        tail = key.tail
        project = key.project
        state = key.state
        deletedReason = key.deletedReason
        cooldowns = key.cooldowns
        (result, reason) = (probe.finding, probe.reason)
        httpStatus = probe.status
        message = probe.message
    }

    /// The state before, in a table cell.
    var before: String {
        switch state {
        case .deleted: deletedReason.map { "deleted (\($0))" } ?? "deleted"
        case .disabled: "disabled"
        case .active:
            cooldowns.isEmpty ? "active" : "cooling: " + cooldowns.map { "\($0.model) \($0.reason)" }.joined(separator: ", ")
        }
    }

    /// The reason, with the start of the message, in a table cell.
    var explanation: String {
        guard result != .alive, let message, !message.isEmpty else { return reason }
        let short = message.count > 72 ? message.prefix(71) + "…" : Substring(message)
        return "\(reason): \(short)"
    }

    /// Whether `--restore` brings the key back: a deleted or disabled key that answered (a
    /// throttled key is a valid key), or a cooling key that is alive and has cooldowns of its own.
    var isRestorable: Bool {
        switch (state, result) {
        case (.deleted, .alive), (.deleted, .throttled), (.disabled, .alive), (.disabled, .throttled): true
        case (.active, .alive): cooldowns.contains { $0.project == nil }
        default: false
        }
    }
}

// MARK: - Messages

extension ProbeRun {
    /// The error `keys check` ends with when the upstream gave no answer.
    func unreachableMessage(upstream: String) -> String {
        guard case .unreachable(let failure) = self else { return "" }
        let why = [failure.verdict.reason, failure.message].compactMap { $0 }.joined(separator: ": ")
        return "no answer from upstream \(upstream) (\(why)); no key was judged and nothing changed. "
            + "Check the upstream, or give another with --upstream URL"
    }
}
