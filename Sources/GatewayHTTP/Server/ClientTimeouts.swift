import Logging
import NIOCore

/// Closes a client connection that stalls or sits idle: a head that does not arrive whole in
/// time (slowloris), a body that falls silent, a keep-alive connection left unused. While a
/// request is being answered nothing is timed here (an upstream may think for minutes, a stream
/// may run for an hour): the upstream side has its own timeouts.
///
/// It is the first handler of the connection's pipeline, so that it sees every byte as it
/// arrives, before the HTTP decoder has made anything of it; ``ClientConnectionHandler``, which sees
/// every request (proxied or local), tells it where the
/// connection is in the exchange.
///
/// One timer per connection at most, re-armed only when it fires or a deadline comes sooner:
/// each step of a request only notes a new deadline (a clock read), so the timeouts cost the
/// request path no scheduling.
public final class ClientTimeouts: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    /// How long each wait may last.
    public struct Limits: Sendable {
        /// From the connection's start, or from the first byte of a request after the last
        /// answer, to the end of the request's head.
        var head: TimeAmount
        /// Longest silence within a request's body.
        var body: TimeAmount
        /// Longest wait for the next request once the last one is answered.
        var idle: TimeAmount

        public init(head: TimeAmount, body: TimeAmount, idle: TimeAmount) {
            self.head = head
            self.body = body
            self.idle = idle
        }
    }

    /// Why a connection was closed (the `reason` label of the metric).
    public enum Expiry: String, Sendable, CaseIterable {
        case head = "request_head_timeout"
        case body = "request_body_timeout"
        case idle = "keep_alive_timeout"
        /// Idle at `--max-connections`, closed to let a new client in (``ConnectionCap``).
        case capacity = "idle_at_connection_cap"
    }

    /// Sent down the pipeline just before the connection closes, so that a request whose body
    /// stalled can still be answered (and get its row).
    public struct Expired {
        public var expiry: Expiry
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
    /// With `--max-connections`: the open connections, and this one's standing among them.
    private let connections: IdleConnections?
    private var slot: IdleConnections.Slot?
    /// What `slot` says: idle (between requests, or open with no request yet) or busy.
    private var isIdle = false

    /// `expired` is told of every connection closed for a timeout or for the cap (to count and
    /// log it); `connections` is given with a connection cap.
    public init(limits: Limits, connections: IdleConnections? = nil, expired: @escaping @Sendable (Expiry, SocketAddress?) -> Void) {
        self.limits = limits
        self.connections = connections
        self.expired = expired
    }

    // MARK: Where the exchange is (told by ClientConnectionHandler)

    /// A request's head has arrived: its body (if any) comes next.
    func headReceived() {
        markBusy()
        phase = .readingBody
        setDeadline(.now() + limits.body)
    }

    /// A request has arrived whole: it is being answered.
    func requestReceived() {
        markBusy()
        phase = .answering
        deadline = nil
    }

    /// The requests so far are answered and the connection stays open for the next.
    func answered() {
        phase = .awaitingHead(started: false)
        let now = NIODeadline.now()
        setDeadline(now + limits.idle)
        markIdle(at: now)
        // At the cap with clients waiting to be accepted: this one makes room.
        if let connections, let slot, connections.isFull { reclaim(ifIdleSince: slot.idleSince.load(ordering: .relaxed)) }
    }

    // MARK: At the connection cap

    private func markIdle(at now: NIODeadline) {
        guard let slot else { return }
        isIdle = true
        slot.idleSince.store(max(1, now.uptimeNanoseconds), ordering: .relaxed)
    }

    private func markBusy() {
        guard isIdle, let slot else { return }
        isIdle = false
        slot.idleSince.store(0, ordering: .relaxed)
    }

    /// Closes the connection for a new client if it is still idle as it was at `since`, once
    /// what was written to it has gone out (a close would drop writes still queued).
    private func reclaim(ifIdleSince since: UInt64) {
        guard let context, let slot, since != 0, slot.idleSince.load(ordering: .relaxed) == since else { return }
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(capacity: 0))).assumeIsolated().whenComplete { [self] _ in
            guard let context = self.context, slot.idleSince.load(ordering: .relaxed) == since else { return }
            stop()
            expired(.capacity, context.channel.remoteAddress)
            context.close(promise: nil)
        }
    }

    // MARK: Pipeline events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let now = NIODeadline.now()
        setDeadline(now + limits.head)
        if let connections {
            let loop = context.eventLoop
            let handler = NIOLoopBound(self, eventLoop: loop)
            let slot = IdleConnections.Slot { since in loop.execute { handler.value.reclaim(ifIdleSince: since) } }
            self.slot = slot
            connections.add(slot)
            markIdle(at: now + IdleConnections.silentGrace)  // open with no request yet
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
        leave()
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop()
        leave()
        context.fireChannelInactive()
    }

    /// No longer among the open connections.
    private func leave() {
        guard let slot else { return }
        self.slot = nil
        connections?.remove(slot)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        markBusy()
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
