import ArgumentParser
import Foundation
import GatewayCore
import GatewayServer
import GatewayStore
import GatewayStorePostgres
import Logging
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway.",
        discussion: """
            Every option can also be set in the environment (the name in brackets). SIGTERM or SIGINT \
            stops accepting requests, lets those in flight finish (up to --shutdown-grace seconds), \
            writes the request log, then exits. Keys, upstreams and clients changed with the other \
            commands while serving are picked up within --reload-interval seconds. SIGHUP re-reads the \
            settings file (--config) and applies what can change while serving (tokens, --metrics-public, \
            --max-attempts, --retry-budget, --log-level), re-imports --keys and --upstreams, and logs \
            which other changes wait for a restart.
            """
    )

    @Option(help: ArgumentHelp(
        "A settings file of NAME=VALUE lines (systemd's EnvironmentFile format, names as in brackets here); flags win over it, it wins over the environment; re-read on SIGHUP [GEMINI_GATEWAY_CONFIG].",
        valueName: "file"
    ))
    var config: String?

    @Option(help: ArgumentHelp("Address to listen on [GEMINI_GATEWAY_HOST].", valueName: "address"))
    var host: String = env("GEMINI_GATEWAY_HOST") ?? "0.0.0.0"

    @Option(help: ArgumentHelp("Port to listen on [GEMINI_GATEWAY_PORT].", valueName: "port"))
    var port: Int = envNumber("GEMINI_GATEWAY_PORT") ?? 8000

    @Option(
        name: .customLong("proxy-key"),
        help: ArgumentHelp(
            "A static gateway token clients may use besides those from 'clients add' [GEMINI_GATEWAY_PROXY_KEY].",
            valueName: "token"
        )
    )
    var proxyKey: String?

    @Option(
        name: .customLong("admin-token"),
        help: ArgumentHelp(
            "Token for the operator pages /metrics and /status; never accepted as a client token [GEMINI_GATEWAY_ADMIN_TOKEN].",
            valueName: "token"
        )
    )
    var adminToken: String?

    @Flag(help: ArgumentHelp("Serve /metrics without the admin token [GEMINI_GATEWAY_METRICS_PUBLIC=1]."))
    var metricsPublic: Bool = env("GEMINI_GATEWAY_METRICS_PUBLIC").map { ["1", "true", "yes"].contains($0.lowercased()) } ?? false

    @Flag(help: ArgumentHelp("Add per-key gauges (by key fingerprint) to /metrics [GEMINI_GATEWAY_METRICS_PER_KEY=1]."))
    var metricsPerKey: Bool = env("GEMINI_GATEWAY_METRICS_PER_KEY").map { ["1", "true", "yes"].contains($0.lowercased()) } ?? false

    @Flag(help: ArgumentHelp(
        "Send the client's address headers (X-Forwarded-*, X-Real-IP, Forwarded, Via, CF-Connecting-IP, True-Client-IP) upstream; dropped by default [GEMINI_GATEWAY_FORWARD_CLIENT_ADDRESS=1]."
    ))
    var forwardClientAddress: Bool = env("GEMINI_GATEWAY_FORWARD_CLIENT_ADDRESS").map { ["1", "true", "yes"].contains($0.lowercased()) } ?? false

    @Option(
        name: .customLong("public-url"),
        help: ArgumentHelp(
            "The gateway's address as clients reach it, for the upload URLs it hands out (default: from X-Forwarded-Proto/-Host or Host) [GEMINI_GATEWAY_PUBLIC_URL].",
            valueName: "url"
        )
    )
    var publicURL: String?

    @Option(help: ArgumentHelp("Import this keys file before serving [GEMINI_GATEWAY_KEYS_FILE].", valueName: "file"))
    var keys: String?

    @Option(help: ArgumentHelp("Import this upstreams file before serving [GEMINI_GATEWAY_UPSTREAMS_FILE].", valueName: "file"))
    var upstreams: String?

    @Option(help: ArgumentHelp("Largest request body in bytes; larger is answered 413 [GEMINI_GATEWAY_MAX_BODY_BYTES].", valueName: "bytes"))
    var maxBodyBytes: Int = envNumber("GEMINI_GATEWAY_MAX_BODY_BYTES") ?? GatewayConfiguration().maximumBodyBytes

    @Option(help: ArgumentHelp(
        "Most client connections open at once; at the cap a new one closes the connection idle the longest, or waits in the listen backlog while all are busy (default: (open-file limit - 256) / 2) [GEMINI_GATEWAY_MAX_CONNECTIONS].",
        valueName: "n"
    ))
    var maxConnections: Int?

    @Option(help: ArgumentHelp(
        "Most proxied requests answered at once; one more is answered 503 with Retry-After: 1 at once, nothing sent upstream; 0: no limit [GEMINI_GATEWAY_MAX_IN_FLIGHT].",
        valueName: "n"
    ))
    var maxInFlight: Int = envNumber("GEMINI_GATEWAY_MAX_IN_FLIGHT") ?? GatewayConfiguration().maximumInFlight

    @Option(help: ArgumentHelp("Upstream tries per request [GEMINI_GATEWAY_MAX_ATTEMPTS].", valueName: "n"))
    var maxAttempts: Int = envNumber("GEMINI_GATEWAY_MAX_ATTEMPTS") ?? GatewayConfiguration().maximumAttempts

    @Option(help: ArgumentHelp("Seconds after which no new try of a request starts [GEMINI_GATEWAY_RETRY_BUDGET].", valueName: "seconds"))
    var retryBudget: Double = envNumber("GEMINI_GATEWAY_RETRY_BUDGET") ?? 60

    @Option(help: ArgumentHelp(
        "Seconds a request may wait in all for a key to come back when every key is cooling for its model for a per-minute or bare 429 (never a per-day or limit-0 one), instead of getting 429 at once; within --retry-budget; 0: never wait [GEMINI_GATEWAY_MAX_QUEUE_WAIT].",
        valueName: "seconds"
    ))
    var maxQueueWait: Double = envNumber("GEMINI_GATEWAY_MAX_QUEUE_WAIT") ?? 10

    @Option(help: ArgumentHelp(
        "Most requests waiting for a key at once; one more gets 429 at once [GEMINI_GATEWAY_MAX_QUEUED].",
        valueName: "n"
    ))
    var maxQueued: Int = envNumber("GEMINI_GATEWAY_MAX_QUEUED") ?? GatewayConfiguration().maximumQueued

    @Option(help: ArgumentHelp(
        "Seconds within which 429s of keys of --egress-projects different projects through one upstream, while another upstream serves, blame that upstream instead of the keys [GEMINI_GATEWAY_EGRESS_WINDOW].",
        valueName: "seconds"
    ))
    var egressWindow: Double = envNumber("GEMINI_GATEWAY_EGRESS_WINDOW") ?? EgressRule().window

    @Option(help: ArgumentHelp(
        "Distinct projects (an unlabelled key is a project of its own) throttled through one upstream within --egress-window that blame the upstream; 0: never [GEMINI_GATEWAY_EGRESS_PROJECTS].",
        valueName: "n"
    ))
    var egressProjects: Int = envNumber("GEMINI_GATEWAY_EGRESS_PROJECTS") ?? EgressRule().minimumProjects

    @Option(help: ArgumentHelp(
        "Seconds an upstream blamed for a burst of 429s cools (reason EGRESS_THROTTLED) [GEMINI_GATEWAY_EGRESS_COOLDOWN].",
        valueName: "seconds"
    ))
    var egressCooldown: Double = envNumber("GEMINI_GATEWAY_EGRESS_COOLDOWN") ?? EgressRule().cooldown

    @Option(help: ArgumentHelp("Seconds to connect to an upstream [GEMINI_GATEWAY_CONNECT_TIMEOUT].", valueName: "seconds"))
    var connectTimeout: Double = envNumber("GEMINI_GATEWAY_CONNECT_TIMEOUT") ?? 10

    @Option(help: ArgumentHelp("Seconds to wait for an upstream's response head [GEMINI_GATEWAY_HEAD_TIMEOUT].", valueName: "seconds"))
    var headTimeout: Double = envNumber("GEMINI_GATEWAY_HEAD_TIMEOUT") ?? 600

    @Option(help: ArgumentHelp("Longest silence within an upstream body, in seconds [GEMINI_GATEWAY_READ_TIMEOUT].", valueName: "seconds"))
    var readTimeout: Double = envNumber("GEMINI_GATEWAY_READ_TIMEOUT") ?? 300

    @Option(help: ArgumentHelp(
        "Seconds a client has to send a request's head, from the connection's start or the request's first byte; then the connection closes [GEMINI_GATEWAY_REQUEST_HEAD_TIMEOUT].",
        valueName: "seconds"
    ))
    var requestHeadTimeout: Double = envNumber("GEMINI_GATEWAY_REQUEST_HEAD_TIMEOUT") ?? 30

    @Option(help: ArgumentHelp(
        "Longest silence within a request's body, in seconds; the request is answered 408 and the connection closes [GEMINI_GATEWAY_REQUEST_BODY_TIMEOUT].",
        valueName: "seconds"
    ))
    var requestBodyTimeout: Double = envNumber("GEMINI_GATEWAY_REQUEST_BODY_TIMEOUT") ?? 30

    @Option(help: ArgumentHelp(
        "Seconds an idle keep-alive client connection waits for its next request before it is closed [GEMINI_GATEWAY_KEEP_ALIVE_TIMEOUT].",
        valueName: "seconds"
    ))
    var keepAliveTimeout: Double = envNumber("GEMINI_GATEWAY_KEEP_ALIVE_TIMEOUT") ?? 75

    @Option(help: ArgumentHelp("Seconds between checks for changes made by the CLI [GEMINI_GATEWAY_RELOAD_INTERVAL].", valueName: "seconds"))
    var reloadInterval: Double = envNumber("GEMINI_GATEWAY_RELOAD_INTERVAL") ?? 1

    @Option(help: ArgumentHelp("Seconds a shutdown waits for requests in flight [GEMINI_GATEWAY_SHUTDOWN_GRACE].", valueName: "seconds"))
    var shutdownGrace: Double = envNumber("GEMINI_GATEWAY_SHUTDOWN_GRACE") ?? 30

    @Option(help: ArgumentHelp(
        "Seconds a key that first answers API_KEY_INVALID only cools before it is tried again; a second API_KEY_INVALID then soft-deletes it; 0 soft-deletes at once [GEMINI_GATEWAY_INVALID_KEY_RECHECK].",
        valueName: "seconds"
    ))
    var invalidKeyRecheck: Double = envNumber("GEMINI_GATEWAY_INVALID_KEY_RECHECK") ?? 0

    @Option(help: ArgumentHelp(
        "Whole days of raw request rows kept besides today; older ones are pruned, daily totals stay; 0 keeps all [GEMINI_GATEWAY_LOG_RETENTION_DAYS].",
        valueName: "days"
    ))
    var logRetentionDays: Int = envNumber("GEMINI_GATEWAY_LOG_RETENTION_DAYS") ?? GatewayConfiguration().logRetentionDays

    @Option(help: ArgumentHelp("PEM file of extra CA certificates to trust for https upstreams [GEMINI_GATEWAY_UPSTREAM_CA_FILE].", valueName: "file"))
    var upstreamCAFile: String?

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical [GEMINI_GATEWAY_LOG_LEVEL].", valueName: "level"))
    var logLevel: String = env("GEMINI_GATEWAY_LOG_LEVEL") ?? "info"

    @OptionGroup var database: DatabaseOptions

    mutating func validate() throws {
        // Optional settings not given as flags come from the settings file or the environment
        // (read here, at parse time: a SIGHUP parses again and compares).
        config = config ?? ProcessInfo.processInfo.environment["GEMINI_GATEWAY_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        proxyKey = proxyKey ?? env("GEMINI_GATEWAY_PROXY_KEY")
        adminToken = adminToken ?? env("GEMINI_GATEWAY_ADMIN_TOKEN")
        publicURL = publicURL ?? env("GEMINI_GATEWAY_PUBLIC_URL")
        keys = keys ?? env("GEMINI_GATEWAY_KEYS_FILE")
        upstreams = upstreams ?? env("GEMINI_GATEWAY_UPSTREAMS_FILE")
        upstreamCAFile = upstreamCAFile ?? env("GEMINI_GATEWAY_UPSTREAM_CA_FILE")
        if maxConnections == nil, let text = env("GEMINI_GATEWAY_MAX_CONNECTIONS") {
            guard let value = Int(text) else { throw ValidationError("GEMINI_GATEWAY_MAX_CONNECTIONS='\(text)' is not a whole number") }
            maxConnections = value
        }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        for (name, value) in [("GEMINI_GATEWAY_PORT", port), ("GEMINI_GATEWAY_MAX_BODY_BYTES", maxBodyBytes), ("GEMINI_GATEWAY_MAX_ATTEMPTS", maxAttempts),
                             ("GEMINI_GATEWAY_LOG_RETENTION_DAYS", logRetentionDays), ("GEMINI_GATEWAY_MAX_IN_FLIGHT", maxInFlight),
                             ("GEMINI_GATEWAY_MAX_QUEUED", maxQueued), ("GEMINI_GATEWAY_EGRESS_PROJECTS", egressProjects)] {
            if let text = env(name), Int(text) == nil { throw ValidationError("\(name)='\(text)' is not a whole number") }
            _ = value
        }
        for name in ["GEMINI_GATEWAY_RETRY_BUDGET", "GEMINI_GATEWAY_CONNECT_TIMEOUT", "GEMINI_GATEWAY_HEAD_TIMEOUT",
                     "GEMINI_GATEWAY_READ_TIMEOUT", "GEMINI_GATEWAY_RELOAD_INTERVAL", "GEMINI_GATEWAY_SHUTDOWN_GRACE",
                     "GEMINI_GATEWAY_REQUEST_HEAD_TIMEOUT", "GEMINI_GATEWAY_REQUEST_BODY_TIMEOUT", "GEMINI_GATEWAY_KEEP_ALIVE_TIMEOUT",
                     "GEMINI_GATEWAY_MAX_QUEUE_WAIT", "GEMINI_GATEWAY_EGRESS_WINDOW", "GEMINI_GATEWAY_EGRESS_COOLDOWN"] {
            if let text = env(name), Double(text) == nil { throw ValidationError("\(name)='\(text)' is not a number") }
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        guard (1...20).contains(maxAttempts) else { throw ValidationError("--max-attempts must be 1 to 20") }
        guard maxInFlight >= 0 else { throw ValidationError("--max-in-flight must be 0 (no limit) or more") }
        guard maxQueueWait >= 0, maxQueueWait.isFinite else {
            throw ValidationError("--max-queue-wait must be a number of seconds, 0 to never wait")
        }
        guard maxQueued >= 0 else { throw ValidationError("--max-queued must be 0 (never wait) or more") }
        guard egressProjects >= 0 else { throw ValidationError("--egress-projects must be 0 (never blame an upstream) or more") }
        guard egressWindow > 0, egressWindow.isFinite else { throw ValidationError("--egress-window must be a positive number of seconds") }
        guard egressCooldown > 0, egressCooldown.isFinite else { throw ValidationError("--egress-cooldown must be a positive number of seconds") }
        guard (0...36_500).contains(logRetentionDays) else { throw ValidationError("--log-retention-days must be 0 (keep all) to 36500") }
        for (name, value) in [("--retry-budget", retryBudget), ("--connect-timeout", connectTimeout), ("--head-timeout", headTimeout),
                              ("--read-timeout", readTimeout), ("--reload-interval", reloadInterval), ("--shutdown-grace", shutdownGrace),
                              ("--request-head-timeout", requestHeadTimeout), ("--request-body-timeout", requestBodyTimeout),
                              ("--keep-alive-timeout", keepAliveTimeout)] {
            guard value > 0, value.isFinite else { throw ValidationError("\(name) must be a positive number of seconds") }
        }
        if let upstreamCAFile, !FileManager.default.isReadableFile(atPath: upstreamCAFile) {
            throw ValidationError("--upstream-ca-file '\(upstreamCAFile)' cannot be read")
        }
        if let adminToken, adminToken == proxyKey {
            throw ValidationError("--admin-token must differ from --proxy-key: a client token never opens the operator pages")
        }
        // It goes into answers' headers as given (resumable uploads' x-goog-upload-url).
        if let publicURL, !(publicURL.hasPrefix("http://") || publicURL.hasPrefix("https://")) || URL(string: publicURL)?.host == nil
            || publicURL.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7f }) {
            throw ValidationError("--public-url must be an http:// or https:// URL with a host, in ASCII without spaces or control characters (punycode for other names), such as https://gemini.example.com")
        }
        guard invalidKeyRecheck >= 0, invalidKeyRecheck.isFinite, env("GEMINI_GATEWAY_INVALID_KEY_RECHECK").map({ Double($0) != nil }) ?? true else {
            throw ValidationError("--invalid-key-recheck [GEMINI_GATEWAY_INVALID_KEY_RECHECK] must be a number of seconds, 0 to soft-delete at once")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        LogLevelSwitch.level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in SwitchableLogHandler(label: label) }
        let logger = Logger(label: "gemini-gateway")
        raiseDescriptorLimit(logger: logger)
        try await reportingErrors {
            switch try database.location() {
            case .sqlite(let path):
                let store = try AppDatabase.open(path: path, busyTimeout: database.busyTimeout, creating: true)
                try await serve(store: store, admin: store, logger: logger)
            case .postgres(let location):
                try await PostgresStore.with(location, logger: logger) { store in
                    let id = try await store.registerInstance(name: "\(ProcessInfo.processInfo.hostName):\(port) pid \(getpid())")
                    logger.info("registered with the shared PostgreSQL store", metadata: [
                        "store": "\(location)", "instance": "\(id)",
                    ])
                    try await withThrowingDiscardingTaskGroup { group in
                        // Rings the pool's sync when another instance or the CLI changes something.
                        group.addTask { await store.listen() }
                        try await serve(store: store, admin: store, health: store, instance: UInt16(id), logger: logger)
                        group.cancelAll()
                    }
                }
            }
        }
    }

    /// Serves on `store` until SIGTERM or SIGINT: imports `--keys`/`--upstreams`, makes Google the
    /// upstream and a token when there are none, then runs the gateway.
    private func serve(
        store: any ServingStore, admin: any AdminStore, health: (any StoreHealth)? = nil, instance: UInt16? = nil, logger: Logger
    ) async throws {
        if keys != nil || upstreams != nil {
            _ = try await ImportCommand.importFiles(keys: keys, upstreams: upstreams, into: admin, printing: true)
        }
        // The gateway never runs open: with no token configured, make one and show it once.
        let made = try await admin.bootstrap(
            defaultUpstream: GatewayConfiguration.defaultUpstream, token: proxyKey?.isEmpty ?? true, now: Date())
        if made.addedUpstream { logger.notice("no upstream configured: using \(GatewayConfiguration.defaultUpstream)") }
        if let (client, token) = made.client {
            print("No gateway token was configured, so one was created (client '\(client.name)'). It is shown only now:")
            print(token)
            print("Clients send it as x-goog-api-key, ?key= or Authorization: Bearer. More: gemini-gateway clients add NAME")
        }
        // Standard output may be a pipe (systemd, a supervisor): show it now, not at exit.
        fflush(nil)

        let configuration = gatewayConfiguration()
        logger.debug("settings", metadata: ["store": "\(store.displayName)", "settings": "\(configuration)"])
        let gateway = try await Gateway(configuration: configuration, database: store, health: health, instanceID: instance, logger: logger)
        let app = gateway.application(configuration: configuration, logger: logger, requestLine: LogLine.writeRequest)
        let reloader = HangupReloader(gateway: gateway, store: admin, started: self, logger: logger)
        let group = ServiceGroup(configuration: .init(
            // Stopped in reverse order: the reloader first, then the server drains.
            services: [app, reloader],
            gracefulShutdownSignals: [.sigterm, .sigint],
            cancellationSignals: [],
            logger: logger
        ).withGracePeriod(configuration.shutdownGracePeriod))
        try await Gateway.run { try await group.run() }
    }

    /// The gateway's configuration from the options.
    func gatewayConfiguration() -> GatewayConfiguration {
        var configuration = GatewayConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.proxyKey = proxyKey
        configuration.publicURL = publicURL
        configuration.adminToken = adminToken
        configuration.metricsPublic = metricsPublic
        configuration.metricsPerKey = metricsPerKey
        configuration.forwardClientAddress = forwardClientAddress
        // Without a cap the clients could take every descriptor, and the process cannot live
        // at its limit: the default keeps a reserve (DescriptorLimit.connectionCap).
        configuration.maximumConnections = maxConnections ?? DescriptorLimit.current().map(DescriptorLimit.connectionCap)
        configuration.maximumInFlight = maxInFlight
        configuration.maximumBodyBytes = maxBodyBytes
        configuration.maximumAttempts = maxAttempts
        configuration.maximumQueueWait = .milliseconds(Int64((maxQueueWait * 1_000).rounded()))
        configuration.maximumQueued = maxQueued
        configuration.policy.egress.window = egressWindow
        configuration.policy.egress.minimumProjects = egressProjects
        configuration.policy.egress.cooldown = egressCooldown
        configuration.retryBudget = .seconds(retryBudget)
        configuration.connectTimeout = .seconds(connectTimeout)
        configuration.responseHeadTimeout = .seconds(headTimeout)
        configuration.readIdleTimeout = .seconds(readTimeout)
        configuration.reloadInterval = .seconds(reloadInterval)
        configuration.requestHeadTimeout = .seconds(requestHeadTimeout)
        configuration.requestBodyTimeout = .seconds(requestBodyTimeout)
        configuration.keepAliveTimeout = .seconds(keepAliveTimeout)
        configuration.shutdownGracePeriod = .seconds(shutdownGrace)
        configuration.policy.invalidKeyGrace = invalidKeyRecheck > 0 ? invalidKeyRecheck : nil
        configuration.upstreamCAFile = upstreamCAFile
        configuration.logRetentionDays = logRetentionDays
        return configuration
    }

    /// Every connection, client or upstream, holds a descriptor: the soft limit goes up to the
    /// hard one, and both are logged (an operator at the limit sees what it was).
    private func raiseDescriptorLimit(logger: Logger) {
        guard let limit = DescriptorLimit.raise() else {
            logger.warning("could not read the limit on open files (RLIMIT_NOFILE)")
            return
        }
        let cap = maxConnections ?? DescriptorLimit.connectionCap(softLimit: limit.now)
        let metadata: Logger.Metadata = [
            "soft_before": "\(limit.before)", "soft": "\(limit.now)", "hard": "\(limit.hard)", "max_connections": "\(cap)",
        ]
        if let maxConnections, UInt64(maxConnections) > limit.now / 2 {
            logger.warning("--max-connections is over half the open-file limit: at the limit the process may fail", metadata: metadata)
        }
        if limit.now < limit.hard {
            logger.warning("open-file limit: the soft limit could not be raised to the hard one", metadata: metadata)
        } else {
            logger.info("open-file limit", metadata: metadata)
        }
    }
}

/// What a log line or an error shows of the parsed command (Swift's default description of a
/// struct would dump every property, the tokens included): the settings, secrets as fingerprints.
extension ServeCommand: CustomStringConvertible {
    var description: String { "serve db=\(database.store.isEmpty ? database.db : database.store) \(gatewayConfiguration())" }
}

/// A setting from the settings file (`--config`) or the environment; see `Settings`.
private func env(_ name: String) -> String? {
    Settings.value(name)
}

private func envNumber<T: LosslessStringConvertible>(_ name: String) -> T? {
    Settings.number(name)
}

extension ServiceGroupConfiguration {
    func withGracePeriod(_ duration: Duration) -> Self {
        var copy = self
        copy.maximumGracefulShutdownDuration = duration
        return copy
    }
}
