import AsyncHTTPClient
import FakeGemini
import Foundation
import GatewayCore
import GatewayHTTP
import GatewayServer
import GatewayStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

// MARK: - A gateway on a real socket, in front of fake upstreams

/// A running gateway on 127.0.0.1 (port 0) with its own temporary SQLite database.
final class GatewayHarness: Sendable {
    let directory: String
    let databasePath: String
    let database: AppDatabase
    let gateway: Gateway
    let port: Int
    let token: String
    let logs: LogCapture
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Keys named by the test (a project label after a space), upstream base URLs, and tweaks to
    /// the configuration. `directory` reuses an earlier harness's database (a restart);
    /// `transport` replaces the gateway's own.
    static func start(
        keys: [String],
        upstreams: [String],
        directory: String? = nil,
        transport: (any UpstreamTransport & Service)? = nil,
        configure: @Sendable (inout GatewayConfiguration) -> Void = { _ in }
    ) async throws -> GatewayHarness {
        let directory = directory ?? (NSTemporaryDirectory() + "gateway-server-" + UUID().uuidString)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/gateway.db"
        let database = try AppDatabase.open(path: path)
        if !keys.isEmpty {
            _ = try database.importKeys(ListFile.parseKeys(Array(keys.joined(separator: "\n").utf8)))
        }
        if !upstreams.isEmpty {
            _ = try database.importUpstreams(ListFile.parseUpstreams(Array(upstreams.joined(separator: "\n").utf8)))
        }
        let token = try database.activeClients().isEmpty
            ? database.addClient(name: "tests").token
            : "gw-static-token-for-restarts"
        var configuration = GatewayConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.proxyKey = "gw-static-token-for-restarts"
        configuration.reloadInterval = .milliseconds(200)
        // Loopback connects are immediate, but a loop busy with the whole suite may see the
        // completion seconds late: a short timeout here turned a busy machine into 502s.
        configuration.connectTimeout = .seconds(30)
        configure(&configuration)
        let logs = LogCapture()
        let logger = logs.logger(label: "gateway-test")
        let gateway = try await Gateway(configuration: configuration, database: database, transport: transport, logger: logger)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = gateway.application(configuration: configuration, logger: logger) { channel in
            portContinuation.yield(channel.localAddress?.port ?? 0)
            portContinuation.finish()
        }
        var groupConfiguration = ServiceGroupConfiguration(services: [app], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownGracePeriod
        let group = ServiceGroup(configuration: groupConfiguration)
        let task = Task { try await Gateway.run { try await group.run() } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            throw TimedOut(seconds: 0)
        }
        return GatewayHarness(
            directory: directory, databasePath: path, database: database, gateway: gateway, port: port,
            token: token, logs: logs, group: group, task: task
        )
    }

    private init(
        directory: String, databasePath: String, database: AppDatabase, gateway: Gateway, port: Int,
        token: String, logs: LogCapture, group: ServiceGroup, task: Task<Void, any Error>
    ) {
        self.directory = directory
        self.databasePath = databasePath
        self.database = database
        self.gateway = gateway
        self.port = port
        self.token = token
        self.logs = logs
        self.group = group
        self.task = task
    }

    /// Graceful shutdown, as on SIGTERM: in-flight requests finish, the log is flushed.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    func removeFiles() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Requests

    /// Sends a request to the gateway with the test token in `x-goog-api-key`.
    func request(
        _ path: String,
        method: HTTPMethod = .POST,
        token: String?? = .none,
        headers: [(String, String)] = [],
        body: String? = #"{"contents":[{"parts":[{"text":"hi"}]}]}"#
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        let credential: String? = switch token {
        case .none: self.token
        case .some(let value): value
        }
        if let credential { request.headers.add(name: "x-goog-api-key", value: credential) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body, method != .GET {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        return request
    }

    /// Sends and reads the whole answer.
    func send(_ request: HTTPClientRequest) async throws -> Answer {
        let response = try await testClient.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 64 << 20)
        return Answer(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name, $0.value) },
            body: Array(buffer: body)
        )
    }

    /// `POST /v1beta/models/MODEL:generateContent`.
    func generate(model: String = "gemini-2.5-flash") async throws -> Answer {
        try await send(request("/v1beta/models/\(model):generateContent"))
    }

    // MARK: The database

    /// Waits until the log writer has written `count` request rows, then returns all rows;
    /// throws when they have not come within `timeout` seconds.
    func requestRows(count: Int, timeout: Double = patience) async throws -> [Row] {
        try await waitFor("\(count) request rows", timeout: timeout) {
            let rows = try database.read { db in try Row.fetchAll(db, sql: "SELECT * FROM requests ORDER BY id") }
            return rows.count >= count ? rows : nil
        }
    }

    /// Waits until the running gateway has loaded what the database holds now: changes made
    /// beside it (as the CLI makes them) are in force once this returns.
    func waitForReload() async throws {
        try await waitUntil("the gateway to load the database's changes") {
            try await gateway.sync.loadedMarker == database.poolMarker()
        }
    }

    func attemptRows(requestID: String) throws -> [Row] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM attempts WHERE request_id = ? ORDER BY attempt", arguments: [requestID])
        }
    }

    /// Waits until `condition` holds on the database (written behind); false when it has not
    /// within `timeout` seconds.
    func eventually(timeout: Double = patience, _ condition: @Sendable (AppDatabase) throws -> Bool) async throws -> Bool {
        do {
            try await waitUntil("a condition on the database", timeout: timeout) { try condition(database) }
            return true
        } catch is ConditionNotMet {
            return false
        }
    }
}

import GRDB

/// One client for all tests, with room for many concurrent streams.
let testClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 1000)
    // Requests queued behind the connection limit wait for a connection instead of failing.
    configuration.timeout = .init(connect: .seconds(120), read: .seconds(120))
    configuration.decompression = .disabled
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}()

/// A port on 127.0.0.1 where nothing listens: a socket is bound to it and never listens, so
/// connections to it are refused, and no other socket of the test run (servers, or the source
/// port of a connection) can get it until `release()`. Bound with SO_REUSEADDR, like the fake's
/// server socket: a fake can start on the port before it is released.
final class RefusingPort: @unchecked Sendable {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Frees the port.
    func release() {
        close(fd)
    }
}

/// A port on 127.0.0.1 that refuses connections for the rest of the test run.
func closedPort() throws -> Int {
    let reserved = try RefusingPort()
    refusingPorts.withLock { $0.append(reserved) }
    return reserved.port
}

private let refusingPorts = Mutex<[RefusingPort]>([])


/// Starts fakes and a gateway, runs `body`, and always stops everything.
func withGateway(
    keys: [String],
    fakes count: Int = 1,
    extraUpstreams: [String] = [],
    settings: FakeGemini.Settings = .init(),
    timeout: Double = 180,
    transport: (any UpstreamTransport & Service)? = nil,
    configure: @escaping @Sendable (inout GatewayConfiguration) -> Void = { _ in },
    _ body: @escaping @Sendable (GatewayHarness, [FakeGemini]) async throws -> Void
) async throws {
    var fakes: [FakeGemini] = []
    // Relays in front of one Google: files and caches made through one are known to all.
    for _ in 0..<count { fakes.append(try await FakeGemini.start(settings: settings, sharingResourcesWith: fakes.first)) }
    let all = fakes
    let harness = try await GatewayHarness.start(
        keys: keys, upstreams: all.map(\.baseURL) + extraUpstreams, transport: transport, configure: configure
    )
    do {
        try await withTimeout(timeout) { try await body(harness, all) }
    } catch {
        try? await harness.stop()
        for fake in all { await fake.stop() }
        harness.removeFiles()
        throw error
    }
    try await harness.stop()
    for fake in all { await fake.stop() }
    harness.removeFiles()
}
