import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// A lean HTTP/1.1 upstream transport built from SwiftNIO's own pieces: pooled keep-alive
/// connections per upstream endpoint, the request head and body written in one flush, the
/// response body streamed with back-pressure, TLS through NIOSSL with certificate verification.
///
/// The gateway's one upstream client: the proxy's and `keys check`'s. It replaced AsyncHTTPClient,
/// measured, for less work per request (`bench/RESULTS.md`): no per-request state machine copies,
/// no deadline timer when nothing is waiting, no URL re-parsing (base URLs are parsed once), no
/// separate head and body writes, and the target forwarded as the client sent it.
///
/// - Every request holds its own connection until its response has been read; a connection goes
///   back to the pool when its response is complete and both sides keep it alive.
/// - A pooled connection is closed after `poolIdleTimeout` unused, well before servers usually
///   close idle keep-alive connections, so that a request rarely meets one the upstream is
///   closing. When it does, that is an upstream failure like any other (no hidden re-send):
///   the proxy loop fails over.
/// - Timeouts: connecting (`connectTimeout`), waiting for the response head (`headTimeout`), and
///   silence while a body streams (`readIdleTimeout`), which also closes idle pooled connections.
public final class NIOHTTP1Transport: UpstreamTransport, Service {
    private let group: any EventLoopGroup
    private let connectTimeout: TimeAmount
    private let headTimeout: TimeAmount
    private let readIdleTimeout: TimeAmount
    private let maximumIdlePerEndpoint: Int
    /// How long a connection waits in the pool before it is closed.
    let poolIdleTimeout = TimeAmount(upstreamPoolIdleTimeout)
    private let sslContext: NIOSSLContext
    /// The pool of each event loop of the group: a request takes an idle connection on the loop
    /// it runs on (the proxy's tasks run on their client connection's loop), so neither a thread
    /// hop nor a lock shared by the loops is needed.
    private let pools: [ObjectIdentifier: LoopPool]

    /// A connection and its handler, which is touched only on the connection's event loop.
    struct Connection: Sendable {
        var channel: any Channel
        var handler: NIOLoopBound<UpstreamConnectionHandler>
    }

    /// - Parameter trustRoots: extra CA certificates (PEM file) to trust besides the system's,
    ///   for relays behind a private CA.
    public init(timeouts: UpstreamTimeouts = UpstreamTimeouts(), trustRoots: String? = nil) throws {
        let group = MultiThreadedEventLoopGroup.singleton
        self.group = group
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = LoopPool(loop: loop) }
        self.pools = pools
        connectTimeout = .init(timeouts.connectTimeout)
        headTimeout = .init(timeouts.responseHeadTimeout)
        readIdleTimeout = .init(timeouts.readIdleTimeout)
        // Steady load needs about as many idle connections as requests in flight; a burst of
        // streams (each holds a connection) beyond this is closed as it ends instead of holding
        // its buffers for `poolIdleTimeout`.
        maximumIdlePerEndpoint = 256
        if let trustRoots {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.additionalTrustRoots = [.file(trustRoots)]
            sslContext = try NIOSSLContext(configuration: tls)  // read now: a bad file fails at start
        } else {
            sslContext = try Self.systemTrustContext.get()
        }
    }

    /// The TLS context that trusts the system's CAs, made once for the process: making one parses
    /// the whole CA bundle (tens of milliseconds of CPU), and one serves any number of connections
    /// and transports (a test process makes a transport for each of its hundred gateways).
    private static let systemTrustContext = Result { try NIOSSLContext(configuration: .makeClientConfiguration()) }

    // MARK: - Sending

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        // The loop this runs on (the proxy's case), else one of the group's (a hop to it).
        let pool: LoopPool
        let taken: (Endpoint, Connection?)
        if let current = MultiThreadedEventLoopGroup.currentEventLoop, let own = pools[ObjectIdentifier(current)] {
            pool = own
            taken = try Self.take(request.baseURL, from: pool)
        } else {
            (pool, taken) = try await takeOffLoop(request.baseURL)
        }
        let (endpoint, idle) = taken
        let connection: Connection
        if let idle {
            connection = idle
        } else {
            connection = try await connect(endpoint, on: pool.loop)
        }
        return try await exchange(on: connection, request: OutgoingRequest(request, endpoint: endpoint))
    }

    /// ``send(_:)`` from a thread that is none of the group's loops: one loop's pool, on it.
    /// Not inlined, as ``connect(_:on:)`` is not: the frame of ``send(_:)`` is memory every
    /// request's task allocates, and stays small without them.
    @inline(never)
    private func takeOffLoop(_ baseURL: String) async throws -> (LoopPool, (Endpoint, Connection?)) {
        let pool = pools[ObjectIdentifier(group.next())]!
        do {
            return (pool, try await pool.loop.submit { [pool] in try Self.take(baseURL, from: pool) }.get())
        } catch {
            throw UpstreamTransportError(error)  // a loop shut down too: what is thrown is always one of these
        }
    }

    private static func take(_ baseURL: String, from pool: LoopPool) throws -> (Endpoint, Connection?) {
        let endpoint = try pool.endpoint(for: baseURL)
        return (endpoint, pool.take(endpoint))
    }

    private func exchange(on connection: Connection, request: OutgoingRequest) async throws -> UpstreamResponse {
        let loop = connection.channel.eventLoop
        let headTimeout = self.headTimeout
        let ticket = ExchangeTicket()
        // The handler resumes the request when the head has come (no promise and no callback
        // per request); it resumes it exactly once, whatever happens to the connection. A task
        // cancelled meanwhile (its client went away) closes the connection: the upstream stops.
        let start = try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (waiter: ResponseWaiter) in
                guard !Task.isCancelled else {
                    waiter.resume(throwing: UpstreamTransportError(failure: .cancelled, detail: "cancelled before the request went out"))
                    return
                }
                if loop.inEventLoop {
                    connection.handler.value.start(request, waiter: waiter, ticket: ticket, headTimeout: headTimeout)
                } else {
                    loop.execute {
                        connection.handler.value.start(request, waiter: waiter, ticket: ticket, headTimeout: headTimeout)
                    }
                }
            }
        } onCancel: {
            loop.execute { connection.handler.value.cancel(ticket) }
        }
        return UpstreamResponse(status: Int(start.head.status.code), headers: start.head.headers, body: start.body)
    }

    // MARK: - The pool

    /// Called on the connection's loop when its response is complete and both sides keep it alive.
    func release(_ connection: Connection, endpoint: Endpoint) {
        let kept = pools[ObjectIdentifier(connection.channel.eventLoop)]?
            .put(connection, endpoint: endpoint, limit: maximumIdlePerEndpoint) ?? false
        if !kept { connection.channel.close(promise: nil) }
    }

    /// Called on the connection's loop when it has closed.
    func forget(_ channel: any Channel, endpoint: Endpoint) {
        pools[ObjectIdentifier(channel.eventLoop)]?.remove(channel, endpoint: endpoint)
    }

    @inline(never)
    private func connect(_ endpoint: Endpoint, on loop: any EventLoop) async throws -> Connection {
        let sslContext = self.sslContext
        let readIdleTimeout = self.readIdleTimeout
        // The handler exists before the channel, so a connection that fails at once (a refused
        // TLS handshake) still reports why through it. Made here when this runs on the loop (the
        // proxy's case): no round trip through the loop's queue, behind everything a burst of
        // new streams put there.
        let make: @Sendable () -> NIOLoopBound<UpstreamConnectionHandler> = { [weak self] in
            NIOLoopBound(UpstreamConnectionHandler(endpoint: endpoint, transport: self), eventLoop: loop)
        }
        let handler = loop.inEventLoop ? make() : try await loop.submit(make).get()
        let address = endpoint.address
        let isIP = address != nil
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if endpoint.tls {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: isIP ? nil : endpoint.host))
                    }
                    // Requests go out as bytes from the wire (``OutgoingRequest``), not through
                    // SwiftNIO's encoder, and their heads are not checked a second time (3% of
                    // the instructions of a proxied request): names and values come from the
                    // client's parsed request, the parsed base URL, and a key, which the pool only
                    // holds when it is a valid one (`AppDatabase.loadPoolState`).
                    let wire = HTTPWire()
                    let decoder = HTTPResponseDecoder(leftOverBytesStrategy: .fireError)
                    try sync.addHandler(wire)
                    try sync.addHandler(ByteToMessageHandler(decoder))
                    try sync.addHandler(IdleStateHandler(readTimeout: readIdleTimeout))
                    handler.value.attach(wire: wire, decoder: decoder)
                    try sync.addHandler(handler.value)
                }
            }
        do {
            // An IP address is connected to as it is; a name is resolved (each time: its
            // addresses may change) and its addresses tried as happy eyeballs do.
            let channel: any Channel
            if let address {
                channel = try await bootstrap.connect(to: address).get()
            } else {
                channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
            }
            return Connection(channel: channel, handler: handler)
        } catch {
            throw UpstreamTransportError(error)
        }
    }

    // MARK: - Service

    /// Keeps the pool until the service group stops, then closes the idle connections.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Closes the idle connections (those in use close when their exchange ends).
    public func shutdown() async {
        for pool in pools.values {
            let connections = (try? await pool.loop.submit { pool.takeAll() }.get()) ?? []
            for connection in connections { try? await connection.channel.close() }
        }
    }
}
