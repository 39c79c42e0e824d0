import Foundation
import GatewayCore
import GatewayStore
import Logging
import Synchronization

/// Writes the line of a finished request instead of `logger.info("request", ...)`: `serve`
/// formats it straight from the row into its log output (no metadata dictionary, no sorting),
/// the same line; it decides on the level itself.
public typealias RequestLineWriter = @Sendable (RequestLogEntry) -> Void

/// Collects what happens to one client request and hands exactly one row to the log writer and
/// the metrics: when the proxy finishes it, or, if the response is dropped before that (the
/// client vanished before the body was written), when the recorder is released, as cancelled.
/// From its making to that moment the request counts as in flight (and as a stream in flight
/// while its row says it is one).
final class RequestRecorder: Sendable {
    private struct State {
        var entry: RequestLogEntry
        var done = false
        /// What the in-flight streams gauge holds for this request.
        var countedAsStream: Bool
        /// The key of the last try is free-tier: the request costs 0 (at list price all the same).
        var freeTier = false
        /// The client's limits admitted the request: charge them when it ends.
        var charges: (store: any ClientLimitStore, client: Int64)?
    }

    private let state: Mutex<State>
    private let writer: RequestLogWriter
    private let metrics: GatewayMetrics
    private let prices: Prices?
    private let logger: Logger
    private let requestLine: RequestLineWriter?
    let started: ContinuousClock.Instant
    /// The row's request id (set once, when the request arrives).
    let requestID: String

    init(
        entry: consuming RequestLogEntry, writer: RequestLogWriter, metrics: GatewayMetrics, prices: Prices? = nil, logger: Logger,
        requestLine: RequestLineWriter? = nil
    ) {
        self.requestLine = requestLine
        self.prices = prices
        self.requestID = entry.requestId
        let isStream = entry.isStream
        // Moved in, not copied (a copy is a retain and a release of each of its strings).
        self.state = Mutex(State(entry: consume entry, countedAsStream: isStream))
        self.writer = writer
        self.metrics = metrics
        self.logger = logger
        self.started = .now
        metrics.requestStarted(isStream: isStream)
    }

    private func update(_ change: (inout RequestLogEntry) -> Void) {
        state.withLock { state in
            change(&state.entry)
            if !state.done, state.entry.isStream != state.countedAsStream {
                state.countedAsStream = state.entry.isStream
                metrics.streamChanged(isStream: state.countedAsStream)
            }
        }
    }

    /// Whether the row is a stream's (so far).
    var isStream: Bool { state.withLock { $0.entry.isStream } }

    /// Hands the log writer the row of a stream still running as it stands, with its bytes,
    /// time to first byte and tokens so far (counted as a truncated answer's), for
    /// `streams_in_flight`: after a crash the next start makes it an `interrupted` row. Does
    /// nothing once the row is finished, or for a request that is not a stream. Enqueued under
    /// the lock: never after the finished row.
    func snapshotStream(bytes: Int, ttfb: Double?, usage: AnswerUsage) {
        state.withLock { state in
            guard !state.done, state.entry.isStream else { return }
            var snapshot = state.entry
            snapshot.responseBytes = bytes
            snapshot.ttfbMs = ttfb
            usage.apply(to: &snapshot)
            snapshot.latencyMs = elapsedMilliseconds()
            writer.enqueueStreamSnapshot(snapshot)
        }
    }

    /// Milliseconds since the request arrived.
    func elapsedMilliseconds() -> Double {
        (ContinuousClock.now - started) / .milliseconds(1)
    }

    // MARK: - What the proxy records, in the order it learns it

    /// The client the request's head authenticated, and the size of its body.
    func admitted(_ client: ClientIdentity, requestBytes: Int) {
        update {
            $0.clientId = client.id
            $0.clientName = client.name
            $0.requestBytes = requestBytes
        }
    }

    /// The model and stream flag an OpenAI-style body names (its path names neither).
    func routed(model: String, isStream: Bool) {
        update {
            $0.model = model
            $0.isStream = isStream
        }
    }

    /// The client's limits admitted the request: its tokens and cost go to them when it ends.
    func charges(_ store: any ClientLimitStore, client: Int64) {
        state.withLock { $0.charges = (store, client) }
    }

    /// The pair a try goes to: the row names the key and upstream of the last try.
    func picked(key: PoolKey, upstream: PoolUpstream) {
        state.withLock { $0.freeTier = key.freeTier }
        update {
            $0.keyId = key.id
            $0.keyFingerprint = key.fingerprint
            $0.upstreamId = upstream.id
            $0.upstreamUrl = upstream.baseURL
        }
    }

    /// The time the request has waited so far, in all, for a key to come back.
    func waited(milliseconds: Double) {
        update { $0.queueWaitMs = milliseconds }
    }

    /// A finished try.
    func attempted(_ row: AttemptRow) {
        update { $0.attempts.append(row) }
    }

    /// The try whose answer (a success) is relayed to the client: its status is the request's.
    func relaying(_ row: AttemptRow, status: Int) {
        update {
            $0.attempts.append(row)
            $0.status = status
        }
    }

    /// Completes the row of an answer that went, or began to go, to the client: how it ended
    /// (`status` if not the upstream's, as 499 when the client left), the bytes sent, the time
    /// to the first of them, and the tokens it carried.
    func served(
        _ outcome: RequestOutcome, status: Int? = nil, reason: String? = nil, bytes: Int, ttfb: Double?, usage: AnswerUsage
    ) {
        finish { entry in
            entry.outcome = outcome
            if let status { entry.status = status }
            if let reason { entry.errorReason = reason }
            entry.responseBytes = bytes
            entry.ttfbMs = ttfb
            usage.apply(to: &entry)
        }
    }

    /// Completes the row of an error answer: the gateway's own, or (with the `bytes` of its
    /// body) an upstream's passed through.
    func failed(_ outcome: RequestOutcome, status: Int, googleStatus: String?, reason: String?, bytes: Int? = nil) {
        finish { entry in
            entry.status = status
            entry.outcome = outcome
            entry.errorStatus = googleStatus
            if let reason { entry.errorReason = reason }
            if let bytes { entry.responseBytes = bytes }
            entry.ttfbMs = elapsedMilliseconds()
        }
    }

    /// Completes the row and queues it (once; later calls do nothing).
    private func finish(_ change: (inout RequestLogEntry) -> Void) {
        // The row is moved out and on to the writer, never copied: a field read from a tuple
        // holding it copied the whole row (a retain and a release of each of its strings), three
        // times a request (bench/RESULTS.md, "Instructions under load").
        var countedAsStream = false
        var freeTier = false
        var charges: (store: any ClientLimitStore, client: Int64)?
        let taken: RequestLogEntry? = state.withLock { state in
            guard !state.done else { return nil }
            state.done = true
            change(&state.entry)
            // Measured after `change`, which may stamp the time to first byte: latency >= ttfb.
            state.entry.latencyMs = elapsedMilliseconds()
            countedAsStream = state.countedAsStream
            freeTier = state.freeTier
            charges = state.charges
            var entry = Self.finishedEntry
            swap(&entry, &state.entry)
            return entry
        }
        guard var entry = consume taken else { return }
        // What it cost, from the tokens it used, priced now: the row carries it to the log, and
        // the client's limits are charged with it.
        let usage = UsageMetadata(
            prompt: entry.promptTokens, cached: entry.cachedTokens, candidates: entry.candidatesTokens,
            thoughts: entry.thoughtsTokens, toolUse: entry.toolUseTokens, total: entry.totalTokens, audio: entry.audioTokens)
        if let prices {
            let cost = prices.cost(model: entry.model, usage: usage, freeTier: freeTier)
            if cost != .zero { entry.cost = cost }
        }
        if let charges {
            charges.store.finish(
                client: charges.client, tokens: usage.prompt + usage.candidates + usage.thoughts,
                costMicros: entry.cost?.costMicros ?? 0, now: Date().timeIntervalSince1970)
        }
        // A `var` passed to a call is copied first (the call could reach it); a `let` is lent.
        let row = consume entry
        metrics.requestFinished(row, countedAsStream: countedAsStream)
        if let requestLine {
            requestLine(row)
        } else {
            // The values as they are (no interpolation: a string each, per request, at the default level).
            logger.info("request", metadata: [
                "request_id": .string(row.requestId),
                "client": .string(row.clientName ?? "-"),
                "endpoint": .string(row.endpoint),
                "model": .string(row.model ?? "-"),
                "status": .stringConvertible(row.status),
                "outcome": .string(row.outcome.rawValue),
                "attempts": .stringConvertible(row.attempts.count),
                "key": .string(row.keyFingerprint ?? "-"),
                "upstream": .string(row.upstreamUrl ?? "-"),
                "latency_ms": .stringConvertible(Int((row.latencyMs ?? 0).rounded())),
            ])
        }
        writer.enqueue(row)
    }

    /// What a finished recorder holds instead of its row.
    private static let finishedEntry = RequestLogEntry(requestId: "", startedAt: .distantPast, method: "", endpoint: "")

    deinit {
        finish { entry in
            entry.outcome = .cancelled
            if entry.status == 0 || (200..<300).contains(entry.status) { entry.status = 499 }
        }
    }
}

/// The token usage an answer carried, as its row records it.
struct AnswerUsage {
    /// The counts to record: the last `usageMetadata` of a call that carries usage, if any.
    var tokens: UsageMetadata?
    var status: UsageStatus

    /// What `scanner` read from an answer of a call that carries usage (`expectsUsage`), or not;
    /// `truncated` if the answer broke off (its counts are the last running total).
    init(_ scanner: UsageScanner, expectsUsage: Bool, truncated: Bool) {
        tokens = expectsUsage ? scanner.last : nil
        status = .of(expectsUsage: expectsUsage, sawUsage: scanner.last != nil, truncated: truncated)
    }

    /// Sets the row's token counts (when there are any) and usage status.
    func apply(to entry: inout RequestLogEntry) {
        if let tokens {
            entry.promptTokens = tokens.prompt
            entry.cachedTokens = tokens.cached
            entry.candidatesTokens = tokens.candidates
            entry.thoughtsTokens = tokens.thoughts
            entry.toolUseTokens = tokens.toolUse
            entry.totalTokens = tokens.total
            entry.audioTokens = tokens.audio
        }
        entry.usageStatus = status
    }
}
