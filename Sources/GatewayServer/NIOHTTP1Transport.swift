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
/// It does what the AsyncHTTPClient transport does, with less work per request: no per-request
/// state machine copies, no deadline timer when nothing is waiting, no URL re-parsing (base URLs
/// are parsed once), no separate head and body writes.
///
/// - Every request holds its own connection until its response has been read; a connection goes
///   back to the pool when its response is complete and both sides keep it alive.
/// - A pooled connection is closed after `poolIdleTimeout` unused, well before servers usually
///   close idle keep-alive connections, so that a request rarely meets one the upstream is
///   closing. When it does, that is an upstream failure like any other (no hidden re-send):
///   the proxy loop fails over, exactly as with AsyncHTTPClient.
/// - Timeouts: connecting (`connectTimeout`), waiting for the response head (`headTimeout`), and
///   silence while a body streams (`readIdleTimeout`), which also closes idle pooled connections.
public final class NIOHTTP1Transport: UpstreamTransport, Service {
    /// Where requests go: scheme, host and port of a base URL, and its path prefix.
    struct Endpoint: Hashable, Sendable {
        var tls: Bool
        var host: String
        var port: Int
        /// `Host` header value: the port only when it is not the scheme's default.
        var authority: String
        var pathPrefix: String
        /// Where its idle connections wait in a loop's pool (``LoopPool``), given by that pool;
        /// not part of what the endpoint is (equality and hash leave it out).
        var slot = -1

        /// The socket address when `host` is an IP address (no name to resolve).
        var address: SocketAddress? { try? SocketAddress(ipAddress: host, port: port) }

        static func == (a: Endpoint, b: Endpoint) -> Bool {
            a.tls == b.tls && a.host == b.host && a.port == b.port && a.authority == b.authority && a.pathPrefix == b.pathPrefix
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(tls)
            hasher.combine(host)
            hasher.combine(port)
            hasher.combine(authority)
            hasher.combine(pathPrefix)
        }
    }

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

    /// One event loop's idle connections by endpoint, and the endpoints of the base URLs it has
    /// seen. Touched only on its loop.
    ///
    /// Each endpoint gets a slot the first time one of its base URLs is seen, and its idle
    /// connections wait in that slot: a request looks up its base URL once, and takes and puts
    /// back a connection without hashing the endpoint's strings.
    final class LoopPool: @unchecked Sendable {
        let loop: any EventLoop
        /// Idle connections by endpoint slot.
        private var idle: [[Connection]] = []
        private var endpoints: [String: Endpoint] = [:]
        private var slots: [Endpoint: Int] = [:]

        init(loop: any EventLoop) {
            self.loop = loop
        }

        /// The endpoint of `baseURL`, with its slot in this pool.
        func endpoint(for baseURL: String) throws -> Endpoint {
            loop.assertInEventLoop()
            if let known = endpoints[baseURL] { return known }
            var endpoint = try NIOHTTP1Transport.parse(baseURL)
            if let slot = slots[endpoint] {
                endpoint.slot = slot  // another base URL of the same endpoint
            } else {
                endpoint.slot = idle.count
                slots[endpoint] = idle.count
                idle.append([])
            }
            endpoints[baseURL] = endpoint
            return endpoint
        }

        func take(_ endpoint: Endpoint) -> Connection? {
            loop.assertInEventLoop()
            while let connection = idle[endpoint.slot].popLast() {
                if connection.channel.isActive { return connection }
            }
            return nil
        }

        /// Keeps `connection` unless `limit` connections to its endpoint wait already.
        func put(_ connection: Connection, endpoint: Endpoint, limit: Int) -> Bool {
            loop.assertInEventLoop()
            guard idle[endpoint.slot].count < limit else { return false }
            idle[endpoint.slot].append(connection)
            return true
        }

        func remove(_ channel: any Channel, endpoint: Endpoint) {
            loop.assertInEventLoop()
            idle[endpoint.slot].removeAll { $0.channel === channel }
        }

        func takeAll() -> [Connection] {
            loop.assertInEventLoop()
            defer { idle = idle.map { _ in [] } }
            return idle.flatMap { $0 }
        }
    }

    /// - Parameter trustRoots: extra CA certificates (PEM file) to trust besides the system's,
    ///   for relays behind a private CA.
    public init(configuration: GatewayConfiguration, trustRoots: String? = nil) throws {
        let group = MultiThreadedEventLoopGroup.singleton
        self.group = group
        var pools: [ObjectIdentifier: LoopPool] = [:]
        for loop in group.makeIterator() { pools[ObjectIdentifier(loop)] = LoopPool(loop: loop) }
        self.pools = pools
        connectTimeout = .init(configuration.connectTimeout)
        headTimeout = .init(configuration.responseHeadTimeout)
        readIdleTimeout = .init(configuration.readIdleTimeout)
        // Steady load needs about as many idle connections as requests in flight; a burst of
        // streams (each holds a connection) beyond this is closed as it ends instead of holding
        // its buffers for `poolIdleTimeout`.
        maximumIdlePerEndpoint = 256
        var tls = TLSConfiguration.makeClientConfiguration()
        if let trustRoots {
            tls.additionalTrustRoots = [.file(trustRoots)]
        }
        sslContext = try NIOSSLContext(configuration: tls)
    }

    // MARK: - Sending

    public func send(_ request: UpstreamRequest) async throws -> UpstreamResponse {
        // The loop this runs on (the proxy's case), else one of the group's (a hop to it).
        let pool: LoopPool
        let taken: (Endpoint, Connection?)
        if let current = MultiThreadedEventLoopGroup.currentEventLoop, let own = pools[ObjectIdentifier(current)] {
            pool = own
            taken = try Self.take(request.baseURL, from: pool)
        } else {
            pool = pools[ObjectIdentifier(group.next())]!
            taken = try await pool.loop.submit { [pool] in try Self.take(request.baseURL, from: pool) }.get()
        }
        let (endpoint, idle) = taken
        let outgoing = OutgoingRequest(request, endpoint: endpoint)
        let connection: Connection
        if let idle {
            connection = idle
        } else {
            connection = try await connect(endpoint, on: pool.loop)
        }
        return try await exchange(on: connection, request: outgoing)
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
                    waiter.resume(throwing: UpstreamTransportError(failure: .other, detail: "cancelled"))
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
    fileprivate func release(_ connection: Connection, endpoint: Endpoint) {
        let kept = pools[ObjectIdentifier(connection.channel.eventLoop)]?
            .put(connection, endpoint: endpoint, limit: maximumIdlePerEndpoint) ?? false
        if !kept { connection.channel.close(promise: nil) }
    }

    /// Called on the connection's loop when it has closed.
    fileprivate func forget(_ channel: any Channel, endpoint: Endpoint) {
        pools[ObjectIdentifier(channel.eventLoop)]?.remove(channel, endpoint: endpoint)
    }

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
            throw Self.transportError(error)
        }
    }

    // MARK: - Requests and responses

    static func parse(_ baseURL: String) throws -> Endpoint {
        // Only a URL `upstreams add` accepts (the pool holds no other): its host, encoded
        // (punycode, no escapes), goes into the Host header as it is.
        guard case .success = ListFile.normalizeUpstreamURL(baseURL), let components = URLComponents(string: baseURL),
              let scheme = components.scheme?.lowercased(), let written = components.encodedHost
        else {
            throw UpstreamTransportError(failure: .other, detail: "not an http(s) base URL: \(baseURL)")
        }
        let tls = scheme == "https"
        let port = components.port ?? (tls ? 443 : 80)
        // An IPv6 literal: brackets in the Host header, none to connect.
        let host = written.hasPrefix("[") && written.hasSuffix("]") ? String(written.dropFirst().dropLast()) : written
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let authority = components.port.map { "\(bracketed):\($0)" } ?? bracketed
        var prefix = components.percentEncodedPath
        while prefix.hasSuffix("/") { prefix.removeLast() }
        return Endpoint(tls: tls, host: host, port: port, authority: authority, pathPrefix: prefix)
    }

    /// A request as it goes out: its head serialised (with a small body behind it), what the
    /// response decoder needs to know of it, and whether the connection is kept alive after it.
    struct OutgoingRequest {
        /// The head, and the body when it is small.
        var bytes: ByteBuffer
        /// A large body, written after the head as it is.
        var body: ByteBuffer?
        /// For the response decoder, which reads the answer to a `HEAD` without a body.
        var head: HTTPRequestHead
        var keepAlive: Bool

        private static let allocator = ByteBufferAllocator()
        private static let postHead = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")
        private static let getHead = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")

        /// The head as SwiftNIO's encoder would write it for these headers: the client's (the
        /// filter has dropped `Host`, `Content-Length` and `Transfer-Encoding`), then `Host`, then
        /// `Content-Length` when a body goes out.
        init(_ request: UpstreamRequest, endpoint: Endpoint) {
            let sendsBody = request.sendsBody
            let length = request.body.readableBytes
            let copied = sendsBody && length <= HTTPWire.copiedBody
            var bytes = Self.allocator.buffer(capacity: 512 + (copied ? length : 0))
            HTTPWire.writeRequestLine(method: request.method, prefix: endpoint.pathPrefix, target: request.target, into: &bytes)
            var keepAlive = true
            for (name, value) in request.headers {
                if ForwardedHeaders.equalsIgnoringCase(name.utf8, "host") { continue }
                if ForwardedHeaders.equalsIgnoringCase(name.utf8, "connection"),
                   value.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() == "close" }) {
                    keepAlive = false
                }
                HTTPWire.write(name: name, value: value, into: &bytes)
            }
            HTTPWire.write(name: "Host", value: endpoint.authority, into: &bytes)
            if sendsBody {
                bytes.writeStaticString("Content-Length: ")
                HTTPWire.writeDecimal(length, into: &bytes)
                bytes.writeStaticString("\r\n")
            }
            bytes.writeStaticString("\r\n")
            if copied {
                var body = request.body
                bytes.writeBuffer(&body)
                self.body = nil
            } else {
                self.body = sendsBody && length > 0 ? request.body : nil
            }
            self.bytes = bytes
            self.keepAlive = keepAlive
            switch request.method {
            case .POST: head = Self.postHead
            case .GET: head = Self.getHead
            default: head = HTTPRequestHead(version: .http1_1, method: request.method, uri: "/")
            }
        }
    }

    static func transportError(_ error: any Error) -> UpstreamTransportError {
        if let error = error as? UpstreamTransportError { return error }
        let text = String(describing: error)
        // By the system error first: a shortage of the gateway's own (EMFILE...) is not the upstream's.
        if let named = OutcomeClassifier.TransportFailure.named(by: error) { return UpstreamTransportError(failure: named, detail: text) }
        switch error {
        case is ChannelError:
            if case .connectTimeout = error as? ChannelError { return UpstreamTransportError(failure: .timeout, detail: text) }
            return UpstreamTransportError(failure: .connectionReset, detail: text)
        case let error as NIOConnectionError:
            // Every address of the host failed: refused, or no answer in time.
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            return UpstreamTransportError(failure: refused || text.contains("refused") ? .connectionRefused : .timeout, detail: text)
        case is NIOSSLError, is BoringSSLError:
            return UpstreamTransportError(failure: .tls, detail: text)
        default:
            let type = String(reflecting: Swift.type(of: error))
            if type.contains("SSL") || text.contains("SSL") || text.contains("certificate") || text.contains("handshake") {
                return UpstreamTransportError(failure: .tls, detail: "\(type): \(text)")
            }
            if text.contains("refused") { return UpstreamTransportError(failure: .connectionRefused, detail: text) }
            if text.contains("resolve") || text.contains("getaddrinfo") || text.contains("NXDOMAIN") {
                return UpstreamTransportError(failure: .dns, detail: text)
            }
            return UpstreamTransportError(failure: .other, detail: "\(type): \(text)")
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

/// The request waiting for its response head.
typealias ResponseWaiter = UnsafeContinuation<ResponseStart, any Error>

/// Names one exchange on a connection, for a cancellation that may come after it has ended
/// (and the connection has gone on to another request).
final class ExchangeTicket: Sendable {}

/// The response head and its body, handed from the event loop to the proxy loop.
struct ResponseStart: Sendable {
    var head: HTTPResponseHead
    var body: NIOHTTP1Transport.Body
}

extension NIOHTTP1Transport {
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDelegate
    >

    /// The response body as the proxy loop reads it: in hand when the whole answer came with
    /// its head (a plain JSON answer, nearly always), else a back-pressured stream.
    struct Body: UpstreamBodyStream, @unchecked Sendable {
        // Sendable only to cross from the event loop to the one task that reads it.
        private var complete: ByteBuffer?
        private var iterator: Producer.AsyncIterator?

        /// A body that arrived whole with its head.
        init(complete: ByteBuffer?) {
            self.complete = complete
        }

        /// A body still arriving, its first parts already yielded to the producer.
        init(streaming iterator: Producer.AsyncIterator) {
            self.iterator = iterator
        }

        mutating func next() async throws -> ByteBuffer? {
            guard iterator != nil else {
                defer { complete = nil }
                return complete
            }
            do {
                return try await iterator!.next()
            } catch {
                throw NIOHTTP1Transport.transportError(error)
            }
        }
    }

    /// Tells the connection when the reader wants more, or has gone.
    /// Its calls name the exchange they belong to: a connection back in the pool may already
    /// carry the next request when the last reader of the previous one lets go.
    struct BodyDelegate: NIOAsyncSequenceProducerDelegate {
        let loop: any EventLoop
        let handler: NIOLoopBound<UpstreamConnectionHandler>
        let exchange: Int

        func produceMore() {
            loop.execute { handler.value.readerWantsMore(exchange: exchange) }
        }

        func didTerminate() {
            loop.execute { handler.value.readerStopped(exchange: exchange) }
        }
    }
}

// MARK: - One connection

/// Drives one upstream connection on its event loop: writes a request, turns the response parts
/// into a head and a back-pressured body stream, and returns the connection to the pool when the
/// exchange is complete.
final class UpstreamConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = Never
    typealias OutboundOut = Never

    private enum State {
        /// In the pool, or new and not yet used.
        case idle
        case awaitingHead(ResponseWaiter)
        /// The head has arrived: its body parts are kept until the end of this read, so that an
        /// answer that came whole is handed over whole, without a stream.
        case gathering(ResponseWaiter, HTTPResponseHead, ByteBuffer?)
        case streaming(NIOHTTP1Transport.Producer.Source)
        case closed
    }

    private let endpoint: NIOHTTP1Transport.Endpoint
    private weak var transport: NIOHTTP1Transport?
    private var wire: HTTPWire?
    private var decoder: HTTPResponseDecoder?
    private var state = State.idle
    private var context: ChannelHandlerContext?
    /// The connection's one timer, for both the response-head timeout and the pool's idle
    /// timeout. It is re-armed when it fires instead of being scheduled and cancelled for every
    /// request: NIO cancels a scheduled task in time linear in the loop's timers, which cost 4% of
    /// the gateway's CPU under load. `timerDeadline` is when it fires.
    private var timer: Scheduled<Void>?
    private var timerDeadline = NIODeadline.distantFuture
    /// While a request waits for its response head: when it gives up, and after how long.
    private var headDeadline: NIODeadline?
    private var headTimeout = TimeAmount.zero
    /// While the connection waits in the pool: since when.
    private var idleSince: NIODeadline?
    /// Why the connection failed while no request was on it (a TLS handshake refused before the
    /// first request was written), reported to the request that then tries to use it.
    private var idleError: UpstreamTransportError?
    /// Counts the exchanges on this connection; the current one's number.
    private var exchange = 0
    /// The current (or last) exchange's ticket.
    private var ticket: ExchangeTicket?
    private var keepAlive = true
    /// Whether the reader wants more body; reads are held back while it does not.
    private var readerReady = true
    private var readPending = false

    init(endpoint: NIOHTTP1Transport.Endpoint, transport: NIOHTTP1Transport?) {
        self.endpoint = endpoint
        self.transport = transport
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        // A request still waiting is never left hanging (the channel closing has normally
        // answered it already).
        switch state {
        case .awaitingHead(let waiter), .gathering(let waiter, _, _):
            state = .closed
            waiter.resume(throwing: UpstreamTransportError(failure: .connectionReset, detail: "connection removed"))
        case .idle, .streaming, .closed:
            break
        }
        self.context = nil
    }

    // MARK: Requests

    /// The pipeline's wire (requests go out from there) and its response decoder (told of each
    /// request, as SwiftNIO's encoder would tell it). Set as the pipeline is built.
    func attach(wire: HTTPWire, decoder: HTTPResponseDecoder) {
        self.wire = wire
        self.decoder = decoder
    }

    func start(_ request: NIOHTTP1Transport.OutgoingRequest, waiter: ResponseWaiter, ticket: ExchangeTicket, headTimeout: TimeAmount) {
        guard let context, case .idle = state, context.channel.isActive, let wire = wire?.context, let decoder else {
            waiter.resume(throwing: idleError ?? UpstreamTransportError(failure: .connectionReset, detail: "connection closed"))
            return
        }
        exchange += 1
        self.ticket = ticket
        keepAlive = request.keepAlive
        readerReady = true
        idleSince = nil
        self.headTimeout = headTimeout
        let deadline = NIODeadline.now() + headTimeout
        headDeadline = deadline
        arm(deadline)
        state = .awaitingHead(waiter)
        decoder.write(data: .head(request.head))
        if let body = request.body {
            wire.write(NIOAny(request.bytes), promise: nil)
            wire.writeAndFlush(NIOAny(body), promise: nil)
        } else {
            wire.writeAndFlush(NIOAny(request.bytes), promise: nil)
        }
        context.read()
    }

    // MARK: Responses

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .awaitingHead(let waiter) = state else { return }
            if head.status.code >= 100 && head.status.code < 200 && head.status.code != 101 { return }  // 100-continue
            headDeadline = nil
            keepAlive = keepAlive && head.isKeepAlive
            state = .gathering(waiter, head, nil)
        case .body(var buffer):
            switch state {
            case .gathering(let waiter, let head, var gathered):
                state = .idle  // the gathered buffer is uniquely referenced while it grows
                if gathered == nil {
                    gathered = buffer
                } else {
                    gathered!.writeBuffer(&buffer)
                }
                state = .gathering(waiter, head, gathered)
            case .streaming(let source):
                if source.yield(buffer) == .stopProducing { readerReady = false }
            case .idle, .awaitingHead, .closed:
                break
            }
        case .end:
            switch state {
            case .gathering(let waiter, let head, let gathered):
                exchangeEnded(context: context)
                waiter.resume(returning: ResponseStart(head: head, body: .init(complete: gathered)))
            case .streaming(let source):
                source.finish()
                exchangeEnded(context: context)
            case .idle, .awaitingHead, .closed:
                break
            }
        }
    }

    /// The end of a read with a head gathered but not the end of its body: the body streams.
    func channelReadComplete(context: ChannelHandlerContext) {
        if case .gathering(let waiter, let head, let gathered) = state {
            let delegate = NIOHTTP1Transport.BodyDelegate(
                loop: context.eventLoop, handler: NIOLoopBound(self, eventLoop: context.eventLoop), exchange: exchange
            )
            let producer = NIOHTTP1Transport.Producer.makeSequence(
                backPressureStrategy: .init(lowWatermark: 2, highWatermark: 16),
                finishOnDeinit: false,
                delegate: delegate
            )
            state = .streaming(producer.source)
            if let gathered, producer.source.yield(gathered) == .stopProducing { readerReady = false }
            waiter.resume(returning: ResponseStart(head: head, body: .init(streaming: producer.sequence.makeAsyncIterator())))
        }
        context.fireChannelReadComplete()
    }

    /// The response is complete: the connection goes back to the pool, or closes.
    private func exchangeEnded(context: ChannelHandlerContext) {
        state = .idle
        readerReady = true
        if keepAlive, let transport {
            let now = NIODeadline.now()
            idleSince = now
            arm(now + transport.poolIdleTimeout)
            transport.release(
                .init(channel: context.channel, handler: NIOLoopBound(self, eventLoop: context.eventLoop)), endpoint: endpoint
            )
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: The timer

    /// Makes the timer fire at `deadline` or earlier.
    private func arm(_ deadline: NIODeadline) {
        guard let context else { return }
        if timer != nil, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) { bound.value.timerFired() }
    }

    /// Acts on whichever deadline has passed, or arms the timer for the one still ahead.
    private func timerFired() {
        timer = nil
        timerDeadline = .distantFuture
        let now = NIODeadline.now()
        switch state {
        case .awaitingHead:
            guard let headDeadline else { return }
            if headDeadline <= now {
                fail(UpstreamTransportError(failure: .timeout, detail: "no response head within \(Double(headTimeout.nanoseconds) / 1e9) s"))
            } else {
                arm(headDeadline)
            }
        case .idle:
            guard let idleSince, let transport else { return }
            let end = idleSince + transport.poolIdleTimeout
            if end <= now {
                context?.close(promise: nil)
            } else {
                arm(end)
            }
        case .gathering, .streaming, .closed:
            break  // a body's silence is the IdleStateHandler's; the end of the body re-arms
        }
    }

    func read(context: ChannelHandlerContext) {
        if readerReady {
            context.read()
        } else {
            readPending = true
        }
    }

    func readerWantsMore(exchange: Int) {
        guard exchange == self.exchange else { return }
        readerReady = true
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// The reader dropped the body (the client went away) or finished reading it. A connection
    /// whose response is not complete cannot be reused: close it, which also stops the upstream.
    func readerStopped(exchange: Int) {
        guard exchange == self.exchange, case .streaming = state else { return }
        context?.close(promise: nil)
    }

    // MARK: Failures

    /// The request of `ticket` was cancelled: if it still waits for its answer, the connection
    /// closes (a streaming body stops through its sequence instead).
    func cancel(_ ticket: ExchangeTicket) {
        guard ticket === self.ticket else { return }
        switch state {
        case .awaitingHead, .gathering:
            fail(UpstreamTransportError(failure: .other, detail: "cancelled: the client went away"))
        case .idle, .streaming, .closed:
            break
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? IdleStateHandler.IdleStateEvent, event == .read {
            switch state {
            case .streaming:
                fail(UpstreamTransportError(failure: .timeout, detail: "no data from the upstream within the read timeout"))
            case .idle, .awaitingHead, .gathering, .closed:
                break  // the connection's timer covers these (a read ends gathering)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(NIOHTTP1Transport.transportError(error))
    }

    func channelInactive(context: ChannelHandlerContext) {
        transport?.forget(context.channel, endpoint: endpoint)
        switch state {
        case .awaitingHead(let waiter), .gathering(let waiter, _, _):
            state = .closed
            // Nothing of the answer was handed over: on a reused connection the upstream closed
            // it while idle, and the request can go again on a fresh one.
            waiter.resume(throwing: UpstreamTransportError(failure: .connectionReset, detail: "connection closed before the response"))
        case .streaming(let source):
            state = .closed
            source.finish(UpstreamTransportError(failure: .connectionReset, detail: "connection closed mid-body"))
        case .idle, .closed:
            state = .closed
        }
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func fail(_ error: UpstreamTransportError) {
        switch state {
        case .awaitingHead(let waiter), .gathering(let waiter, _, _):
            state = .closed
            waiter.resume(throwing: error)
        case .streaming(let source):
            state = .closed
            source.finish(error)
        case .idle, .closed:
            if idleError == nil { idleError = error }
            state = .closed
        }
        context?.close(promise: nil)
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
