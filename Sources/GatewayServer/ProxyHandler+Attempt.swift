import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import NIOCore
import NIOHTTP1

// MARK: - One try

extension ProxyHandler {
    /// How one try ended, for the loop.
    enum AttemptResult {
        /// The answer to give the client: a success to relay, or the client left (its row is
        /// finished, or finishes as the answer is relayed).
        case answer(ProxyAnswer)
        /// This pair failed; another may do better.
        case retry(Failure)
        /// This pair failed and no other would do better: answer with it.
        case final(Failure)

        /// A 429 from Google that another pair may get past.
        var isThrottle: Bool {
            if case .retry(let failure) = self { return failure.isThrottle }
            return false
        }
    }

    /// Sends the request to the pair, classifies what comes back, and charges the pool with it
    /// (Caddy's send / classify / update). A 2xx is relayed from its first chunk; an error answer
    /// or a transport failure is kept as the failure to answer with if no try succeeds.
    func attempt(
        _ number: Int, key: PoolKey, upstream: PoolUpstream, _ exchange: Exchange, refusedBy: inout [PairID]
    ) async -> AttemptResult {
        let started = ContinuousClock.now
        let row = AttemptRow(attempt: number, startedAt: Date(), keyId: key.id, upstreamId: upstream.id, status: nil, verdict: "pending")
        // Send; a transport failure blames the upstream.
        var response: UpstreamResponse
        do {
            response = try await transport.send(outgoing(to: key, upstream, exchange))
        } catch {
            return transportFailed(error, key: key, upstream: upstream, exchange, attempt: row, started: started)
        }
        if (200..<300).contains(response.status) {
            return await succeeded(&response, key: key, upstream: upstream, exchange, attempt: row, started: started, refusedBy: refusedBy)
        }
        return await refused(&response, key: key, upstream: upstream, exchange, attempt: row, started: started, refusedBy: &refusedBy)
    }

    /// The request as it goes to `upstream` with `key`.
    @inline(never)
    private func outgoing(to key: PoolKey, _ upstream: PoolUpstream, _ exchange: Exchange) -> UpstreamRequest {
        UpstreamRequest(
            method: exchange.request.method,
            baseURL: upstream.baseURL,
            target: exchange.target.forwarded,
            headers: ForwardedHeaders.toUpstream(
                exchange.request.headers, credential: key.secret, bearer: exchange.route.isOpenAI,
                keepClientAddress: configuration.forwardClientAddress
            ),
            body: exchange.request.body
        )
    }

    /// A 2xx: its first chunk is read before anything goes to the client (until then a failure
    /// can still fail over); then the pair is marked healthy, the relays that refused this
    /// request are charged, and the answer is relayed.
    private func succeeded(
        _ response: inout UpstreamResponse, key: PoolKey, upstream: PoolUpstream, _ exchange: Exchange,
        attempt: AttemptRow, started: ContinuousClock.Instant, refusedBy: [PairID]
    ) async -> AttemptResult {
        let first: ByteBuffer?
        var whole = false
        do {
            if exchange.creates {
                // The answer names what was created: read it whole (it is small).
                first = try await Self.collect(&response.body, limit: Self.maximumErrorBody)
                whole = true
            } else {
                first = try await response.body.next()
                // A plain answer that came in one piece: read its end too (so the connection
                // goes back to the pool), and send it with its head in one write.
                if let first, response.headers.first(name: "content-length").flatMap(Int.init) == first.readableBytes {
                    whole = try await response.body.next() == nil
                }
            }
        } catch {
            // The head came: the try's row keeps its status.
            return transportFailed(error, key: key, upstream: upstream, exchange, attempt: attempt, status: response.status, started: started)
        }
        charge(success: response.status, key: key, upstream: upstream, exchange, attempt: attempt, started: started, refusedBy: refusedBy)
        if exchange.creates, let first {
            let owner = ResourceOwner(keyID: key.id, upstreamID: upstream.id, clientID: exchange.client.id)
            await rememberCreated(first, headers: &response.headers, owner: owner, upstream: upstream, request: exchange.request)
        } else if let pin = exchange.pin, exchange.request.method == .DELETE, !pin.name.hasPrefix(ProjectResource.uploadPrefix) {
            await owners.forget(pin.name)
        }
        if whole, let first {
            return .answer(relayWhole(response, body: first, exchange))
        }
        return .answer(relay(response, first: first, exchange))
    }

    /// Marks the pair healthy, charges the relays that refused this request, and completes the
    /// try's row.
    @inline(never)
    private func charge(
        success status: Int, key: PoolKey, upstream: PoolUpstream, _ exchange: Exchange,
        attempt: AttemptRow, started: ContinuousClock.Instant, refusedBy: [PairID]
    ) {
        let model = exchange.model
        pool.record(.success, pair: PairID(key: key.id, upstream: upstream.id), model: model)
        for refused in refusedBy {
            pool.record(.upstreamFailure(reason: OutcomeClassifier.Reason.notGoogle4xx), pair: refused, model: model)
        }
        var row = attempt.answered(status)
        row.verdict = Verdict.success.label
        row.latencyMs = (ContinuousClock.now - started) / .milliseconds(1)
        exchange.recorder.relaying(row, status: status)
    }

    /// An error answer: read (bounded) and classified from status and body; the key or upstream
    /// it blames is charged (a relay's own 4xx page only once another upstream succeeds).
    private func refused(
        _ response: inout UpstreamResponse, key: PoolKey, upstream: PoolUpstream, _ exchange: Exchange,
        attempt: AttemptRow, started: ContinuousClock.Instant, refusedBy: inout [PairID]
    ) async -> AttemptResult {
        let body: ByteBuffer
        do {
            body = try await Self.collect(&response.body, limit: Self.maximumErrorBody)
        } catch {
            // The head came: the try's row keeps its status.
            return transportFailed(error, key: key, upstream: upstream, exchange, attempt: attempt, status: response.status, started: started)
        }
        return classify(response, body: body, key: key, upstream: upstream, exchange, attempt: attempt, started: started, refusedBy: &refusedBy)
    }

    /// Classifies an error answer read whole, charges whom it blames and completes the try's row.
    @inline(never)
    private func classify(
        _ response: UpstreamResponse, body: ByteBuffer, key: PoolKey, upstream: PoolUpstream, _ exchange: Exchange,
        attempt: AttemptRow, started: ContinuousClock.Instant, refusedBy: inout [PairID]
    ) -> AttemptResult {
        let analysis = OutcomeClassifier.analyze(
            status: response.status, body: body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? []
        )
        let verdict = analysis.verdict
        let pair = PairID(key: key.id, upstream: upstream.id)
        if case .relayRefusal = verdict {
            refusedBy.append(pair)
        } else {
            pool.record(verdict, pair: pair, model: exchange.model)
        }
        var row = attempt.answered(response.status)
        row.verdict = verdict.label
        row.reason = verdict.reason
        row.googleStatus = analysis.googleStatus
        if case .throttled(let throttle) = verdict { row.quotaId = throttle.quotaID }
        row.latencyMs = (ContinuousClock.now - started) / .milliseconds(1)
        exchange.recorder.attempted(row)
        let failure = Failure.answer(
            status: response.status, headers: response.headers, body: body, verdict: verdict, googleStatus: analysis.googleStatus
        )
        return verdict.shouldRetry ? .retry(failure) : .final(failure)
    }

    /// A try that got no usable HTTP answer (no connection, a reset, a timeout, a body that broke
    /// off before the first byte was relayed). Who is blamed depends on why:
    ///
    /// - the client went away (the task is cancelled, the transport gave up its wait for that):
    ///   nobody; the try and the request are cancelled;
    /// - a transport failure (``UpstreamTransportError``): the upstream, and another pair is
    ///   tried; but the gateway's own shortage (descriptors, memory) blames nobody and is final
    ///   (another try would meet the same);
    /// - any other error is no failure of the upstream's but of the gateway's own code: nobody
    ///   is blamed, no other pair is tried (it would meet the same fault), and the client gets
    ///   500 `INTERNAL`.
    ///
    /// `status` is the head's, when one came before the body broke off: the try's row keeps it.
    @inline(never)
    private func transportFailed(
        _ error: any Error, key: PoolKey, upstream: PoolUpstream, _ exchange: Exchange,
        attempt: AttemptRow, status: Int? = nil, started: ContinuousClock.Instant
    ) -> AttemptResult {
        let attempt = status.map { attempt.answered($0) } ?? attempt
        let failure: UpstreamTransportError
        switch error {
        case _ where Task.isCancelled, is CancellationError:
            return .answer(cancelled(exchange.recorder, attempt: attempt, started: started))
        case let error as UpstreamTransportError where error.failure == .cancelled:
            return .answer(cancelled(exchange.recorder, attempt: attempt, started: started))
        case let error as UpstreamTransportError:
            failure = error
        default:
            return internalFailure(error, upstream: upstream, exchange, attempt: attempt, started: started)
        }
        let verdict = OutcomeClassifier.classify(transport: failure.failure)
        pool.record(verdict, pair: PairID(key: key.id, upstream: upstream.id), model: exchange.model)
        finishAttempt(attempt, verdict, reason: verdict.reason, exchange.recorder, started: started)
        logger.debug("upstream transport failure", metadata: ["upstream_id": "\(upstream.id)", "error": "\(failure)"])
        let kept = Failure.transport(failure)
        return kept.isLocal ? .final(kept) : .retry(kept)
    }

    /// An error that is not the transport's (a bug of the gateway's, or of a transport that
    /// broke its contract): logged with its type, charged to nobody, final.
    private func internalFailure(
        _ error: any Error, upstream: PoolUpstream, _ exchange: Exchange, attempt: AttemptRow, started: ContinuousClock.Instant
    ) -> AttemptResult {
        let verdict = Verdict.localFailure(reason: OutcomeClassifier.Reason.internalError)
        finishAttempt(attempt, verdict, reason: verdict.reason, exchange.recorder, started: started)
        logger.error("internal error during an upstream try", metadata: [
            "request_id": "\(exchange.recorder.requestID)", "upstream_id": "\(upstream.id)",
            "error_type": "\(String(reflecting: type(of: error)))", "error": "\(error)",
        ])
        return .final(.internalError)
    }

    /// Completes the row of a try that got no HTTP answer.
    private func finishAttempt(
        _ attempt: AttemptRow, _ verdict: Verdict, reason: String?, _ recorder: RequestRecorder, started: ContinuousClock.Instant
    ) {
        var row = attempt
        row.verdict = verdict.label
        row.reason = reason
        row.latencyMs = (ContinuousClock.now - started) / .milliseconds(1)
        recorder.attempted(row)
    }

    /// The client went away while a try was under way: the try is recorded as cancelled, and so
    /// is the request.
    private func cancelled(_ recorder: RequestRecorder, attempt: AttemptRow, started: ContinuousClock.Instant) -> ProxyAnswer {
        finishAttempt(attempt, .cancelled, reason: nil, recorder, started: started)
        return fail(recorder, .clientGone, outcome: .cancelled)
    }

    /// Reads a whole (error) body up to `limit` bytes.
    static func collect(_ body: inout any UpstreamBodyStream, limit: Int) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        while var chunk = try await body.next() {
            if collected.readableBytes + chunk.readableBytes > limit {
                collected.writeBuffer(&chunk)
                return collected.getSlice(at: collected.readerIndex, length: limit) ?? collected
            }
            collected.writeBuffer(&chunk)
        }
        return collected
    }
}

extension AttemptRow {
    /// The row of a try whose answer's head came with `status`.
    fileprivate func answered(_ status: Int) -> AttemptRow {
        var row = self
        row.status = status
        return row
    }
}
