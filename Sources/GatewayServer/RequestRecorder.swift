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
    }

    private let state: Mutex<State>
    private let writer: RequestLogWriter
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let requestLine: RequestLineWriter?
    let started: ContinuousClock.Instant
    /// The row's request id (set once, when the request arrives).
    let requestID: String

    init(entry: RequestLogEntry, writer: RequestLogWriter, metrics: GatewayMetrics, logger: Logger, requestLine: RequestLineWriter? = nil) {
        self.requestLine = requestLine
        self.requestID = entry.requestId
        self.state = Mutex(State(entry: entry, countedAsStream: entry.isStream))
        self.writer = writer
        self.metrics = metrics
        self.logger = logger
        self.started = .now
        metrics.requestStarted(isStream: entry.isStream)
    }

    func update(_ change: (inout RequestLogEntry) -> Void) {
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

    /// Hands the log writer the row of a stream still running as it stands, with `change`
    /// applied to a copy (its bytes and tokens so far), for `streams_in_flight`: after a crash
    /// the next start makes it an `interrupted` row. Does nothing once the row is finished, or
    /// for a request that is not a stream. Enqueued under the lock: never after the finished row.
    func snapshotStream(_ change: (inout RequestLogEntry) -> Void) {
        state.withLock { state in
            guard !state.done, state.entry.isStream else { return }
            var snapshot = state.entry
            change(&snapshot)
            snapshot.latencyMs = elapsedMilliseconds()
            writer.enqueueStreamSnapshot(snapshot)
        }
    }

    /// Milliseconds since the request arrived.
    func elapsedMilliseconds() -> Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    /// Completes the row and queues it (once; later calls do nothing).
    func finish(_ change: (inout RequestLogEntry) -> Void = { _ in }) {
        let finished: (entry: RequestLogEntry, countedAsStream: Bool)? = state.withLock { state in
            guard !state.done else { return nil }
            state.done = true
            change(&state.entry)
            // Measured after `change`, which may stamp the time to first byte: latency >= ttfb.
            state.entry.latencyMs = elapsedMilliseconds()
            // Moved out, not copied: nothing reads the row after this.
            var entry = Self.finishedEntry
            swap(&entry, &state.entry)
            return (entry, state.countedAsStream)
        }
        guard let (entry, countedAsStream) = finished else { return }
        metrics.requestFinished(entry, countedAsStream: countedAsStream)
        if let requestLine {
            requestLine(entry)
        } else {
            // The values as they are (no interpolation: a string each, per request, at the default level).
            logger.info("request", metadata: [
                "request_id": .string(entry.requestId),
                "client": .string(entry.clientName ?? "-"),
                "endpoint": .string(entry.endpoint),
                "model": .string(entry.model ?? "-"),
                "status": .stringConvertible(entry.status),
                "outcome": .string(entry.outcome.rawValue),
                "attempts": .stringConvertible(entry.attempts.count),
                "key": .string(entry.keyFingerprint ?? "-"),
                "upstream": .string(entry.upstreamUrl ?? "-"),
                "latency_ms": .stringConvertible(Int((entry.latencyMs ?? 0).rounded())),
            ])
        }
        writer.enqueue(entry)
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
