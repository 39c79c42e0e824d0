import Foundation
import GatewayCore
import GatewayStore
import Logging
import Synchronization

/// Collects what happens to one client request and hands exactly one row to the log writer:
/// when the proxy finishes it, or, if the response is dropped before that (the client vanished
/// before the body was written), when the recorder is released, as cancelled.
final class RequestRecorder: Sendable {
    private let state: Mutex<(entry: RequestLogEntry, done: Bool)>
    private let writer: RequestLogWriter
    private let logger: Logger
    let started: ContinuousClock.Instant

    init(entry: RequestLogEntry, writer: RequestLogWriter, logger: Logger) {
        self.state = Mutex((entry, false))
        self.writer = writer
        self.logger = logger
        self.started = .now
    }

    func update(_ change: (inout RequestLogEntry) -> Void) {
        state.withLock { change(&$0.entry) }
    }

    var requestID: String { state.withLock { $0.entry.requestId } }

    /// Milliseconds since the request arrived.
    func elapsedMilliseconds() -> Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    /// Completes the row and queues it (once; later calls do nothing).
    func finish(_ change: (inout RequestLogEntry) -> Void = { _ in }) {
        let entry: RequestLogEntry? = state.withLock { state in
            guard !state.done else { return nil }
            state.done = true
            change(&state.entry)
            // Measured after `change`, which may stamp the time to first byte: latency >= ttfb.
            state.entry.latencyMs = elapsedMilliseconds()
            return state.entry
        }
        guard let entry else { return }
        writer.enqueue(entry)
        logger.info("request", metadata: [
            "request_id": "\(entry.requestId)",
            "client": "\(entry.clientName ?? "-")",
            "endpoint": "\(entry.endpoint)",
            "model": "\(entry.model ?? "-")",
            "status": "\(entry.status)",
            "outcome": "\(entry.outcome)",
            "attempts": "\(entry.attempts.count)",
            "key": "\(entry.keyFingerprint ?? "-")",
            "upstream": "\(entry.upstreamUrl ?? "-")",
            "latency_ms": "\(Int((entry.latencyMs ?? 0).rounded()))",
        ])
    }

    deinit {
        finish { entry in
            entry.outcome = "cancelled"
            if entry.status == 0 || (200..<300).contains(entry.status) { entry.status = 499 }
        }
    }
}
