import Foundation
import GatewayCore
import GatewayHTTP
import GatewayStore
import Logging
import NIOCore
import NIOHTTP1

/// A proxied request as the connection handler (``ClientConnectionHandler``) hands it over: its
/// head, who sent it (judged from the head, before the body was read) and its whole body.
struct ProxyRequest: Sendable {
    var head: HTTPRequestHead
    var admission: ProxyHandler.Admission
    var body: ByteBuffer
    var method: HTTPMethod { head.method }
    var headers: HTTPHeaders { head.headers }
}

/// What the proxy answers: the HTTP layer's answer, whose relayed body is a ``ProxyHandler/Relay``.
typealias ProxyAnswer = HTTPAnswer

/// The request path: authenticate, then pick a pair, send, classify, and either relay the answer
/// or try the next pair, within a budget of attempts and time.
///
/// In parts, in the order a request meets them: this file (admission, the row, and the loop:
/// ``proxy(_:target:route:recorder:)``), `ProxyHandler+Attempt.swift` (one try: send, classify,
/// charge), `ProxyHandler+Relay.swift` (a success to the client), `ProxyHandler+Failures.swift`
/// (the answer when no try succeeds), `ProxyHandler+Resources.swift` (calls bound to the key
/// that created a resource) and `ProxyHandler+Wait.swift` (waiting for a key to come back). ``RequestRecorder`` keeps the row.
struct ProxyHandler: Sendable {
    let pool: KeyPool
    let authenticator: ClientAuthenticator
    /// The clients' own limits, judged before a pair is picked (`ProxyHandler+Limits.swift`).
    let limiter: any ClientLimitStore
    /// What each request cost, priced when its row is finished.
    let prices: Prices
    let transport: any UpstreamTransport
    let logWriter: RequestLogWriter
    let metrics: GatewayMetrics
    /// Who created which file, cached content, batch or upload session.
    let owners: ResourceOwners
    let configuration: GatewayConfiguration
    /// Tries per request and their time budget (SIGHUP may change them; `configuration` holds
    /// their values at start).
    let limits: RetryLimits
    /// The requests waiting for a key to come back (`--max-queue-wait`).
    let waits: WaitingRoom
    let logger: Logger
    /// Writes the line of a finished request, when the caller has a cheaper way than `logger`.
    var requestLine: RequestLineWriter? = nil

    /// Largest error body read from an upstream to classify it.
    static let maximumErrorBody = 4 << 20

    static let requestIDHeader = "x-gateway-request-id"

    /// A client the head of its request authenticates: by its token, or (the chunks of a
    /// resumable upload carry no token: Google's own upload URL is the credential) by a known
    /// upload session, which stands for the client that started it.
    ///
    /// A class: it travels to the connection handler and back as `any Sendable` (a struct of its
    /// size would be boxed there anyway), and the request path then copies a reference, not
    /// ~150 bytes, into the frames of its async functions.
    final class Admission: Sendable {
        let client: ClientIdentity
        /// The request's target as parsed to find the token: parsed once per request.
        let target: ForwardedTarget
        /// The upload session the request continues, bound to the key and upstream that began it.
        let uploadPin: ResourcePin?
        /// An upload session this instance does not know, continued without a token: with a
        /// shared store another instance may have begun it, which only the store can say, and
        /// the head's check cannot wait for it. ``handle(_:)`` looks it up before anything else
        /// and answers 401 if it is nobody's (its body was read, up to the body limit).
        let unresolvedUpload: String?

        init(client: ClientIdentity, target: ForwardedTarget, uploadPin: ResourcePin?, unresolvedUpload: String? = nil) {
            self.client = client
            self.target = target
            self.uploadPin = uploadPin
            self.unresolvedUpload = unresolvedUpload
        }
    }

    /// Who sent the request, from its head alone (so that no body is read for a stranger); nil
    /// when nobody: the request is answered 401 before its body.
    func admit(_ head: HTTPRequestHead) -> Admission? {
        let target = ForwardedTarget(target: head.uri)
        let token = ClientAuthenticator.token(headers: head.headers, keyParameter: target.keyParameter)
        let session = ProjectResource.uploadSession(path: target.path, query: target.query)
        let pin = session.flatMap { name in owners.owner(of: name).map { ResourcePin(name: name, owner: $0) } }
        if token == nil, pin == nil, let session, owners.readsThrough {
            return Admission(client: ClientIdentity(id: nil, name: "-"), target: target, uploadPin: nil, unresolvedUpload: session)
        }
        let client = token == nil ? pin.flatMap { authenticator.identity(clientID: $0.owner.clientID) } : authenticator.authenticate(token)
        return client.map { Admission(client: $0, target: target, uploadPin: pin) }
    }

    /// Answers a proxied request. Every request gets exactly one row in the log (the recorder's).
    ///
    /// The async functions of the request path are kept small: each holds in its frame only what
    /// outlives a wait, and its other work (building rows and answers) is in plain functions that
    /// are not inlined into it. Every frame is memory the request's task allocates, and a frame of
    /// kilobytes is a `malloc` of its own (bench/RESULTS.md, "Async frames").
    func handle(_ request: ProxyRequest) async -> ProxyAnswer {
        if let session = request.admission.unresolvedUpload {
            return await continueUpload(request, session: session)
        }
        return await answer(request)
    }

    /// An upload chunk without a token for a session this instance does not know: the store
    /// says whose it is, or it is answered 401.
    @inline(never)
    private func continueUpload(_ request: ProxyRequest, session: String) async -> ProxyAnswer {
        guard let owner = await owners.lookUp(session), let client = authenticator.identity(clientID: owner.clientID) else {
            return refuse(request.head, .unauthenticated, outcome: .unauthorized)
        }
        var request = request
        request.admission = Admission(client: client, target: request.admission.target, uploadPin: ResourcePin(name: session, owner: owner))
        return await answer(request)
    }

    private func answer(_ request: ProxyRequest) async -> ProxyAnswer {
        let (target, route, recorder) = begin(request.head, target: request.admission.target)
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
        let (_, _, recorder) = begin(request.head, target: request.admission.target)
        recorder.admitted(request.admission.client, requestBytes: request.body.readableBytes)
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

    /// Starts the request's row; `target` is the head's, when ``admit(_:)`` parsed it already.
    @inline(never)
    private func begin(_ head: HTTPRequestHead, target: ForwardedTarget? = nil) -> (ForwardedTarget, GeminiRoute, RequestRecorder) {
        let target = target ?? ForwardedTarget(target: head.uri)
        let route = GeminiRoute(path: target.path, query: target.query)
        var entry = RequestLogEntry(
            requestId: Self.newRequestID(), startedAt: Date(),
            method: head.method.rawValue, endpoint: route.endpoint.rawValue
        )
        entry.apiVersion = route.apiVersion
        entry.model = route.model
        entry.isStream = route.isStream
        return (target, route, RequestRecorder(
            entry: entry, writer: logWriter, metrics: metrics, prices: prices, logger: logger, requestLine: requestLine))
    }


    // MARK: - The loop

    /// A request on its way through the loop: what it asks, who sent it, where it may go, and
    /// its row. Settled once (``prepare(_:target:route:recorder:)``), read by every try.
    ///
    /// A class: the loop's async functions keep it in their frames across every wait, and a
    /// struct of ~400 bytes was held there in several copies (each frame is memory the request's
    /// task allocates); a reference is one word.
    final class Exchange {
        let request: ProxyRequest
        let target: ForwardedTarget
        let route: GeminiRoute
        let recorder: RequestRecorder
        let client: ClientIdentity
        /// The model keys cool for: the path's, or the one an OpenAI-style body names.
        let model: String
        /// The key (and for an upload session the upstream) that must serve it.
        let pin: ResourcePin?
        /// The call creates a project-bound resource: its answer is read whole, and its owner kept.
        let creates: Bool

        init(
            request: ProxyRequest, target: ForwardedTarget, route: GeminiRoute, recorder: RequestRecorder,
            client: ClientIdentity, model: String, pin: ResourcePin?, creates: Bool
        ) {
            self.request = request
            self.target = target
            self.route = route
            self.recorder = recorder
            self.client = client
            self.model = model
            self.pin = pin
            self.creates = creates
        }
    }

    /// Caddy's loop: choose a pair, send, classify, update; relay the first success, or try the
    /// next pair while the budget of tries and time lasts, and answer with the last failure.
    private func proxy(_ request: ProxyRequest, target: ForwardedTarget, route: GeminiRoute, recorder: RequestRecorder) async -> ProxyAnswer {
        let exchange: Exchange
        switch await prepare(request, target: target, route: route, recorder: recorder) {
        case .success(let prepared): exchange = prepared
        case .failure(let error): return fail(recorder, error, outcome: .clientError)
        }
        if let refused = checkLimits(exchange) { return refused }
        var tried = Set<PairID>()
        var lastFailure: Failure?
        // Pairs whose upstream answered with a 4xx page of its own: charged only if Google then
        // answers this very request through another upstream (the relay refused what Google takes).
        var refusedBy: [PairID] = []
        let (maximumAttempts, retryBudget) = limits.current
        let deadline = ContinuousClock.now + retryBudget
        var waiting = Waiting()
        // A turn still held when the request ends (answered, or its client gone) goes to the next.
        defer { endTurn(&waiting, model: exchange.model, throttled: false) }
        for attempt in 1...max(1, maximumAttempts) {
            if attempt > 1 {
                if ContinuousClock.now >= deadline { break }
                // The client went away: no further try (its answer could reach no one).
                if Task.isCancelled { return clientGone(recorder) }
            }
            let key: PoolKey, upstream: PoolUpstream
            switch await choose(exchange, tried: &tried, lastFailure: lastFailure, waiting: &waiting, retryDeadline: deadline) {
            case .pair(let chosenKey, let chosenUpstream): (key, upstream) = (chosenKey, chosenUpstream)
            case .answered(let answer): return answer
            }
            tried.insert(PairID(key: key.id, upstream: upstream.id))
            recorder.picked(key: key, upstream: upstream)
            let result = await self.attempt(attempt, key: key, upstream: upstream, exchange, refusedBy: &refusedBy)
            if result.isThrottle {
                waiting.throttled.insert(PairID(key: key.id, upstream: upstream.id))
                endTurn(&waiting, model: exchange.model, throttled: true)
            } else {
                endTurn(&waiting, model: exchange.model, throttled: false)
            }
            switch result {
            case .answer(let answer): return answer
            case .retry(let failure): lastFailure = failure
            case .final(let failure): return finishWithFailure(failure, recorder)
            }
        }
        return noTryLeft(lastFailure, recorder)
    }

    /// The answer when the budget of tries or time is spent: the last failure, if a try was made.
    @inline(never)
    private func noTryLeft(_ lastFailure: Failure?, _ recorder: RequestRecorder) -> ProxyAnswer {
        lastFailure.map { finishWithFailure($0, recorder) }
            ?? fail(recorder, .upstreamsFailed("no attempt could be made"), outcome: .upstreamError)
    }

    /// The client went away before the request could be answered.
    @inline(never)
    private func clientGone(_ recorder: RequestRecorder) -> ProxyAnswer {
        fail(recorder, .clientGone, outcome: .cancelled)
    }

    /// Authenticates and pins: records who sent the request (authenticated from its head before
    /// its body was read, ``admit(_:)``) and its size, reads the model and stream flag out of an
    /// OpenAI-style body, and binds a call on a project-bound resource to the key that created
    /// it. Fails (the client's error) for a call naming resources of two keys.
    private func prepare(
        _ request: ProxyRequest, target: ForwardedTarget, route: GeminiRoute, recorder: RequestRecorder
    ) async -> Result<Exchange, GeminiErrorResponse> {
        let client = request.admission.client
        // The body (read whole, within the limit, by the channel handler) is replayed on every try.
        let body = request.body
        recorder.admitted(client, requestBytes: body.readableBytes)
        var model = route.cooldownModel
        if route.isOpenAI {
            let bytes = body.getBytes(at: body.readerIndex, length: body.readableBytes) ?? []
            if let openAIModel = GeminiRoute.openAIModel(fromBody: bytes) { model = openAIModel }
            recorder.routed(model: model, isStream: GeminiRoute.openAIStream(fromBody: bytes))
        }
        var pin = request.admission.uploadPin
        if pin == nil {
            switch await resourcePin(request, target: target, body: body) {
            case .success(let found): pin = found
            case .failure(let error): return .failure(error)
            }
        }
        return .success(Exchange(
            request: request, target: target, route: route, recorder: recorder, client: client, model: model, pin: pin,
            creates: ProjectResource.creates(method: request.method.rawValue, path: target.path)
        ))
    }

    /// What ``choose(_:tried:lastFailure:waiting:retryDeadline:)`` found.
    private enum Choice {
        case pair(PoolKey, PoolUpstream)
        /// No pair is left: the request's answer (its row finished).
        case answered(ProxyAnswer)
    }

    /// The next pair to try (the pinned key, and an upload session's upstream, if the request is
    /// bound to them), not tried yet for this request. Every key cooling: the request waits for
    /// one to come back when it may (``waitForKey(_:_:retryDeadline:)``), and then picks again
    /// (a pair throttled before the wait may be tried again), else it is a 429 with `Retry-After`.
    /// None left: the last failure if a try was made, else the gateway's own error.
    @inline(never)
    private func choose(
        _ exchange: Exchange, tried: inout Set<PairID>, lastFailure: Failure?, waiting: inout Waiting,
        retryDeadline: ContinuousClock.Instant
    ) async -> Choice {
        var picked = pick(exchange, tried: tried)
        while case .allKeysCooling = picked {
            switch await waitForKey(exchange, &waiting, retryDeadline: retryDeadline) {
            case .pickAgain:
                tried.subtract(waiting.throttled)
                waiting.throttled = []
                picked = pick(exchange, tried: tried)
                continue
            case .refuse:
                break
            case .cancelled:
                return .answered(clientGone(exchange.recorder))
            }
            break
        }
        if case .pair(let key, let upstream) = picked { return .pair(key, upstream) }
        return .answered(noPair(picked, exchange, lastFailure: lastFailure))
    }

    /// The answer when no pair is left to try: the last failure if a try was made, else the
    /// gateway's own error.
    @inline(never)
    private func noPair(_ picked: PickResult, _ exchange: Exchange, lastFailure: Failure?) -> ProxyAnswer {
        let recorder = exchange.recorder
        switch picked {
        case .pair:
            preconditionFailure("noPair(_:_:lastFailure:) is for the picks that found no pair")
        case .noKeys:
            return lastFailure.map { finishWithFailure($0, recorder) }
                ?? fail(recorder, exchange.pin.map { .resourceKeyUnavailable($0.name) } ?? .noKeys, outcome: .noCapacity)
        case .noUpstreams:
            return lastFailure.map { finishWithFailure($0, recorder) }
                ?? fail(recorder, exchange.pin.map { .resourceUpstreamUnavailable($0.name) } ?? .noUpstreams, outcome: .noCapacity)
        case .allKeysCooling(let until):
            let seconds = max(1, Int(until.timeIntervalSinceNow.rounded(.up)))
            return fail(recorder, .allKeysCooling(model: exchange.model, retryAfter: seconds), outcome: .throttled)
        case .exhausted:
            return lastFailure.map { finishWithFailure($0, recorder) }
                ?? fail(recorder, .upstreamsFailed("every key and upstream was tried"), outcome: .upstreamError)
        }
    }

    private func pick(_ exchange: Exchange, tried: Set<PairID>) -> PickResult {
        exchange.pin.map { pool.pick(key: $0.owner.keyID, upstream: $0.upstream, model: exchange.model, tried: tried) }
            ?? pool.pick(model: exchange.model, tried: tried)
    }

    // MARK: - Helpers

    static func newRequestID() -> String {
        RequestID.next()
    }
}
