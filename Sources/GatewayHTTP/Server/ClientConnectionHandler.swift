import GatewayCore
import NIOCore
import NIOHTTP1

/// Answers every request of a client connection on its event loop: the proxied ones (`/v1…`,
/// `/v1beta…`, uploads, downloads: ``ProxiedTarget``) through the ``Responder``'s
/// ``Responder/respond(to:)``, everything else (the probes, `/metrics`, `/status`, unknown
/// paths) through its ``Responder/answerLocal(to:)``.
///
/// It sits in each connection's pipeline (``ClientPipeline``) right after SwiftNIO's HTTP/1
/// decoder. A proxied request's body is read here, within the limit, and the request is answered
/// in a task of its own, pinned to this loop, which writes the answer, framed here, from the
/// pipeline's ``HTTPWire`` next to the socket: no async sequence per connection, no response
/// writer, no conversion of heads, no encoder, one task per request. (A framework's way cost
/// about a third of the gateway's CPU per request; see bench/RESULTS.md.)
///
/// Requests on one connection are answered one after another, in order: the parts of a request
/// that arrives while another is answered (pipelining) wait here, and reading stops until their
/// turn comes.
public final class ClientConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundIn = Never

    private enum Reading {
        /// Between requests.
        case idle
        /// A request for a local route: its body (none is expected) is dropped as it comes, and
        /// counted: over ``LocalAnswer/maximumRequestBodyBytes`` it is refused.
        case local(HTTPRequestHead, bodyBytes: Int)
        /// A proxied request's body, read whole before it is answered (once its head has
        /// authenticated its client).
        case collecting(HTTPRequestHead, any Sendable, ByteBuffer?)
        /// The rest of a request already answered or given up (too large, malformed, client gone).
        case discarding
    }

    /// The responder and the task count, behind one reference: each request's task takes one
    /// retain, not one for every reference the responder holds.
    public final class Shared: Sendable {
        let responder: any Responder
        let tasks: ProxyTasks
        /// ``Responder/maximumInFlight`` (0: no limit).
        let maximumInFlight: Int
        /// ``Responder/maximumBodyBytes``.
        let maximumBodyBytes: Int

        public init(responder: any Responder, tasks: ProxyTasks) {
            self.responder = responder
            self.tasks = tasks
            maximumInFlight = responder.maximumInFlight
            maximumBodyBytes = responder.maximumBodyBytes
        }
    }

    private let shared: Shared
    private var responder: any Responder { shared.responder }
    private var tasks: ProxyTasks { shared.tasks }
    private var reading = Reading.idle
    /// A request is being answered (from its end to its answer's end).
    private var answering = false
    /// The answer in progress is a local route's.
    private var answeringLocal = false
    /// Parts that came while an earlier request was answered, in order.
    private var waiting = CircularBuffer<HTTPServerRequestPart>()
    /// The channel asked for more while parts were waiting.
    private var readHeld = false
    /// Close once the answer in progress has been sent (`Connection: close`, shutdown, too large).
    private var closeWhenAnswered = false
    /// Close once the requests waiting have been answered (what came after them was not HTTP).
    private var closeAfterWaiting = false
    /// The connection is closing: whatever else arrives is dropped.
    private var closing = false
    /// The task answering the proxied request in progress (cancelled if the client goes away).
    private var task: Task<Void, Never>?
    /// Counts the proxied requests answered on this connection.
    private var answers = 0
    /// The answer in progress has begun to go out (its head is written).
    private var answerStarted = false
    private var context: ChannelHandlerContext?
    /// The HTTP version of the request being answered.
    private var version = HTTPVersion.http1_1
    private var executor: EventLoopTaskExecutor?
    /// Where answers go out, framed here (``HTTPWire``); set before the handler is added.
    var wire: HTTPWire?
    /// The connection's client-side timeouts, told where the exchange is; set before the handler is added.
    var timeouts: ClientTimeouts?
    /// The request being answered is a `HEAD`: its answer has a head only.
    private var answersHEAD = false
    /// How the body of the answer in progress is framed.
    private var framing = HTTPWire.Framing.none
    /// A streamed answer waiting for the client to read (back-pressure).
    private var writable: CheckedContinuation<Void, any Error>?

    public init(_ shared: Shared) {
        self.shared = shared
    }

    // MARK: - Pipeline events

    public func handlerAdded(context: ChannelHandlerContext) {
        precondition(wire != nil, "ClientConnectionHandler writes its answers through the pipeline's HTTPWire")
        self.context = context
        self.executor = EventLoopTaskExecutor(pinnedTo: context.eventLoop)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        resumeWriter(throwing: ClientGone())
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let part = unwrapInboundIn(data)
        if !waiting.isEmpty || (isHead(part) && answering) {
            waiting.append(part)
            return
        }
        take(part, context: context)
    }

    public func read(context: ChannelHandlerContext) {
        if waiting.isEmpty {
            context.read()
        } else {
            readHeld = true
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { resumeWriter(throwing: nil) }
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        closing = true
        clientLeftDuringBody()
        // The answer can no longer reach anyone: stop the upstream call and any retry.
        task?.cancel()
        resumeWriter(throwing: ClientGone())
        context.fireChannelInactive()
    }

    /// The client went away in the middle of a proxied request's body: the request still gets its row.
    private func clientLeftDuringBody() {
        guard case .collecting(let head, _, _) = reading else { return }
        reading = .discarding
        _ = responder.refuse(head, .clientGone, outcome: .cancelled, reason: nil)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is ClientTimeouts.Expired:
            // The connection closes (``ClientTimeouts`` closes it): a proxied request whose body
            // stalled is answered first, and has its row.
            if case .collecting(let head, _, _) = reading {
                reading = .discarding
                let error = GeminiErrorResponse.bodyStalled(after: responder.requestBodyTimeout)
                refuseAndClose(head, error, outcome: .clientError, reason: "REQUEST_BODY_TIMEOUT", context: context)
            }
        case is ChannelShouldQuiesceEvent:
            // A graceful shutdown: a request in progress (or waiting its turn) is answered, then
            // the connection closes; an idle one closes now.
            if answering || !waiting.isEmpty || isReading {
                closeWhenAnswered = true
            } else {
                close(context)
            }
        case let event as ChannelEvent where event == .inputClosed && (answerStarted || answeringLocal):
            // The client closed its side while its answer streams (an SDK that has read the last
            // event it needs does), or after asking for a local page (`nc` does): the answer goes
            // on to its end, or to the first write that fails, and the connection closes after it.
            closeWhenAnswered = true
        case let event as ChannelEvent where event == .inputClosed && (isProxying || !waiting.isEmpty):
            // The client closed its connection (or its sending side: the two look the same)
            // before its answer began. Like nginx (`proxy_ignore_client_abort off`), that is a
            // client gone: the upstream call stops instead of running on for no one.
            clientLeftDuringBody()
            close(context)
            task?.cancel()
        case let event as ChannelEvent where event == .inputClosed:
            // Nothing asked and nothing more can come.
            close(context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .collecting(let head, _, _) = reading {
            if let parse = error as? HTTPParserError, parse != .invalidEOFState {
                // A body that is not HTTP (a broken chunk, say): the client's error.
                reading = .discarding
                refuseAndClose(head, .malformedBody, outcome: .clientError, context: context)
            } else {
                // The connection ended (or broke) in the middle of the body.
                clientLeftDuringBody()
                close(context)
            }
            return
        }
        if answering || !waiting.isEmpty {
            // Bad bytes after requests still to answer (or more requests after one that said
            // `Connection: close`): those are answered first, then the connection closes.
            closeAfterWaiting = true
            return
        }
        if error is HTTPParserError {
            // Not HTTP: 400, and the connection closes (where the bytes end is unknowable).
            refuseMalformed(context)
        } else {
            close(context)  // the socket broke
        }
    }

    /// Answers bytes that are not an HTTP request with a bare 400 and closes the connection.
    private func refuseMalformed(_ context: ChannelHandlerContext) {
        reading = .discarding
        guard let wire = wire?.context, !closing else { return close(context) }
        writeThenClose(context.channel.allocator.buffer(staticString: badRequest), on: wire, context: context)
    }

    // MARK: - Requests

    private var isProxying: Bool {
        if answering && !answeringLocal { return true }
        if case .collecting = reading { return true }
        return false
    }

    /// A request's head has come and its end has not.
    private var isReading: Bool {
        switch reading {
        case .collecting, .local: return true
        case .idle, .discarding: return false
        }
    }

    private func isHead(_ part: HTTPServerRequestPart) -> Bool {
        if case .head = part { return true }
        return false
    }

    private func take(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        guard !closing, context.channel.isActive else { return }
        switch (reading, part) {
        case (.idle, .head(let head)):
            start(head, context: context)
        case (.local(let head, _), .end):
            reading = .idle
            timeouts?.requestReceived()
            answerLocal(head, context: context)
        case (.local(let head, let received), .body(let chunk)):
            let total = received + chunk.readableBytes
            guard total <= LocalAnswer.maximumRequestBodyBytes else { return refuseLocal(context: context) }
            reading = .local(head, bodyBytes: total)
        case (.local, .head):
            break
        case (.collecting(let head, let admission, let collected), .body(var chunk)):
            reading = .idle  // the buffer is uniquely referenced while it grows
            let limit = shared.maximumBodyBytes
            guard (collected?.readableBytes ?? 0) + chunk.readableBytes <= limit else {
                reading = .discarding
                refuseAndClose(head, .tooLarge(limit: limit), outcome: .tooLarge, context: context)
                return
            }
            if var body = collected {
                body.writeBuffer(&chunk)
                reading = .collecting(head, admission, body)
            } else {
                // Most bodies come in one piece: kept as read, no copy.
                reading = .collecting(head, admission, chunk)
            }
        case (.collecting(let head, let admission, let body), .end):
            reading = .idle
            timeouts?.requestReceived()
            answer(IncomingRequest(head: head, admission: admission, body: body ?? ByteBuffer()), context: context)
        case (.discarding, .end):
            reading = .idle
        case (.discarding, _), (.idle, _), (.collecting, .head):
            break
        }
    }

    private func start(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        version = head.version
        answersHEAD = head.method == .HEAD
        guard ProxiedTarget.isProxied(head.uri) else {
            if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > LocalAnswer.maximumRequestBodyBytes {
                return refuseLocal(context: context)
            }
            if !head.isKeepAlive { closeWhenAnswered = true }
            reading = .local(head, bodyBytes: 0)
            timeouts?.headReceived()
            return
        }
        // The token is checked before any body byte is read: a stranger's body (up to the limit,
        // 100 MiB) is never taken in, nor is it asked for (no `100 Continue`).
        guard let admission = responder.admit(head) else {
            reading = .discarding
            refuseAndClose(head, .unauthenticated, outcome: .unauthorized, context: context)
            return
        }
        // What the gateway can judge malformed itself goes nowhere upstream (where a relay's own
        // 4xx page would tell nobody whose fault it was).
        if let refusal = RequestHeadCheck.refusal(for: head) {
            reading = .discarding
            refuseAndClose(head, refusal, outcome: .clientError, context: context)
            return
        }
        let limit = shared.maximumBodyBytes
        if let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > limit {
            reading = .discarding
            refuseAndClose(head, .tooLarge(limit: limit), outcome: .tooLarge, context: context)
            return
        }
        if !head.isKeepAlive { closeWhenAnswered = true }
        reading = .collecting(head, admission, nil)
        timeouts?.headReceived()
        // A client that asks waits for this before it sends its body (curl: a second). An
        // HTTP/1.0 client's expectation is ignored (RFC 9110, 10.1.1).
        if head.version.minor >= 1, let expect = head.headers.first(name: "expect"), expect.lowercased() == "100-continue",
           let wire = wire?.context {
            var bytes = context.channel.allocator.buffer(capacity: 32)
            HTTPWire.writeStatusLine(version: head.version, status: .continue, into: &bytes)
            bytes.writeStaticString("\r\n")
            wire.writeAndFlush(NIOAny(bytes), promise: nil)
        }
    }

    /// Answers a request whose body is not read on (no valid token, or too large: reading on
    /// would take the whole body off the client first; malformed), and closes the connection.
    private func refuseAndClose(
        _ head: HTTPRequestHead, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String? = nil, context: ChannelHandlerContext
    ) {
        let answer = responder.refuse(head, error, outcome: outcome, reason: reason)
        answering = true
        closeWhenAnswered = true
        if case .whole(let body) = answer.body {
            writeWhole(answer.head, body, context: context)
        }
        answering = false
    }

    /// Refuses a request for a local route whose body is over ``LocalAnswer/maximumRequestBodyBytes``
    /// (declared, or counted as it came): 413, and the connection closes without reading the
    /// rest. Local routes keep no request rows.
    private func refuseLocal(context: ChannelHandlerContext) {
        reading = .discarding
        answering = true
        closeWhenAnswered = true
        let (head, body) = GeminiErrorResponse.localBodyTooLarge.answer()
        writeWhole(head, body, context: context)
        answering = false
    }

    /// Answers a proxied request in its own task on this loop. The task starts at once, on this
    /// thread (the request goes upstream in this very read), and goes on here after each wait.
    private func answer(_ request: IncomingRequest, context: ChannelHandlerContext) {
        // Room for one more, or the answer is 503 now: a request over the limit is never queued.
        guard tasks.start(within: shared.maximumInFlight) else {
            refuseOverloaded(request, context: context)
            return
        }
        answering = true
        answers += 1
        let number = answers
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let shared = self.shared
        let started = Task.immediate(executorPreference: executor) {
            let answer = await shared.responder.respond(to: request)
            await handler.value.send(answer)
            shared.tasks.finished()
        }
        // Unless it is already answered (an answer that needed no wait), and maybe the next one
        // begun: the handle is for cancelling this one.
        if answering, answers == number { task = started }
    }

    /// Answers a request for a local route in its own task on this loop (the metrics and the
    /// status page read state that may take a moment).
    private func answerLocal(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        answering = true
        answeringLocal = true
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let shared = self.shared
        Task.immediate(executorPreference: executor) {
            let answer = await shared.responder.answerLocal(to: head)
            handler.value.sendLocal(answer)
        }
    }

    private func sendLocal(_ answer: LocalAnswer) {
        answeringLocal = false
        if let context, context.channel.isActive {
            writeWhole(answer.head, answer.body, context: context)
        }
        answering = false
        timeouts?.answered()
        takeWaiting()
    }

    /// Answers a request the gateway has no room for (``Responder/overloaded(_:)``) here and
    /// now, without a task; the connection stays open (the body has been read) and the requests
    /// waiting behind it go on.
    private func refuseOverloaded(_ request: IncomingRequest, context: ChannelHandlerContext) {
        let answer = responder.overloaded(request)
        answering = true
        if case .whole(let body) = answer.body {
            writeWhole(answer.head, body, context: context)
        }
        answering = false
        timeouts?.answered()
        takeWaiting()
    }

    /// Writes the answer; a relayed body chunk by chunk, as it arrives.
    private func send(_ answer: HTTPAnswer) async {
        defer { task = nil }
        guard let context, context.channel.isActive else {
            if case .relay(let relay) = answer.body { relay.abandon() }
            answering = false
            return
        }
        switch answer.body {
        case .whole(let body):
            writeWhole(answer.head, body, context: context)
        case .relay(var relay):
            answerStarted = true
            defer { answerStarted = false }
            // An HTTP/1.0 client reads a body of unknown length to the connection's close.
            if version.minor == 0, relay.length == nil { closeWhenAnswered = true }
            var bytes = context.channel.allocator.buffer(capacity: 512)
            framing = writeHead(answer.head, contentLength: relay.length, into: &bytes)
            wire?.context?.write(NIOAny(bytes), promise: nil)
            do {
                try await relay.run { chunk in try await self.write(chunk) }
                writeEnd(context: context)
            } catch {
                // The upstream broke off, or the client went away: either way the client must
                // not take what it got for a whole answer.
                answering = false
                close(context)
                return
            }
        }
        answering = false
        timeouts?.answered()
        takeWaiting()
    }

    /// The head and its body in one write (a large body in a second one).
    private func writeWhole(_ head: HTTPResponseHead, _ body: ByteBuffer, context: ChannelHandlerContext) {
        let copied = body.readableBytes <= HTTPWire.copiedBody
        var bytes = context.channel.allocator.buffer(capacity: 512 + (copied ? body.readableBytes : 0))
        framing = writeHead(head, contentLength: body.readableBytes, into: &bytes)
        if framing == .none || body.readableBytes == 0 {
            wire?.context?.write(NIOAny(bytes), promise: nil)
        } else if copied {
            var body = body
            bytes.writeBuffer(&body)
            wire?.context?.write(NIOAny(bytes), promise: nil)
        } else {
            wire?.context?.write(NIOAny(bytes), promise: nil)
            wire?.context?.write(NIOAny(body), promise: nil)
        }
        writeEnd(context: context)
    }

    /// The answer's head on the wire (``HTTPWire/writeResponseHead``), in the client's HTTP
    /// version, saying `Connection: close` when the connection closes after this answer (and
    /// `keep-alive` to an HTTP/1.0 client that asked for it).
    private func writeHead(_ head: HTTPResponseHead, contentLength: Int?, into bytes: inout ByteBuffer) -> HTTPWire.Framing {
        let connection: StaticString? = closeWhenAnswered ? "close" : version.minor == 0 ? "keep-alive" : nil
        return HTTPWire.writeResponseHead(
            head, version: version, connection: connection, contentLength: contentLength, headOnly: answersHEAD, into: &bytes
        )
    }

    /// Ends the answer; when the connection is to close after it, closes once it has gone out.
    private func writeEnd(context: ChannelHandlerContext) {
        guard let wire = wire?.context else { return }
        let end = framing == .chunked ? context.channel.allocator.buffer(staticString: "0\r\n\r\n") : nil
        framing = .none
        guard closeWhenAnswered else {
            if let end { wire.write(NIOAny(end), promise: nil) }
            wire.flush()
            return
        }
        writeThenClose(end ?? context.channel.allocator.buffer(capacity: 0), on: wire, context: context)
    }

    /// Writes `bytes` and closes the connection once they have gone out; nothing after them is read.
    private func writeThenClose(_ bytes: ByteBuffer, on wire: ChannelHandlerContext, context: ChannelHandlerContext) {
        closing = true
        let written = context.eventLoop.makePromise(of: Void.self)
        wire.writeAndFlush(NIOAny(bytes), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// Closes the connection now, dropping whatever else arrives.
    private func close(_ context: ChannelHandlerContext) {
        closing = true
        context.close(promise: nil)
    }

    /// One chunk of a relayed body, waiting while the client does not keep up.
    private func write(_ chunk: ByteBuffer) async throws {
        guard let context, context.channel.isActive, let wire = wire?.context else { throw ClientGone() }
        switch framing {
        case .none: return  // a `HEAD`'s answer
        case .plain: wire.write(NIOAny(chunk), promise: nil)
        case .chunked: HTTPWire.writeChunk(chunk, on: wire)
        }
        wire.flush()
        if !context.channel.isWritable {
            try await withCheckedThrowingContinuation { self.writable = $0 }
        }
    }

    private func resumeWriter(throwing error: (any Error)?) {
        guard let writable else { return }
        self.writable = nil
        if let error { writable.resume(throwing: error) } else { writable.resume() }
    }

    /// Takes the requests that waited for the one just answered (unless the connection closes).
    private func takeWaiting() {
        guard let context, !closing, !closeWhenAnswered else { return }
        while let part = waiting.first {
            if isHead(part), answering { break }
            waiting.removeFirst()
            take(part, context: context)
        }
        guard waiting.isEmpty else { return }
        if closeAfterWaiting {
            finishBeforeBadBytes(context)
            return
        }
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    /// Everything before the bad bytes has been taken: a request they cut off is answered (a
    /// proxied one with 400) or dropped, and the connection closes once nothing is being answered.
    private func finishBeforeBadBytes(_ context: ChannelHandlerContext) {
        switch reading {
        case .collecting(let head, _, _):
            reading = .discarding
            refuseAndClose(head, .malformedBody, outcome: .clientError, context: context)
        case .local:
            close(context)
        case .idle, .discarding:
            if !answering { close(context) }
        }
    }
}

/// The client went away while its answer was being written.
struct ClientGone: Error {}

/// The answer to bytes that are not HTTP.
private let badRequest: StaticString = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

