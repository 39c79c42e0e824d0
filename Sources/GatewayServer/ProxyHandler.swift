import Foundation
import GatewayCore
import GatewayStore
import Logging
import NIOCore
import NIOHTTP1

/// A proxied request as ``ProxyChannelHandler`` hands it over: its head, who sent it (judged
/// from the head, before the body was read) and its whole body.
struct ProxyRequest: Sendable {
    var head: HTTPRequestHead
    var admission: ProxyHandler.Admission
    var body: ByteBuffer
    var method: HTTPMethod { head.method }
    var headers: HTTPHeaders { head.headers }
}

/// What the proxy answers: a head, and a body either in hand or still arriving from upstream.
struct ProxyAnswer {
    var head: HTTPResponseHead
    var body: Body

    enum Body {
        case whole(ByteBuffer)
        case relay(ProxyHandler.Relay)
    }
}

/// The request path: authenticate, then pick a pair, send, classify, and either relay the answer
/// or try the next pair, within a budget of attempts and time.
struct ProxyHandler: Sendable {
    let pool: KeyPool
    let authenticator: ClientAuthenticator
    let transport: any UpstreamTransport
    let logWriter: RequestLogWriter
    let metrics: GatewayMetrics
    /// Who created which file, cached content, batch or upload session.
    let owners: ResourceOwners
    let configuration: GatewayConfiguration
    /// Tries per request and their time budget (SIGHUP may change them; `configuration` holds
    /// their values at start).
    let limits: RetryLimits
    let logger: Logger
    /// Writes the line of a finished request, when the caller has a cheaper way than `logger`.
    var requestLine: RequestLineWriter? = nil

    /// Largest error body read from an upstream to classify it.
    static let maximumErrorBody = 4 << 20

    static let requestIDHeader = "x-gateway-request-id"

    /// A client the head of its request authenticates: by its token, or (the chunks of a
    /// resumable upload carry no token: Google's own upload URL is the credential) by a known
    /// upload session, which stands for the client that started it.
    struct Admission: Sendable {
        var client: ClientIdentity
        /// The upload session the request continues, bound to the key and upstream that began it.
        var uploadPin: ResourcePin?
    }

    /// Who sent the request, from its head alone (so that no body is read for a stranger); nil
    /// when nobody: the request is answered 401 before its body.
    func admit(_ head: HTTPRequestHead) -> Admission? {
        let target = ForwardedTarget(target: head.uri)
        let token = ClientAuthenticator.token(headers: head.headers, keyParameter: target.keyParameter)
        let pin = ProjectResource.uploadSession(path: target.path, query: target.query)
            .flatMap { name in owners.owner(of: name).map { ResourcePin(name: name, owner: $0) } }
        let client = token == nil ? pin.flatMap { authenticator.identity(clientID: $0.owner.clientID) } : authenticator.authenticate(token)
        return client.map { Admission(client: $0, uploadPin: pin) }
    }

    /// Answers a proxied request. Every request gets exactly one row in the log (the recorder's).
    func handle(_ request: ProxyRequest) async -> ProxyAnswer {
        let (target, route, recorder) = begin(request.head)
        var answer = await proxy(request, target: target, route: route, recorder: recorder)
        answer.head.headers.add(name: Self.requestIDHeader, value: recorder.requestID)
        return answer
    }

    /// Answers a request the channel handler refused before its body was read in full (too
    /// large, or the client went away), with its row.
    func refuse(_ head: HTTPRequestHead, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String? = nil) -> ProxyAnswer {
        let (_, _, recorder) = begin(head)
        var answer = fail(recorder, error, outcome: outcome, reason: reason)
        answer.head.headers.add(name: Self.requestIDHeader, value: recorder.requestID)
        return answer
    }

    /// Answers a request the gateway has no room for (``GatewayConfiguration/maximumInFlight``
    /// proxied requests are being answered): 503 `UNAVAILABLE` with `Retry-After: 1` at once,
    /// nothing sent upstream, no key or upstream charged. Its row (`no_capacity`, reason
    /// `MAX_IN_FLIGHT`) names the client and the body's size, like the rows of served requests.
    func overloaded(_ request: ProxyRequest) -> ProxyAnswer {
        let (_, _, recorder) = begin(request.head)
        let client = request.admission.client
        let bytes = request.body.readableBytes
        recorder.update {
            $0.clientId = client.id
            $0.clientName = client.name
            $0.requestBytes = bytes
        }
        finishRow(recorder, Self.overload, outcome: .noCapacity, reason: Self.overloadReason)
        metrics.requestOverloaded()
        // The envelope made once: under overload this is the answer the gateway gives most.
        var (head, body) = Self.overloadAnswer
        head.headers.add(name: Self.requestIDHeader, value: recorder.requestID)
        return ProxyAnswer(head: head, body: .whole(body))
    }

    /// The error of ``overloaded(_:)``, and its head and body.
    static let overload = GeminiErrorResponse.gatewayBusy(retryAfter: 1)
    private static let overloadAnswer = overload.answer()
    static let overloadReason = "MAX_IN_FLIGHT"

    private func begin(_ head: HTTPRequestHead) -> (ForwardedTarget, GeminiRoute, RequestRecorder) {
        let target = ForwardedTarget(target: head.uri)
        let route = GeminiRoute(path: target.path, query: target.query)
        var entry = RequestLogEntry(
            requestId: Self.newRequestID(), startedAt: Date(),
            method: head.method.rawValue, endpoint: route.endpoint.rawValue
        )
        entry.apiVersion = route.apiVersion
        entry.model = route.model
        entry.isStream = route.isStream
        return (target, route, RequestRecorder(entry: entry, writer: logWriter, metrics: metrics, logger: logger, requestLine: requestLine))
    }

    // MARK: - The loop

    private func proxy(_ request: ProxyRequest, target: ForwardedTarget, route: GeminiRoute, recorder: RequestRecorder) async -> ProxyAnswer {
        // 1. The client, authenticated from the head before its body was read (``admit(_:)``).
        let client = request.admission.client
        var pin = request.admission.uploadPin
        recorder.update {
            $0.clientId = client.id
            $0.clientName = client.name
        }

        // 2. The body (read whole, within the limit, by the channel handler) is replayed on every try.
        let body = request.body
        recorder.update { $0.requestBytes = body.readableBytes }

        var model = route.cooldownModel
        var isStream = route.isStream
        if route.isOpenAI {
            let bytes = body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? []
            if let openAIModel = GeminiRoute.openAIModel(fromBody: bytes) { model = openAIModel }
            isStream = GeminiRoute.openAIStream(fromBody: bytes)
            recorder.update {
                $0.model = model
                $0.isStream = isStream
            }
        }

        // Calls on a project-bound resource go to the key that created it.
        if pin == nil {
            switch resourcePin(request, target: target, body: body) {
            case .success(let found): pin = found
            case .failure(let error): return fail(recorder, error, outcome: .clientError)
            }
        }
        let creates = ProjectResource.creates(method: request.method.rawValue, path: target.path)

        // 3-6. Pick, send, classify; relay or try again.
        var tried = Set<PairID>()
        var lastFailure: Failure?
        // Pairs whose upstream answered with a 4xx page of its own: charged only if Google then
        // answers this very request through another upstream (the relay refused what Google takes).
        var refusedBy: [PairID] = []
        let (maximumAttempts, retryBudget) = limits.current
        let deadline = ContinuousClock.now + retryBudget
        for attempt in 1...max(1, maximumAttempts) {
            if attempt > 1 && ContinuousClock.now >= deadline { break }
            // The client went away: no further try (its answer could reach no one).
            if attempt > 1 && Task.isCancelled { return fail(recorder, .clientGone, outcome: .cancelled) }
            let key: PoolKey, upstream: PoolUpstream
            let picked = pin.map { pool.pick(key: $0.owner.keyID, upstream: $0.upstream, model: model, tried: tried) }
                ?? pool.pick(model: model, tried: tried)
            switch picked {
            case .pair(let k, let u):
                key = k
                upstream = u
            case .noKeys:
                return lastFailure.map { finishWithFailure($0, recorder) }
                    ?? fail(recorder, pin.map { .resourceKeyUnavailable($0.name) } ?? .noKeys, outcome: .noCapacity)
            case .noUpstreams:
                return lastFailure.map { finishWithFailure($0, recorder) }
                    ?? fail(recorder, pin.map { .resourceUpstreamUnavailable($0.name) } ?? .noUpstreams, outcome: .noCapacity)
            case .allKeysCooling(let until):
                let seconds = max(1, Int(until.timeIntervalSinceNow.rounded(.up)))
                return fail(recorder, .allKeysCooling(model: model, retryAfter: seconds), outcome: .throttled)
            case .exhausted:
                return lastFailure.map { finishWithFailure($0, recorder) }
                    ?? fail(recorder, .upstreamsFailed("every key and upstream was tried"), outcome: .upstreamError)
            }
            let pair = PairID(key: key.id, upstream: upstream.id)
            tried.insert(pair)
            recorder.update {
                $0.keyId = key.id
                $0.keyFingerprint = key.fingerprint
                $0.upstreamId = upstream.id
                $0.upstreamUrl = upstream.baseURL
            }

            let attemptStarted = ContinuousClock.now
            var attemptRow = AttemptRow(
                attempt: attempt, startedAt: Date(), keyId: key.id, upstreamId: upstream.id, status: nil, verdict: "pending"
            )
            let outgoing = UpstreamRequest(
                method: request.method,
                baseURL: upstream.baseURL,
                target: target.forwarded,
                headers: ForwardedHeaders.toUpstream(
                    request.headers, credential: key.secret, bearer: route.isOpenAI,
                    keepClientAddress: configuration.forwardClientAddress
                ),
                body: body
            )

            // Send; a transport failure blames the upstream.
            var response: UpstreamResponse
            do {
                response = try await transport.send(outgoing)
            } catch {
                if Task.isCancelled {
                    return cancelled(recorder, attempt: attemptRow, started: attemptStarted)
                }
                lastFailure = transportFailed(error, pair: pair, model: model, attempt: attemptRow, started: attemptStarted, recorder: recorder)
                if lastFailure?.isLocal == true { break }  // another try would meet the same shortage
                continue
            }
            attemptRow.status = response.status

            if (200..<300).contains(response.status) {
                // Before the first byte reaches the client a failure can still fail over: read the
                // first chunk here.
                let first: ByteBuffer?
                var whole = false
                do {
                    if creates {
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
                    lastFailure = transportFailed(error, pair: pair, model: model, attempt: attemptRow, started: attemptStarted, recorder: recorder)
                    if lastFailure?.isLocal == true { break }  // another try would meet the same shortage
                    continue
                }
                pool.record(.success, pair: pair, model: model)
                for refused in refusedBy {
                    pool.record(.upstreamFailure(reason: OutcomeClassifier.Reason.notGoogle4xx), pair: refused, model: model)
                }
                attemptRow.verdict = Verdict.success.label
                attemptRow.latencyMs = milliseconds(since: attemptStarted)
                let row = attemptRow
                recorder.update {
                    $0.attempts.append(row)
                    $0.status = response.status
                }
                if creates, let first {
                    let owner = ResourceOwner(keyID: key.id, upstreamID: upstream.id, clientID: client.id)
                    await rememberCreated(first, headers: &response.headers, owner: owner, upstream: upstream, request: request)
                } else if let pin, request.method == .DELETE, !pin.name.hasPrefix(ProjectResource.uploadPrefix) {
                    await owners.forget(pin.name)
                }
                if whole, let first {
                    return relayWhole(response, body: first, route: route, recorder: recorder)
                }
                return relay(response, first: first, route: route, recorder: recorder)
            }

            // An error answer: read it (bounded) and classify it from status and body.
            let errorBody: ByteBuffer
            do {
                errorBody = try await Self.collect(&response.body, limit: Self.maximumErrorBody)
            } catch {
                lastFailure = transportFailed(error, pair: pair, model: model, attempt: attemptRow, started: attemptStarted, recorder: recorder)
                if lastFailure?.isLocal == true { break }  // another try would meet the same shortage
                continue
            }
            let outcome = OutcomeClassifier.analyze(
                status: response.status, body: errorBody.getBytes(at: errorBody.readerIndex, length: errorBody.readableBytes) ?? []
            )
            let verdict = outcome.verdict
            if case .relayRefusal = verdict {
                refusedBy.append(pair)
            } else {
                pool.record(verdict, pair: pair, model: model)
            }
            attemptRow.verdict = verdict.label
            attemptRow.reason = verdict.reason
            attemptRow.googleStatus = outcome.googleStatus
            if case .throttled(let throttle) = verdict { attemptRow.quotaId = throttle.quotaID }
            attemptRow.latencyMs = milliseconds(since: attemptStarted)
            let row = attemptRow
            recorder.update { $0.attempts.append(row) }
            let answer = Failure.answer(status: response.status, headers: response.headers, body: errorBody, verdict: verdict, googleStatus: outcome.googleStatus)
            if !verdict.shouldRetry {
                return finishWithFailure(answer, recorder)
            }
            lastFailure = answer
        }
        return lastFailure.map { finishWithFailure($0, recorder) }
            ?? fail(recorder, .upstreamsFailed("no attempt could be made"), outcome: .upstreamError)
    }

    /// An attempt that got no usable HTTP answer (no connection, a reset, a timeout, a body that
    /// broke off before the first byte was relayed): the upstream is blamed.
    private func transportFailed(
        _ error: any Error, pair: PairID, model: String, attempt: AttemptRow,
        started: ContinuousClock.Instant, recorder: RequestRecorder
    ) -> Failure {
        let failure = (error as? UpstreamTransportError)
            ?? UpstreamTransportError(failure: .other, detail: String(describing: error))
        let verdict = OutcomeClassifier.classify(transport: failure.failure)
        pool.record(verdict, pair: pair, model: model)
        var row = attempt
        row.verdict = verdict.label
        row.reason = verdict.reason
        row.latencyMs = milliseconds(since: started)
        let finished = row
        recorder.update { $0.attempts.append(finished) }
        logger.debug("upstream transport failure", metadata: ["upstream_id": "\(pair.upstream)", "error": "\(failure)"])
        return .transport(failure)
    }

    // MARK: - Project-bound resources

    /// A request bound to the key (and for an upload session the upstream) that created a resource.
    struct ResourcePin {
        var name: String
        var owner: ResourceOwner
        /// Only an upload session is bound to its upstream; the other resources live at Google,
        /// which every upstream reaches.
        var upstream: Int64? { name.hasPrefix(ProjectResource.uploadPrefix) ? owner.upstreamID : nil }
    }

    /// The resource the request names in its path, or else in its body (file URIs, a cached
    /// content), if the gateway knows who created it. Resources of two different keys in one
    /// request cannot be served by any key: that is the client's error.
    private func resourcePin(_ request: ProxyRequest, target: ForwardedTarget, body: ByteBuffer) -> Result<ResourcePin?, GeminiErrorResponse> {
        guard !owners.isEmpty else { return .success(nil) }
        if let name = ProjectResource.named(inPath: target.path) {
            return .success(owners.owner(of: name).map { ResourcePin(name: name, owner: $0) })
        }
        guard request.method == .POST, body.readableBytes > 0 else { return .success(nil) }
        let owned = body.withUnsafeReadableBytes { ProjectResource.referenced(inBody: $0) }
            .compactMap { name in owners.owner(of: name).map { ResourcePin(name: name, owner: $0) } }
        guard let first = owned.first else { return .success(nil) }
        if let other = owned.first(where: { $0.owner.keyID != first.owner.keyID }) {
            return .failure(.resourcesOfDifferentKeys(first.name, other.name))
        }
        return .success(first)
    }

    static let uploadURLHeaders = ["x-goog-upload-url", "x-goog-upload-control-url"]

    /// Remembers what a creating call made (from its answer, and the upload session its
    /// `x-goog-upload-url` opens), and points that URL at the gateway: the client's next chunks
    /// come here and go on to the same upstream with the same key.
    private func rememberCreated(
        _ body: ByteBuffer, headers: inout HTTPHeaders, owner: ResourceOwner, upstream: PoolUpstream, request: ProxyRequest
    ) async {
        var names = ProjectResource.created(inAnswer: body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? [])
        for name in Self.uploadURLHeaders {
            guard let url = headers.first(name: name) else { continue }
            if let id = ProjectResource.uploadID(inURL: url), !names.contains(ProjectResource.uploadPrefix + id) {
                names.append(ProjectResource.uploadPrefix + id)
            }
            headers.replaceOrAdd(
                name: name, value: ProjectResource.rewrite(uploadURL: url, upstreamBase: upstream.baseURL, publicBase: publicBase(of: request)) ?? url
            )
        }
        await owners.remember(names, owner: owner)
    }

    /// How clients reach the gateway: `--public-url`, else the scheme of `X-Forwarded-Proto`
    /// (http without it) and the host of `X-Forwarded-Host` or of the request itself.
    private func publicBase(of request: ProxyRequest) -> String {
        if let url = configuration.publicURL { return url }
        let scheme = request.headers.first(name: "x-forwarded-proto").flatMap { $0.split(separator: ",").first }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "http"
        let host = request.headers.first(name: "x-forwarded-host").flatMap { $0.split(separator: ",").first }
            .map { $0.trimmingCharacters(in: .whitespaces) }
            ?? request.headers.first(name: "host") ?? "\(configuration.host):\(configuration.port)"
        return "\(scheme)://\(host)"
    }


    // MARK: - Relaying a success

    /// The answer to the client: the upstream's status and headers, and its body passed through
    /// chunk by chunk as it arrives (never re-framed; a known length is kept).
    private func relay(_ response: UpstreamResponse, first: ByteBuffer?, route: GeminiRoute, recorder: RequestRecorder) -> ProxyAnswer {
        let head = Self.head(status: response.status, headers: ForwardedHeaders.toClient(response.headers))
        let relay = Relay(
            first: first, upstream: response.body, length: response.headers.first(name: "content-length").flatMap(Int.init),
            recorder: recorder, expectsUsage: Self.expectsUsage(route.endpoint)
        )
        return ProxyAnswer(head: head, body: .relay(relay))
    }

    /// The answer for a body already read in full: head and body go out in one write.
    /// (A client that vanishes during that write is logged as served: the answer was complete.)
    private func relayWhole(_ response: UpstreamResponse, body: ByteBuffer, route: GeminiRoute, recorder: RequestRecorder) -> ProxyAnswer {
        var scanner = UsageScanner()
        scanner.feed(body.readableBytesView)
        let expectsUsage = Self.expectsUsage(route.endpoint)
        recorder.finish { entry in
            entry.outcome = scanner.sawErrorEvent ? .truncated : .success
            entry.responseBytes = body.readableBytes
            entry.ttfbMs = recorder.elapsedMilliseconds()
            Self.applyUsage(scanner, expectsUsage: expectsUsage, truncated: scanner.sawErrorEvent, to: &entry)
            if scanner.sawErrorEvent { entry.errorReason = "ERROR_EVENT_IN_STREAM" }
        }
        return ProxyAnswer(
            head: Self.head(status: response.status, headers: ForwardedHeaders.toClient(response.headers)),
            body: .whole(body)
        )
    }

    /// A success answer's body still arriving from upstream, with the request's row to complete.
    struct Relay {
        var first: ByteBuffer?
        var upstream: any UpstreamBodyStream
        /// The upstream's `Content-Length`, kept for the client (the channel handler frames the
        /// body by it); nil when the body's end is the end of the upstream's chunks.
        let length: Int?
        let recorder: RequestRecorder
        let expectsUsage: Bool
        /// A stream's row is in `streams_in_flight` from its first byte to its end, refreshed
        /// this often while bytes flow (``RequestRecorder/snapshotStream(_:)``).
        static let snapshotInterval: Duration = .seconds(2)

        /// Passes the body to `write` chunk by chunk and completes the row. A failure of the
        /// upstream after the first byte is thrown, for the caller to abort the client's
        /// connection (the client then sees an error, never a clean but truncated answer); a
        /// `write` that throws (the client went away) stops the upstream read.
        mutating func run(write: (ByteBuffer) async throws -> Void) async throws {
            var scanner = UsageScanner()
            var bytes = 0
            var ttfb: Double?
            var next = first
            first = nil
            let isStream = recorder.isStream
            var nextSnapshot = ContinuousClock.now
            while let chunk = next {
                scanner.feed(chunk.readableBytesView)
                bytes += chunk.readableBytes
                do {
                    try await write(chunk)
                } catch {
                    finish(outcome: .cancelled, status: 499, bytes: bytes, ttfb: ttfb, scanner: scanner, truncated: true)
                    throw error
                }
                if ttfb == nil { ttfb = recorder.elapsedMilliseconds() }
                if isStream, ContinuousClock.now >= nextSnapshot {
                    snapshot(bytes: bytes, ttfb: ttfb, scanner: scanner)
                    nextSnapshot = .now + Self.snapshotInterval
                }
                do {
                    next = try await upstream.next()
                } catch {
                    if Task.isCancelled {
                        // The client went away while the upstream was quiet: the read stopped.
                        finish(outcome: .cancelled, status: 499, bytes: bytes, ttfb: ttfb, scanner: scanner, truncated: true)
                    } else {
                        let reason = (error as? UpstreamTransportError)?.failure.rawValue ?? "UPSTREAM_BODY_FAILED"
                        finish(outcome: .truncated, reason: reason, bytes: bytes, ttfb: ttfb, scanner: scanner, truncated: true)
                    }
                    throw error
                }
            }
            if Task.isCancelled {
                // The client went away: a stream ends its read early without an error.
                finish(outcome: .cancelled, status: 499, bytes: bytes, ttfb: ttfb, scanner: scanner, truncated: true)
                throw CancellationError()
            }
            let sawError = scanner.sawErrorEvent
            finish(
                outcome: sawError ? .truncated : .success, reason: sawError ? "ERROR_EVENT_IN_STREAM" : nil,
                bytes: bytes, ttfb: ttfb ?? recorder.elapsedMilliseconds(), scanner: scanner, truncated: sawError
            )
        }

        /// The client went away before the answer could be sent.
        func abandon() {
            finish(outcome: .cancelled, status: 499, bytes: 0, ttfb: nil, scanner: UsageScanner(), truncated: true)
        }

        /// The stream's row so far, for `streams_in_flight`: as a truncated one would be.
        private func snapshot(bytes: Int, ttfb: Double?, scanner: UsageScanner) {
            let expectsUsage = self.expectsUsage
            recorder.snapshotStream { entry in
                entry.responseBytes = bytes
                entry.ttfbMs = ttfb
                ProxyHandler.applyUsage(scanner, expectsUsage: expectsUsage, truncated: true, to: &entry)
            }
        }

        private func finish(
            outcome: RequestOutcome, status: Int? = nil, reason: String? = nil, bytes: Int, ttfb: Double?,
            scanner: UsageScanner, truncated: Bool
        ) {
            let expectsUsage = self.expectsUsage
            recorder.finish { entry in
                entry.outcome = outcome
                if let status { entry.status = status }
                if let reason { entry.errorReason = reason }
                entry.responseBytes = bytes
                entry.ttfbMs = ttfb
                ProxyHandler.applyUsage(scanner, expectsUsage: expectsUsage, truncated: truncated, to: &entry)
            }
        }
    }

    /// A response head to the client (HTTP/1.1; the channel handler sets the version it speaks).
    private static func head(status: Int, headers: HTTPHeaders) -> HTTPResponseHead {
        HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)
    }

    private static func expectsUsage(_ endpoint: GeminiRoute.Endpoint) -> Bool {
        switch endpoint {
        case .generateContent, .streamGenerateContent, .openAIChatCompletions: true
        default: false
        }
    }

    fileprivate static func applyUsage(_ scanner: UsageScanner, expectsUsage: Bool, truncated: Bool, to entry: inout RequestLogEntry) {
        // countTokens, embeddings and the rest carry no token usage to account (an OpenAI-style
        // embeddings `usage` object included): their rows keep 0 tokens and usage_status 'none'.
        if expectsUsage, let usage = scanner.last {
            entry.promptTokens = usage.prompt
            entry.cachedTokens = usage.cached
            entry.candidatesTokens = usage.candidates
            entry.thoughtsTokens = usage.thoughts
            entry.toolUseTokens = usage.toolUse
            entry.totalTokens = usage.total
        }
        entry.usageStatus = UsageStatus.of(expectsUsage: expectsUsage, sawUsage: scanner.last != nil, truncated: truncated)
    }

    // MARK: - Failures

    /// The last thing that went wrong, kept to answer with when no attempt succeeds.
    private enum Failure {
        case answer(status: Int, headers: HTTPHeaders, body: ByteBuffer, verdict: Verdict, googleStatus: String?)
        case transport(UpstreamTransportError)

        /// The gateway's own shortage (descriptors, memory), not an upstream's failure.
        var isLocal: Bool {
            if case .transport(let error) = self { return error.failure == .localResources }
            return false
        }
    }

    /// Answers with the last failure: a Google answer is passed through as it came; a relay's
    /// non-Google page or a transport failure becomes a 502 in Gemini's envelope.
    private func finishWithFailure(_ failure: Failure, _ recorder: RequestRecorder) -> ProxyAnswer {
        switch failure {
        case .answer(let status, let headers, let body, let verdict, let googleStatus):
            switch verdict {
            case .upstreamFailure(let reason):
                return fail(recorder, .upstreamsFailed("the last upstream answered \(status) (\(reason))"), outcome: .upstreamError)
            case .keyDead(let reason), .keyUnusable(let reason):
                // Google's own answer ("API key not valid") would read as if the client's token
                // were wrong: the keys at fault are the gateway's.
                return fail(recorder, .keysRefused(reason), outcome: .keyError, reason: reason)
            case .upstreamBlocked(let reason):
                return fail(recorder, .upstreamsFailed("Google refused every upstream tried (\(reason))"), outcome: .upstreamError, reason: reason)
            case .relayRefusal(let reason):
                // Nothing shows the upstreams at fault: the request is taken to be the client's.
                return fail(recorder, .refusedByRelay(status: status), outcome: .clientError, reason: reason)
            default:
                break
            }
            let outcome: RequestOutcome = switch verdict {
            case .clientError: .clientError
            case .throttled: .throttled
            case .keyDead, .keyUnusable: .keyError
            default: .upstreamError
            }
            recorder.finish { entry in
                entry.status = status
                entry.outcome = outcome
                entry.responseBytes = body.readableBytes
                entry.errorStatus = googleStatus
                entry.errorReason = verdict.reason
                entry.ttfbMs = recorder.elapsedMilliseconds()
            }
            return ProxyAnswer(
                head: Self.head(status: status, headers: ForwardedHeaders.toClient(headers)),
                body: .whole(body)
            )
        case .transport(let error) where error.failure == .localResources:
            return fail(recorder, .gatewayBusy(retryAfter: 1), outcome: .noCapacity, reason: error.failure.rawValue)
        case .transport(let error):
            return fail(recorder, .upstreamsFailed(error.failure.rawValue), outcome: .upstreamError)
        }
    }

    /// Answers with one of the gateway's own errors and logs the request.
    private func fail(_ recorder: RequestRecorder, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String? = nil) -> ProxyAnswer {
        finishRow(recorder, error, outcome: outcome, reason: reason)
        let (head, body) = error.answer()
        return ProxyAnswer(head: head, body: .whole(body))
    }

    /// Completes the row of a request answered with one of the gateway's own errors.
    private func finishRow(_ recorder: RequestRecorder, _ error: GeminiErrorResponse, outcome: RequestOutcome, reason: String?) {
        recorder.finish { entry in
            entry.status = Int(error.status.code)
            entry.outcome = outcome
            entry.errorStatus = error.googleStatus
            entry.errorReason = reason ?? entry.errorReason
            entry.ttfbMs = recorder.elapsedMilliseconds()
        }
    }

    private func cancelled(_ recorder: RequestRecorder, attempt: AttemptRow, started: ContinuousClock.Instant) -> ProxyAnswer {
        var row = attempt
        row.verdict = Verdict.cancelled.label
        row.latencyMs = milliseconds(since: started)
        let finished = row
        recorder.update { $0.attempts.append(finished) }
        return fail(recorder, .clientGone, outcome: .cancelled)
    }

    // MARK: - Helpers

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

    private func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    static func newRequestID() -> String {
        RequestID.next()
    }
}
