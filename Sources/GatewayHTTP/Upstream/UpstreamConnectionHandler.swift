import NIOCore
import NIOHTTP1

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
                fail(UpstreamTransportError(failure: .timeout, detail: "no response head within \(Duration(headTimeout))"))
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
            fail(UpstreamTransportError(failure: .cancelled, detail: "cancelled: the client went away"))
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
        fail(UpstreamTransportError(error))
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
