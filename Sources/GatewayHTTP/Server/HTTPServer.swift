import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle
import Synchronization

/// The listening socket, as a service: binds, hands each accepted connection to
/// `childChannel` (which builds its pipeline, on the connection's event loop), and serves until
/// the service group shuts down. Then it stops accepting, tells every connection to finish what
/// it is answering and close (``ChannelShouldQuiesceEvent``), and returns once all have closed.
/// A shutdown that outlasts its grace (the group cancels) closes every connection: the requests
/// still being answered are cancelled, a stream is cut (and logged so).
///
/// SwiftNIO's `ServerBootstrap`, with the options a server facing strangers needs: a deep accept
/// queue (a burst of thousands of connections must not overflow it), `SO_REUSEADDR`, SwiftNIO's
/// accept backoff when descriptors run out (on by default), half-closure seen by the handlers
/// (a client that shuts its sending side down still gets its answer), and
/// `--max-connections` (``ConnectionCap``) on the listening socket.
public struct HTTPServer: Service {
    var host: String
    var port: Int
    var backlog: Int32 = 4096
    /// The connection cap, if any (`--max-connections`).
    var cap: (@Sendable () -> ConnectionCap)?
    /// Builds an accepted connection's pipeline, on its event loop.
    var childChannel: @Sendable (any Channel) throws -> Void
    /// Called with the listening channel once it is bound (its address has the port).
    var onRunning: @Sendable (any Channel) async -> Void
    var logger: Logger

    public init(
        host: String, port: Int, backlog: Int32 = 4096, cap: (@Sendable () -> ConnectionCap)?,
        childChannel: @escaping @Sendable (any Channel) throws -> Void, onRunning: @escaping @Sendable (any Channel) async -> Void,
        logger: Logger
    ) {
        self.host = host
        self.port = port
        self.backlog = backlog
        self.cap = cap
        self.childChannel = childChannel
        self.onRunning = onRunning
        self.logger = logger
    }

    public func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let quiescing = ServerQuiescingHelper(group: group)
        let open = OpenConnections()
        let childChannel = self.childChannel
        let cap = self.cap
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let cap { try sync.addHandler(cap()) }
                    try sync.addHandler(quiescing.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    open.add(channel)
                    try childChannel(channel)
                }
            }
            .bind(host: host, port: port)
            .get()
        logger.info("Server started and listening on \(host):\(listener.localAddress?.port ?? port)")
        await onRunning(listener)

        // Completed once every connection has closed; handed to the first of the two calls that
        // may begin the shutdown (the helper must not be given one promise twice).
        let closed = listener.eventLoop.makePromise(of: Void.self)
        let beginShutdown: @Sendable () -> Void = {
            quiescing.initiateShutdown(promise: open.shutdownBegins() ? closed : nil)
        }
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await closed.futureResult.get()
            } onGracefulShutdown: {
                beginShutdown()
            }
        } onCancel: {
            beginShutdown()
            open.closeAll()
        }
    }

    /// The connections accepted and not yet closed, for a shutdown that cannot wait for them.
    private final class OpenConnections: Sendable {
        private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
        private let shuttingDown = Mutex(false)

        /// True the first time only.
        func shutdownBegins() -> Bool {
            shuttingDown.withLock { begun in
                defer { begun = true }
                return !begun
            }
        }

        func add(_ channel: any Channel) {
            let id = ObjectIdentifier(channel)
            channels.withLock { $0[id] = channel }
            channel.closeFuture.whenComplete { _ in _ = self.channels.withLock { $0.removeValue(forKey: id) } }
        }

        func closeAll() {
            for channel in channels.withLock({ Array($0.values) }) {
                channel.close(promise: nil)
            }
        }
    }
}
