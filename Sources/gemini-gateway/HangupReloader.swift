import ArgumentParser
import Foundation
import GatewayServer
import GatewayStore
import Logging
import ServiceLifecycle
import UnixSignals

/// `serve`'s SIGHUP (`systemctl reload`): re-reads the settings file, parses serve's arguments
/// again, applies what can change while serving (tokens, `--metrics-public`, retries, the log
/// level), re-imports the `--keys` and `--upstreams` files, and logs the changes that wait for a
/// restart. A settings file or a list file with a problem changes nothing and says why; the
/// gateway keeps serving with what it had.
struct HangupReloader: Service {
    let gateway: Gateway
    let store: any AdminStore
    let started: ServeCommand
    let logger: Logger

    func run() async throws {
        var current = started
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            current = await reload(from: current)
        }
    }

    /// Applies the settings in force now; returns them (or `old` when they cannot be read).
    func reload(from old: ServeCommand) async -> ServeCommand {
        var new: ServeCommand
        do {
            try Settings.reload()
            new = try ServeCommand.parse(Self.serveArguments(CommandLine.arguments))
            try new.validate()
        } catch {
            logger.error("reload: the settings cannot be read; those in force are kept", metadata: [
                "error": "\(ServeCommand.message(for: error))",
            ])
            return old
        }
        let before = ReloadableSettings(old.gatewayConfiguration())
        let after = ReloadableSettings(new.gatewayConfiguration())
        LogLevelSwitch.level = Logger.Level(rawValue: new.logLevel) ?? LogLevelSwitch.level
        gateway.apply(after)
        var changed = after.changes(from: before)
        if new.logLevel != old.logLevel { changed.append("log-level") }

        var imported = "none"
        if new.keys != nil || new.upstreams != nil {
            do {
                // Reading the files and SQLite's synchronous import block a thread for as long as
                // they take (seconds for 100,000 keys): not one of the event loops that serve.
                let (keys, upstreams, store) = (new.keys, new.upstreams, store)
                let result = try await withTaskExecutorPreference(globalConcurrentExecutor) {
                    try await ImportCommand.importFiles(keys: keys, upstreams: upstreams, into: store, printing: false)
                }
                imported = [result.keys.map { "keys: \($0.added) added" }, result.upstreams.map { "upstreams: \($0.added) added" }]
                    .compactMap { $0 }.joined(separator: ", ")
            } catch {
                imported = "failed"
                logger.error("reload: importing the key or upstream file failed; nothing was imported", metadata: [
                    "error": "\(ServeCommand.message(for: error))",
                ])
            }
        }
        let waiting = Self.restartOnly(old, new)
        logger.notice("reloaded settings", metadata: [
            "changed": "\(changed.isEmpty ? "none" : changed.joined(separator: ","))",
            "imported": "\(imported)",
            "after_restart": "\(waiting.isEmpty ? "none" : waiting.joined(separator: ","))",
        ])
        return new
    }

    /// The arguments after `serve` of this process's command line.
    static func serveArguments(_ commandLine: [String]) -> [String] {
        guard let index = commandLine.dropFirst().firstIndex(of: "serve") else { return [] }
        return Array(commandLine[(index + 1)...])
    }

    /// The options that differ but only take effect at the next start.
    static func restartOnly(_ old: ServeCommand, _ new: ServeCommand) -> [String] {
        let a = old.gatewayConfiguration(), b = new.gatewayConfiguration()
        let pairs: [(String, String, String)] = [
            ("host", a.host, b.host), ("port", "\(a.port)", "\(b.port)"),
            ("db", old.database.db, new.database.db), ("busy-timeout", "\(old.database.busyTimeout)", "\(new.database.busyTimeout)"),
            ("public-url", a.publicURL ?? "", b.publicURL ?? ""), ("metrics-per-key", "\(a.metricsPerKey)", "\(b.metricsPerKey)"),
            ("max-body-bytes", "\(a.maximumBodyBytes)", "\(b.maximumBodyBytes)"),
            ("connect-timeout", "\(a.connectTimeout)", "\(b.connectTimeout)"),
            ("head-timeout", "\(a.responseHeadTimeout)", "\(b.responseHeadTimeout)"),
            ("read-timeout", "\(a.readIdleTimeout)", "\(b.readIdleTimeout)"),
            ("reload-interval", "\(a.reloadInterval)", "\(b.reloadInterval)"),
            ("shutdown-grace", "\(a.shutdownGracePeriod)", "\(b.shutdownGracePeriod)"),
            ("invalid-key-recheck", "\(String(describing: a.policy.invalidKeyGrace))", "\(String(describing: b.policy.invalidKeyGrace))"),
            ("upstream-ca-file", a.upstreamCAFile ?? "", b.upstreamCAFile ?? ""),
            ("log-retention-days", "\(a.logRetentionDays)", "\(b.logRetentionDays)"),
            ("request-head-timeout", "\(a.requestHeadTimeout)", "\(b.requestHeadTimeout)"),
            ("request-body-timeout", "\(a.requestBodyTimeout)", "\(b.requestBodyTimeout)"),
            ("keep-alive-timeout", "\(a.keepAliveTimeout)", "\(b.keepAliveTimeout)"),
            ("max-connections", a.maximumConnections.map(String.init) ?? "", b.maximumConnections.map(String.init) ?? ""),
            ("max-in-flight", "\(a.maximumInFlight)", "\(b.maximumInFlight)"),
            ("forward-client-address", "\(a.forwardClientAddress)", "\(b.forwardClientAddress)"),
        ]
        return pairs.filter { $0.1 != $0.2 }.map(\.0)
    }
}

/// The service group names its services in its debug lines: by name, not by a dump of the
/// properties (the parsed command, with the tokens, among them).
extension HangupReloader: CustomStringConvertible {
    var description: String { "HangupReloader" }
}
