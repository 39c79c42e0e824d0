// The floor: the plainest reverse proxy SwiftNIO makes, for bench/run.sh to measure beside nginx
// and the gateway. It is issue 5's "raw SwiftNIO proxy" prototype: NIOHTTP1's server pipeline,
// one pool of keep-alive upstream connections per event loop, every request passed upstream with
// `x-goog-api-key` set and its answer passed back part by part; no async/await, no
// authentication, no scheduler, no logging, no metrics, no failover. Its figures show roughly
// how much of the distance to nginx is SwiftNIO's own (its event loops, channel pipeline and
// HTTP/1 codec) and how much is the gateway's work (which skips the codec's encoders, but does
// everything else on top).
//
// What it still does right, so that it is a proxy and not a shortcut: requests go upstream as
// HTTP/1.1 without the client's hop-by-hop headers, each answer's parts are flushed at the end of
// each read (a stream is passed on as it arrives), an upstream connection is pooled again only if
// its answer keeps it alive, and a client that asked for `Connection: close` (or spoke HTTP/1.0
// without keep-alive) gets it.
//
//     swift build -c release --product nio-proxy-floor
//     .build/release/nio-proxy-floor PORT UPSTREAM_PORT KEY
//
// It listens on 127.0.0.1:PORT with one event loop per core (SwiftNIO's default, as the
// gateway) and sends everything to 127.0.0.1:UPSTREAM_PORT. Not a product: an upstream that
// fails gets the client a 502 and the connection closed.

import NIOCore
import NIOHTTP1
import NIOPosix

/// Where requests go, and the key they carry there.
struct Upstream: Sendable {
    let port: Int
    let key: String
    var host: String { "127.0.0.1:\(port)" }
}

/// One upstream connection: hands the parts of each answer to whoever sent the request.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    /// Takes the parts of the answer in progress (nil: the connection closed before its end);
    /// nil between requests.
    var receiver: ((HTTPClientResponsePart?) -> Void)?
    /// Called at the end of each read while an answer is in progress: the parts read so far go
    /// out to the client together (an answer read whole is flushed once, a stream as it comes).
    var readComplete: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receiver?(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readComplete?()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The connection went away: an answer in progress ends without its end.
        let receiver = self.receiver
        self.receiver = nil
        readComplete = nil
        receiver?(nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// An event loop's idle upstream connections. Used on its loop only (hence unchecked).
final class UpstreamPool: @unchecked Sendable {
    struct Connection {
        let channel: any Channel
        let handler: UpstreamHandler
    }

    private let loop: any EventLoop
    private let port: Int
    private var idle: [Connection] = []

    init(loop: any EventLoop, port: Int) {
        self.loop = loop
        self.port = port
    }

    func acquire(_ use: @escaping (Connection?) -> Void) {
        while let connection = idle.popLast() {
            if connection.channel.isActive {
                use(connection)
                return
            }
        }
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    let handler = try! channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
                    use(Connection(channel: channel, handler: handler))
                case .failure:
                    use(nil)
                }
            }
    }

    func release(_ connection: Connection) {
        if connection.channel.isActive { idle.append(connection) }
    }
}

/// One client connection: each request goes upstream whole, its answer comes back as it arrives.
/// Requests on a connection are taken one at a time (SwiftNIO's pipelining handler holds the next
/// until the answer's end is written).
final class ProxyHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let pool: UpstreamPool
    private let upstream: Upstream
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?

    init(pool: UpstreamPool, upstream: Upstream) {
        self.pool = pool
        self.upstream = upstream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
        case .body(var chunk):
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
        case .end:
            guard var head else { return }
            let client = (version: head.version, keepAlive: head.isKeepAlive)
            // Upstream always as HTTP/1.1 on a pooled connection, without the client's hop-by-hop headers.
            head.version = .http1_1
            for name in Self.hopByHop { head.headers.remove(name: name) }
            head.headers.replaceOrAdd(name: "x-goog-api-key", value: upstream.key)
            head.headers.replaceOrAdd(name: "host", value: upstream.host)
            forward(head, body, client: client, context: context)
        }
    }

    private static let hopByHop = ["connection", "keep-alive", "proxy-connection", "te", "upgrade"]

    private func forward(
        _ head: HTTPRequestHead, _ body: ByteBuffer?, client: (version: HTTPVersion, keepAlive: Bool), context: ChannelHandlerContext
    ) {
        let pool = self.pool
        pool.acquire { connection in
            guard let connection else {
                self.badGateway(context)
                return
            }
            var answerStarted = false
            var upstreamKeepAlive = true
            connection.handler.readComplete = { context.flush() }
            connection.handler.receiver = { part in
                switch part {
                case .head(var answer):
                    answerStarted = true
                    upstreamKeepAlive = answer.isKeepAlive
                    // In the client's version, saying what becomes of its connection when that is not
                    // the version's default.
                    answer.version = client.version
                    answer.headers.remove(name: "connection")
                    answer.headers.remove(name: "keep-alive")
                    if !client.keepAlive {
                        answer.headers.add(name: "connection", value: "close")
                    } else if client.version.minor == 0 {
                        answer.headers.add(name: "connection", value: "keep-alive")
                    }
                    context.write(self.wrapOutboundOut(.head(answer)), promise: nil)
                case .body(let chunk):
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
                case .end:
                    connection.handler.receiver = nil
                    connection.handler.readComplete = nil
                    // Back in the pool before the next request on this client connection is taken.
                    if upstreamKeepAlive { pool.release(connection) } else { connection.channel.close(promise: nil) }
                    let written = context.writeAndFlush(self.wrapOutboundOut(.end(nil)))
                    if !client.keepAlive { written.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
                case nil:
                    // The upstream closed before the answer's end (a stale pooled connection).
                    if answerStarted { context.close(promise: nil) } else { self.badGateway(context) }
                }
            }
            let wire = connection.channel.pipeline.syncOperations
            wire.write(NIOAny(HTTPClientRequestPart.head(head)), promise: nil)
            if let body { wire.write(NIOAny(HTTPClientRequestPart.body(.byteBuffer(body))), promise: nil) }
            wire.writeAndFlush(NIOAny(HTTPClientRequestPart.end(nil)), promise: nil)
        }
    }

    /// No upstream answer: 502, and the connection closes.
    private func badGateway(_ context: ChannelHandlerContext) {
        let answer = HTTPResponseHead(version: .http1_1, status: .badGateway, headers: ["content-length": "0", "connection": "close"])
        context.write(wrapOutboundOut(.head(answer)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let port = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
    let usage = "usage: nio-proxy-floor PORT UPSTREAM_PORT KEY\n"
    _ = usage.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}
let upstream = Upstream(port: upstreamPort, key: arguments[3])
let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
// One pool per loop, made before any connection and only read after.
let pools = Dictionary(uniqueKeysWithValues: group.makeIterator().map { loop in (ObjectIdentifier(loop), UpstreamPool(loop: loop, port: upstream.port)) })

let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            let pool = pools[ObjectIdentifier(channel.eventLoop)]!
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(ProxyHandler(pool: pool, upstream: upstream))
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
// Written straight to the descriptor: a `print` would sit in stdio's buffer of a redirected stdout.
let ready = "nio-proxy-floor listening on 127.0.0.1:\(port), upstream \(upstream.host), \(System.coreCount) event loops\n"
_ = ready.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
try server.closeFuture.wait()
