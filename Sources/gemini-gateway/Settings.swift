import ArgumentParser
import Foundation
import GatewayCore
import Synchronization

/// Where every command reads its `GEMINI_GATEWAY_*` settings: the settings file of
/// `serve --config FILE` (systemd's EnvironmentFile format), then the process environment.
/// A command-line flag wins over both. `serve` re-reads the file on SIGHUP (``reload()``).
enum Settings {
    static let prefix = "GEMINI_GATEWAY_"

    private static let state = Mutex<(path: String?, file: SettingsFile)>((nil, SettingsFile()))

    /// The value of `name`: the settings file's, else the environment's; empty counts as unset.
    static func value(_ name: String) -> String? {
        let fromFile = state.withLock { $0.file.values[name] }
        let value = fromFile ?? ProcessInfo.processInfo.environment[name]
        return value.flatMap { $0.isEmpty ? nil : $0 }
    }

    static func number<T: LosslessStringConvertible>(_ name: String) -> T? {
        value(name).flatMap(T.init)
    }

    /// A flag's value: 1, true or yes.
    static func flag(_ name: String) -> Bool {
        value(name).map { ["1", "true", "yes"].contains($0.lowercased()) } ?? false
    }

    /// The settings file in use, if any.
    static var path: String? { state.withLock { $0.path } }

    /// Reads the file that `--config FILE` (or `--config=FILE`, or GEMINI_GATEWAY_CONFIG) names,
    /// before the arguments are parsed, so that the options' defaults come from it.
    static func load(arguments: [String]) throws {
        var path = ProcessInfo.processInfo.environment[prefix + "CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" { break }
            if argument == "--config", index + 1 < arguments.endIndex {
                path = arguments[index + 1]
                index += 1
            } else if argument.hasPrefix("--config=") {
                path = String(argument.dropFirst("--config=".count))
            }
            index += 1
        }
        guard let path else { return }
        let file = try read(path)
        state.withLock { $0 = (path, file) }
    }

    /// Reads the settings file again (SIGHUP); on a problem nothing changes and the error says why.
    static func reload() throws {
        guard let path else { return }
        let file = try read(path)
        state.withLock { $0.file = file }
    }

    private static func read(_ path: String) throws -> SettingsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CLIError.cannotRead("cannot read the settings file '\(path)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CLIError.noValidLine("the settings file '\(path)' is not UTF-8 text")
        }
        do {
            return try SettingsFile.parse(text, prefix: prefix, known: known)
        } catch {
            // Read with the removed names allowed, it parses: the line is one of them.
            if let file = try? SettingsFile.parse(text, prefix: prefix, known: known.union(removed.keys)),
               let (name, instead) = removed.first(where: { file.values[$0.key] != nil }) {
                throw CLIError.noValidLine("the settings file '\(path)', line \(error.line): \(name) is no longer a setting: \(instead)")
            }
            throw CLIError.noValidLine("the settings file '\(path)', \(error) (the names are the [GEMINI_GATEWAY_…] of 'serve --help')")
        }
    }

    /// Every setting a file may hold: the environment names of serve's options.
    static let known: Set<String> = Set([
        "HOST", "PORT", "PUBLIC_URL", "PROXY_KEY", "ADMIN_TOKEN", "METRICS_PUBLIC", "METRICS_PER_KEY", "KEYS_FILE",
        "UPSTREAMS_FILE", "MAX_BODY_BYTES", "MAX_ATTEMPTS", "RETRY_BUDGET", "CONNECT_TIMEOUT", "HEAD_TIMEOUT",
        "READ_TIMEOUT", "RELOAD_INTERVAL", "SHUTDOWN_GRACE", "LOG_RETENTION_DAYS", "UPSTREAM_CA_FILE", "LOG_LEVEL",
        "DB", "BUSY_TIMEOUT", "INVALID_KEY_RECHECK", "FORWARD_CLIENT_ADDRESS", "REQUEST_HEAD_TIMEOUT",
        "REQUEST_BODY_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "MAX_CONNECTIONS", "MAX_IN_FLIGHT",
    ].map { prefix + $0 })

    /// Settings that were removed, with what to do instead. A settings file that still names one
    /// is refused like any unknown name (a typo must not pass silently, and `serve` refuses the
    /// removed flag too), but the error says it was removed and what to do. The environment is not
    /// checked for unknown names, so a removed one left there is ignored like any other.
    static let removed: [String: String] = [
        prefix + "UPSTREAM_TRANSPORT": "the gateway has one upstream transport (SwiftNIO's); delete the line",
    ]
}
