import Logging
import NIOCore

/// Closes a client connection that stalls or sits idle: a head that does not arrive whole in
/// time (slowloris), a body that falls silent, a keep-alive connection left unused. While a
/// request is being answered nothing is timed here (an upstream may think for minutes, a stream
/// may run for an hour): the upstream side has its own timeouts.
///
/// It is the first handler of the connection's pipeline, so that it sees every byte as it
/// arrives, before the HTTP decoder has made anything of it; ``ProxyChannelHandler``, which sees
/// the requests of both kinds (proxied, and passed on to Hummingbird), tells it where the
/// connection is in the exchange.
///
/// One timer per connection at most, re-armed only when it fires or a deadline comes sooner:
/// each step of a request only notes a new deadline (a clock read), so the timeouts cost the
/// request path no scheduling.
final class ClientTimeouts: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// How long each wait may last.
    struct Limits: Sendable {
        /// From the connection's start, or from the first byte of a request after the last
        /// answer, to the end of the request's head.
        var head: TimeAmount
        /// Longest silence within a request's body.
        var body: TimeAmount
        /// Longest wait for the next request once the last one is answered.
        var idle: TimeAmount
    }

    /// Why a connection was closed (the `reason` label of the metric).
    enum Expiry: String, Sendable, CaseIterable {
        case head = "request_head_timeout"
        case body = "request_body_timeout"
        case idle = "keep_alive_timeout"
    }

    /// Sent down the pipeline just before the connection closes, so that a request whose body
    /// stalled can still be answered (and get its row).
    struct Expired {
        var expiry: Expiry
    }

    private enum Phase {
        /// Waiting for a request's head: `started` once a byte of it came (or, for the first
        /// request, from the connection's start).
        case awaitingHead(started: Bool)
        case readingBody
        /// A request is being answered.
        case answering
    }

    private let limits: Limits
    private let expired: @Sendable (Expiry, SocketAddress?) -> Void
    private var phase = Phase.awaitingHead(started: true)
    private var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerFiresAt = NIODeadline.distantFuture
    private var context: ChannelHandlerContext?

    /// `expired` is told of every connection closed for a timeout (to count and log it).
    init(limits: Limits, expired: @escaping @Sendable (Expiry, SocketAddress?) -> Void) {
        self.limits = limits
        self.expired = expired
    }

    // MARK: Where the exchange is (told by ProxyChannelHandler)

    /// A request's head has arrived: its body (if any) comes next.
    func headReceived() {
        phase = .readingBody
        setDeadline(.now() + limits.body)
    }

    /// A request has arrived whole: it is being answered.
    func requestReceived() {
        phase = .answering
        deadline = nil
    }

    /// The requests so far are answered and the connection stays open for the next.
    func answered() {
        phase = .awaitingHead(started: false)
        setDeadline(.now() + limits.idle)
    }

    // MARK: Pipeline events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        setDeadline(.now() + limits.head)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .awaitingHead(started: false):
            phase = .awaitingHead(started: true)
            setDeadline(.now() + limits.head)
        case .readingBody:
            // Any byte of the body counts, even one the decoder cannot pass on yet.
            setDeadline(.now() + limits.body)
        case .awaitingHead(started: true), .answering:
            break
        }
        context.fireChannelRead(data)
    }

    // MARK: The timer

    private func setDeadline(_ new: NIODeadline) {
        deadline = new
        guard let context else { return }
        if timer != nil, timerFiresAt <= new { return }  // it fires first and looks again
        timer?.cancel()
        timerFiresAt = new
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: new) { [self] in fire() }
    }

    private func fire() {
        timer = nil
        timerFiresAt = .distantFuture
        guard let deadline, let context else { return }
        guard deadline <= .now() else {
            setDeadline(deadline)
            return
        }
        let expiry: Expiry = switch phase {
        case .awaitingHead(started: true): .head
        case .awaitingHead(started: false): .idle
        case .readingBody: .body
        case .answering: .idle  // not reached: no deadline while answering
        }
        stop()
        expired(expiry, context.channel.remoteAddress)
        context.fireUserInboundEventTriggered(Expired(expiry: expiry))
        context.close(promise: nil)
    }

    private func stop() {
        deadline = nil
        timer?.cancel()
        timer = nil
        timerFiresAt = .distantFuture
    }
}
