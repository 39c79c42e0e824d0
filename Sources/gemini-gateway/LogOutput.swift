import Foundation
import GatewayStore
import Logging
import Synchronization

/// Standard error through a buffer: a log line is appended under a lock (no system call on the
/// request path), and a thread of its own writes what has gathered every
/// ``LogOutput/interval``, or at once when a line at `warning` or above comes (with everything
/// before it) or the buffer passes ``LogOutput/flushBytes``. No logging call ever writes, so a
/// standard error nobody reads (a stalled pipe) holds up that thread only; lines beyond
/// ``LogOutput/maximumPending`` are then dropped and counted. What is buffered is
/// written at exit (`atexit`); a crash loses at most the last interval's lines (the request
/// rows are in SQLite).
///
/// With swift-log's `StreamLogHandler` each line was a locked, flushed `fwrite` and a
/// `localtime()` (which looks at `/etc/localtime` on every call when `TZ` is unset): the
/// per-request line cost about 19% of the throughput at 64 connections (issue 21).
final class LogOutput: Sendable {
    static let standardError = LogOutput(descriptor: STDERR_FILENO)

    /// How long a line may wait in the buffer.
    static let interval: Duration = .milliseconds(100)
    /// A buffer this full is written at once (by the writing thread).
    static let flushBytes = 64 << 10
    /// The most held while standard error is not being read (a stalled pipe), besides the batch
    /// being written: lines beyond are dropped and counted, not kept without bound; the count
    /// is written once it drains.
    static let maximumPending = 8 << 20

    private let descriptor: Int32
    private let pending = Mutex<(bytes: [UInt8], dropped: Int)>(([], 0))
    /// A write is under way: one at a time, so that lines keep their order across threads.
    private let writing = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    /// Wakes the writing thread before its interval is over.
    private let wakeUp = DispatchSemaphore(value: 0)

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Appends a line (with its newline); writes it at once when `urgent`.
    func write(_ line: [UInt8], urgent: Bool) {
        startIfNeeded()
        let full = pending.withLock { pending in
            guard pending.bytes.count + line.count <= Self.maximumPending else {
                pending.dropped += 1
                return false
            }
            pending.bytes.append(contentsOf: line)
            return pending.bytes.count >= Self.flushBytes
        }
        if urgent || full { wakeUp.signal() }
    }

    /// Writes whatever is buffered, waiting up to `seconds` for a write under way (at exit, and
    /// before the CLI's own error lines).
    func flush(waitingUpTo seconds: Double) {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1_000))
        while !tryFlush(), ContinuousClock.now < deadline { usleep(1_000) }
    }

    /// False when another write is under way.
    private func tryFlush() -> Bool {
        guard writing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { writing.store(false, ordering: .releasing) }
        // One write at a time: a batch taken later is written later.
        let (taken, dropped) = pending.withLock { pending -> ([UInt8], Int) in
            guard !pending.bytes.isEmpty || pending.dropped > 0 else { return ([], 0) }
            var taken = [UInt8]()
            taken.reserveCapacity(min(pending.bytes.capacity, Self.flushBytes * 4))
            swap(&taken, &pending.bytes)
            defer { pending.dropped = 0 }
            return (taken, pending.dropped)
        }
        var bytes = taken
        if dropped > 0 {
            bytes.append(contentsOf: "\(String(decoding: LogLine.timestamp(), as: UTF8.self)) error gemini-gateway: dropped=\(dropped) [gemini_gateway] log lines dropped: standard error was not being read\n".utf8)
        }
        guard !bytes.isEmpty else { return true }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Foundation.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // nowhere to write (a closed stderr): the lines are dropped
                }
                offset += written
            }
        }
        return true
    }

    private func startIfNeeded() {
        guard !started.load(ordering: .relaxed),
              started.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged
        else { return }
        atexit { LogOutput.standardError.flush(waitingUpTo: 2) }
        let thread = Thread { [self] in
            let pause = DispatchTimeInterval.milliseconds(Int(Self.interval / .milliseconds(1)))
            while true {
                _ = wakeUp.wait(timeout: .now() + pause)
                _ = tryFlush()
            }
        }
        thread.name = "log-output"
        thread.start()
    }
}

/// Formats a log line as swift-log's `StreamLogHandler` does
/// (`2026-12-07T00:35:56+0000 info gemini-gateway: a=1 b=2 [GatewayServer] message`), into
/// bytes, with the timestamp made once a second instead of once a line.
enum LogLine {
    private static let cachedSecond = Mutex<(second: Int, text: [UInt8])>((-1, []))

    static func make(level: Logger.Level, label: String, metadata: Logger.Metadata, source: String, message: Logger.Message) -> [UInt8] {
        var line = [UInt8]()
        line.reserveCapacity(384)
        line.append(contentsOf: timestamp())
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: level.rawValue.utf8)
        if !label.isEmpty {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: label.utf8)
        }
        line.append(UInt8(ascii: ":"))
        if !metadata.isEmpty {
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: key.utf8)
                line.append(UInt8(ascii: "="))
                switch value {
                case .string(let text): line.append(contentsOf: text.utf8)
                case .stringConvertible(let value): line.append(contentsOf: value.description.utf8)
                default: line.append(contentsOf: value.description.utf8)
                }
            }
        }
        line.append(contentsOf: " [".utf8)
        line.append(contentsOf: source.utf8)
        line.append(contentsOf: "] ".utf8)
        line.append(contentsOf: message.description.utf8)
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// The line of a finished request, at info: what `logger.info("request", metadata:)` of the
    /// server's logger would write (fields sorted by name, as ``make(level:label:metadata:source:message:)``
    /// sorts them), made straight from the row.
    @Sendable static func writeRequest(_ entry: RequestLogEntry) {
        guard LogLevelSwitch.level <= .info else { return }
        var line = [UInt8]()
        line.reserveCapacity(384)
        line.append(contentsOf: timestamp())
        line.append(contentsOf: " info gemini-gateway: attempts=".utf8)
        line.append(contentsOf: String(entry.attempts.count).utf8)
        line.append(contentsOf: " client=".utf8)
        line.append(contentsOf: (entry.clientName ?? "-").utf8)
        line.append(contentsOf: " endpoint=".utf8)
        line.append(contentsOf: entry.endpoint.utf8)
        line.append(contentsOf: " key=".utf8)
        line.append(contentsOf: (entry.keyFingerprint ?? "-").utf8)
        line.append(contentsOf: " latency_ms=".utf8)
        line.append(contentsOf: String(Int((entry.latencyMs ?? 0).rounded())).utf8)
        line.append(contentsOf: " model=".utf8)
        line.append(contentsOf: (entry.model ?? "-").utf8)
        line.append(contentsOf: " outcome=".utf8)
        line.append(contentsOf: entry.outcome.rawValue.utf8)
        line.append(contentsOf: " request_id=".utf8)
        line.append(contentsOf: entry.requestId.utf8)
        line.append(contentsOf: " status=".utf8)
        line.append(contentsOf: String(entry.status).utf8)
        line.append(contentsOf: " upstream=".utf8)
        line.append(contentsOf: (entry.upstreamUrl ?? "-").utf8)
        line.append(contentsOf: " [GatewayServer] request\n".utf8)
        LogOutput.standardError.write(line, urgent: false)
    }

    /// The local time to the second, as `strftime("%Y-%m-%dT%H:%M:%S%z")`.
    static func timestamp() -> [UInt8] {
        var now = time(nil)
        let second = Int(now)
        if let text = cachedSecond.withLock({ $0.second == second ? $0.text : nil }) { return text }
        var local = tm()
        localtime_r(&now, &local)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &local)
        let text = buffer.prefix(count).map { UInt8(bitPattern: $0) }
        cachedSecond.withLock { $0 = (second, text) }
        return text
    }
}
